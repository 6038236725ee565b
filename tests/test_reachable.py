"""What an unreachable NATS is called (bus.reachable): a port where nothing listens is a
refused connection, one that accepts and never speaks NATS is "no answer"."""

from __future__ import annotations

import asyncio

import pytest

from bus.embedded.process import free_port
from bus.reachable import Unreachable, reach_nats


async def never() -> None:
    """A connect that never finishes, as nats-py's does while it retries."""
    await asyncio.Event().wait()


async def test_nothing_listening_is_a_refused_connection() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as caught:
        await reach_nats(url, never, 0.2)
    assert caught.value.cause == "connection refused: nothing listens there"
    assert str(caught.value).startswith(f"cannot reach NATS at {url} within 0.2 s")


async def test_a_silent_listener_is_no_answer() -> None:
    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # accepts, says nothing
        await writer.wait_closed()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dead = f"nats://127.0.0.1:{free_port()}"
    try:
        # One node of a cluster URL listening is enough to say "no answer".
        with pytest.raises(Unreachable) as caught:
            await reach_nats(f"{dead},nats://127.0.0.1:{port}", never, 0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.cause == "no answer"
