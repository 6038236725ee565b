"""A NATS connection that drops and does not come back: noticed in seconds, not at a timeout.

nats-py reconnects forever here (bus.broker: max_reconnect_attempts=-1, right for a service
that must outlive a server's restart), so a command waiting for messages hears nothing when
its server dies: it waited for its own --timeout (30 minutes for an upload). unless_lost()
ends such a wait once the connection has been down for a grace: a drop that reconnects
within it goes unnoticed.

The connection is polled, not hooked through nats-py's disconnected and reconnected
callbacks: those are fixed when the connection is made, and an embedded stack's connection
is made elsewhere (flipsync.stack).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from bus.reachable import Unreachable

T = TypeVar("T")

POLL_S = 0.1
"""How often the connection's state is read (a drop shorter than this may go unseen)."""


class Connection(Protocol):
    """What unless_lost reads of a connection (nats-py's Client has it)."""

    @property
    def is_connected(self) -> bool:
        """Whether it is connected now (not reconnecting, not closed)."""
        ...

    @property
    def is_closed(self) -> bool:
        """Whether it is closed for good (no reconnect will follow)."""
        ...


class NatsLost(Unreachable):
    """The connection to NATS dropped and did not come back within after_s (where: a
    redacted URL, or "the embedded server")."""

    def __init__(self, where: str, after_s: float) -> None:
        super().__init__("NATS", where, after_s, "connection lost")
        self.after_s = after_s
        self.args = (f"lost the connection to NATS at {where}; not back within {after_s:g} s",)

    def __str__(self) -> str:
        return str(self.args[0])


async def lost(connection: Connection, after_s: float) -> None:
    """Return once connection has been down for after_s in a row, or at once when closed."""
    loop = asyncio.get_running_loop()
    down_since: float | None = None
    while not connection.is_closed:
        now = loop.time()
        if connection.is_connected:
            down_since = None
        elif down_since is None:
            down_since = now
        elif now - down_since >= after_s:
            return
        await asyncio.sleep(POLL_S)


async def unless_lost(work: Awaitable[T], connection: Connection, where: str, after_s: float) -> T:
    """work's result; NatsLost (work cancelled first) once connection has been down for
    after_s while it ran."""
    working = asyncio.ensure_future(work)
    watching = asyncio.ensure_future(lost(connection, after_s))
    try:
        await asyncio.wait({working, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, watching):
            if not task.done():
                task.cancel()
        await asyncio.gather(working, watching, return_exceptions=True)
    if working.cancelled() and watching.done() and not watching.cancelled():
        failed = watching.exception()
        if failed is not None:
            raise failed  # the watch's own error, not a CancelledError that hides it
        raise NatsLost(where, after_s)
    return working.result()  # its value or its own error
