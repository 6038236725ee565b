"""An embedded server whose chosen port another process took before it bound it starts on
another port; a port the caller gave is never changed behind its back."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bus.embedded.nats_server import EmbeddedNats
from bus.embedded.process import ServerProcess, ephemeral_ports, free_port
from bus.embedded.redis_server import EmbeddedRedis
from bus.errors import EmbeddedServerError


@pytest.fixture
def squatter() -> Iterator[socket.socket]:
    """A listening socket, as another process that took a port would hold it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", free_port()))
    sock.listen()
    yield sock
    sock.close()


def test_free_ports_are_drawn_below_the_ephemeral_range() -> None:
    low, _high = ephemeral_ports()
    assert all(port < low for port in (free_port() for _ in range(50)))


@pytest.mark.parametrize("kind", [EmbeddedRedis, EmbeddedNats])
async def test_a_taken_chosen_port_moves_the_first_start(
    kind: type[ServerProcess], squatter: socket.socket
) -> None:
    server = kind()
    taken = squatter.getsockname()[1]
    server.port = taken  # taken between our check and the server's bind
    await server.start()
    try:
        assert server.port != taken
        assert await server.ready()
        assert "address already in use" in server.log_tail(200).lower()
    finally:
        await server.stop()


async def test_another_server_answering_on_the_port_is_not_taken_for_ours() -> None:
    other = EmbeddedRedis()
    await other.start()
    ours = EmbeddedRedis()
    ours.port = other.port  # a server of someone else's answers PING there
    try:
        await ours.start()
        assert ours.port != other.port and ours.pid != other.pid
        assert await ours.ready()
    finally:
        await ours.stop()
        await other.stop()


async def test_a_given_port_that_is_taken_fails_with_the_port(squatter: socket.socket) -> None:
    taken = squatter.getsockname()[1]
    server = EmbeddedRedis(port=taken)
    with pytest.raises(EmbeddedServerError, match=f"port {taken}"):
        await server.start(ready_within_s=5)
    assert server.port == taken
