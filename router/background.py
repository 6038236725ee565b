"""Work started off the response path, bounded: shadow checks, shadow evaluations, judges."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class Background:
    """At most ``limit`` background tasks under way at once; one started beyond that is
    skipped (a share is a ceiling, not a promise)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Start work in the background unless the limit is reached; True if started."""
        if len(self._running) >= self._limit:
            return False
        task = asyncio.create_task(work())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return True

    async def drain(self) -> None:
        """Wait for the work under way (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
