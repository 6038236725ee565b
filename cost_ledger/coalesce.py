"""Ledger events handled at the same time, applied together: each handler's event waits a
moment (COLLECT_S) for the others the consumer is working on, then one BatchApplier call
applies them all and each handler gets its own event's outcome.

The consumer keeps FastStream's per-message path (acks, nacks, dead letters, its AsyncAPI
entry); only the Redis work is done per batch, where the ledger's CPU went (arguments packed
and sent for one script per event).
"""

from __future__ import annotations

import asyncio
import contextvars

from bus.messages import LedgerEvent
from cost_ledger.aggregates import Applied
from cost_ledger.batch_apply import BatchApplier

COLLECT_S = 0.02
"""How long the first event of a batch waits for company (at 200 events a second, about 4
come in that time): the most batching adds to an event's way to the aggregates and to its
budget settle, never to a request's answer."""
MAX_ITEMS = 64


class EventCoalescer:
    """Collects events applied concurrently and applies them in one call."""

    def __init__(
        self, applier: BatchApplier, *, collect_s: float = COLLECT_S, max_items: int = MAX_ITEMS
    ) -> None:
        self._applier = applier
        self._collect_s = collect_s
        self._max_items = max_items
        self._pending: list[tuple[LedgerEvent, asyncio.Future[Applied]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def apply(self, event: LedgerEvent) -> Applied:
        """Apply event (once per event id) with the others collected meanwhile; raises what
        applying it raised (a Redis error, or a bad value of this event's own)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Applied] = loop.create_future()
        self._pending.append((event, future))
        if len(self._pending) >= self._max_items:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(
                self._collect_s, self._flush, context=contextvars.Context()
            )
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(
                self._apply(batch), context=contextvars.Context()
            )
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _apply(self, batch: list[tuple[LedgerEvent, asyncio.Future[Applied]]]) -> None:
        try:
            outcomes = await self._applier.outcomes([event for event, _ in batch])
        except Exception as exc:  # Redis failed: every handler retries its own event
            for _, future in batch:
                _settle(future, exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[Applied], outcome: Applied | Exception) -> None:
    if future.done():  # its handler was cancelled
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
