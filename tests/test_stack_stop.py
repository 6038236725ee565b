"""Stopping a stack whose nats-server is gone: its connection is closed, not left reconnecting.

FastStream's stop drains the connection first, and nats-py refuses to drain one that is
reconnecting; the stack must then close it (bus.broker.stop_broker), as the CLI's session
does, or its client keeps trying to reconnect for as long as the process lives."""

from __future__ import annotations

import pytest

from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.settings import Settings
from flipsync.stack import Service, start_stack
from tests.helpers import eventually

RECONNECTING_WITHIN_S = 10.0
"""From the kill to the client's noticing (the socket closes: at once on loopback)."""


@pytest.mark.chaos
async def test_a_stack_whose_nats_is_gone_closes_its_connection_when_stopped(
    own_nats: EmbeddedNats, redis_server: EmbeddedRedis
) -> None:
    settings = Settings(nats_url=own_nats.url, redis_url=redis_server.url)
    stack = await start_stack(settings, [Service.WORKFLOW])
    connection = stack.broker.connection
    await own_nats.kill()

    async def reconnecting() -> bool:
        return connection.is_reconnecting

    await eventually(reconnecting, RECONNECTING_WITHIN_S)
    await stack.stop()
    assert connection.is_closed
