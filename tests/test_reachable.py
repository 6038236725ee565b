"""What an unreachable NATS is called (bus.reachable): a port where nothing listens is a
refused connection, one that accepts and never speaks NATS is "no answer"."""

from __future__ import annotations

import asyncio

import pytest

from bus.connection_lost import unless_lost
from bus.embedded.process import free_port
from bus.reachable import Unreachable, reach_nats, redact_url


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


async def test_nothing_listening_gives_up_without_waiting_for_the_timeout() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as caught:
        async with asyncio.timeout(30):  # far past the grace: only the watcher can end it
            await reach_nats(url, never, 600)
    assert caught.value.cause == "connection refused: nothing listens there"
    assert str(caught.value).startswith(f"cannot reach NATS at {url} within 1 s ")


async def test_a_server_that_comes_up_within_the_grace_is_reached() -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    up = asyncio.Event()

    async def connect() -> str:
        await up.wait()
        return "connected"

    async def start_late() -> asyncio.Server:
        await asyncio.sleep(0)  # after the first probe may have found nothing; well in the grace
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        up.set()
        return server

    starting = asyncio.create_task(start_late())
    assert await reach_nats(url, connect, 600) == "connected"
    server = await starting
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://user:secret@host:4222", "nats://user:***@host:4222"),
        ("nats://s3cretTOKEN@host:4222", "nats://***@host:4222"),
        ("redis://:pw@a:6379,redis://tok@b:6379", "redis://:***@a:6379,redis://***@b:6379"),
        ("nats://host:4222", "nats://host:4222"),
    ],
)  # fmt: skip
def test_a_url_is_named_without_its_password_or_token(url: str, shown: str) -> None:
    """A password, and a NATS token (a user part with no colon), never reach a printed line."""
    assert redact_url(url) == shown


class _BrokenConnection:
    """A connection whose state cannot be read (the watch itself fails)."""

    @property
    def is_connected(self) -> bool:
        raise RuntimeError("state unreadable")

    @property
    def is_closed(self) -> bool:
        return False


async def test_a_failing_watch_raises_its_own_error_not_a_cancellation() -> None:
    """unless_lost cancels the work when its watch fails, and raises the watch's error: a
    CancelledError would read as Ctrl-C."""
    with pytest.raises(RuntimeError, match="state unreadable"):
        await unless_lost(asyncio.sleep(5), _BrokenConnection(), "nats://h", 1.0)
