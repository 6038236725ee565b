"""NATS_URL may list every node of a cluster; a client connects while one of them is down."""

from __future__ import annotations

from bus.broker import make_broker, server_list
from bus.embedded import EmbeddedNats
from bus.embedded.process import free_port


def test_a_comma_separated_url_is_every_server() -> None:
    assert server_list("nats://a:4222, nats://b:4222,") == ["nats://a:4222", "nats://b:4222"]
    assert server_list("nats://a:4222") == ["nats://a:4222"]


async def test_the_broker_connects_through_the_node_that_is_up(nats_server: EmbeddedNats) -> None:
    down = f"nats://127.0.0.1:{free_port()}"
    broker = make_broker(f"{down},{nats_server.url}", connect_timeout=1)
    try:
        await broker.connect()
        assert broker.connection.is_connected
        assert broker.connection.connected_url is not None
        assert str(broker.connection.connected_url.port) in nats_server.url
    finally:
        await broker.stop()
