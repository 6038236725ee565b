"""One heartbeat task per process for everything in flight that must say it is still alive.

A request in the router holds two leases: its JetStream message (in-progress acks, or it is
redelivered after ack_wait) and its budget reservation (a keep-alive, or it expires). Each used
to get its own task that slept and beat until cancelled: two tasks, two timers and two
cancellations per request, though nearly every request finishes long before its first beat.
Here a block registers its beat (`async with beating(every_s, beat)`), and one task per event
loop wakes when the earliest beat is due. Registering and leaving cost a dict insert and
delete; a beat that is due runs as its own task, so one slow beat (Redis away) never delays
another lease's. A beat that fails is ignored, as before: the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

Beat = Callable[[], Awaitable[object]]


class Heartbeat:
    """The beats registered on one event loop, each due every_s after its last."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ids = itertools.count()
        # Per interval, entries in due order: an entry's next due time is always the latest.
        self._groups: dict[float, dict[int, tuple[float, Beat]]] = {}
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = float("inf")
        self._running: set[asyncio.Task[None]] = set()

    def add(self, every_s: float, beat: Beat) -> tuple[float, int]:
        """Register beat, first due every_s from now; returns its key for remove()."""
        key = next(self._ids)
        due = self._loop.time() + every_s
        self._groups.setdefault(every_s, {})[key] = (due, beat)
        if due < self._wake_at:
            self._schedule(due)
        return every_s, key

    def remove(self, handle: tuple[float, int]) -> None:
        """Stop beating (a beat already running finishes)."""
        every_s, key = handle
        group = self._groups.get(every_s)
        if group is not None:
            group.pop(key, None)
            if not group:
                del self._groups[every_s]

    def __len__(self) -> int:
        """Beats registered."""
        return sum(len(g) for g in self._groups.values())

    def _schedule(self, at: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = at
        self._wake = self._loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self._wake, self._wake_at = None, float("inf")
        now = self._loop.time()
        earliest = float("inf")
        for every_s, group in self._groups.items():
            while group:
                key, (due, beat) = next(iter(group.items()))
                if due > now:
                    earliest = min(earliest, due)
                    break
                del group[key]
                group[key] = (now + every_s, beat)  # to the end: the latest due
                task = self._loop.create_task(_quietly(beat))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        if earliest < float("inf"):
            self._schedule(earliest)


async def _quietly(beat: Beat) -> None:
    with contextlib.suppress(Exception):
        await beat()


_HEARTBEATS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Heartbeat] = (
    weakref.WeakKeyDictionary()
)


def heartbeat() -> Heartbeat:
    """The running event loop's heartbeat."""
    loop = asyncio.get_running_loop()
    found = _HEARTBEATS.get(loop)
    if found is None:
        found = _HEARTBEATS[loop] = Heartbeat(loop)
    return found


@contextlib.asynccontextmanager
async def beating(every_s: float, beat: Beat) -> AsyncIterator[None]:
    """Run beat every every_s (the first after every_s) while the block runs."""
    beats = heartbeat()
    handle = beats.add(every_s, beat)
    try:
        yield
    finally:
        beats.remove(handle)
