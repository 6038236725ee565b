"""Requests waiting for budget room in this replica, woken a few at a time."""

from __future__ import annotations

import asyncio
import collections
import contextlib

WAKE_PER_RELEASE = 2
"""Waiters woken by each settle or release in this replica."""


class Waiters:
    """A queue of waiting requests; each release wakes the longest-waiting few.

    Waking a few, not all: one settled request frees about one reservation, and waking
    hundreds of waiters for it would only have them all ask Redis again. Room freed by other
    replicas is found by the waiters polling (their timeout).
    """

    def __init__(self) -> None:
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()

    async def wait(self, timeout_s: float) -> None:
        """Return when woken, or after timeout_s."""
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._queue.remove(waiter)

    def wake(self, count: int) -> None:
        """Wake up to count waiters, longest waiting first."""
        while count > 0 and self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def __len__(self) -> int:
        """How many are waiting."""
        return len(self._queue)
