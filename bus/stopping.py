"""A process's stop, as handlers see it: long work gives way at once instead of holding the
broker's graceful stop (FastStream waits for every handler, then cancels them with a log).

A handler that gives way raises Stopped; bus.consumers turns that into a quiet nack, so the
message is delivered again once some process runs the service again (as after a crash),
unless its workflow was cancelled meanwhile (agents.cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The process is stopping: the work was abandoned, not failed."""


class Stopping:
    """Set once when the process starts to stop; work run through it is abandoned then."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def is_set(self) -> bool:
        """Whether the stop has begun."""
        return self._event.is_set()

    def set(self) -> None:
        """Begin the stop: every guarded piece of work gives way."""
        self._event.set()

    async def guard(self, work: Awaitable[T]) -> T:
        """work's result; raise Stopped if the stop begins first (work is cancelled, quietly)."""
        task = asyncio.ensure_future(work)
        if self.is_set:
            task.cancel()
        else:
            stop = asyncio.ensure_future(self._event.wait())
            try:
                await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                stop.cancel()
            if task.done():
                return task.result()
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task  # its own clean-up (unsubscribes, in-progress beats) runs now
        raise Stopped("the process is stopping")
