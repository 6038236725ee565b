"""Budget pressure for routing: how much of its tightest budget a request's subject has spent.

Pressure is spent/limit of the tightest dollar budget that applies to the request (tenant,
agent, workflow, global; day or month), 0 when none applies, capped at 1. Settled spend
only: in-flight reservations come and go too fast to steer by. Each counter's spend is kept
for ``refresh_s``, so routing reads Redis at most that often per counter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bus.messages import LlmRequest, now_ms
from cost_ledger.budgets.policy import Subject, Unit, checks
from cost_ledger.budgets.store import BudgetStore
from router.stages.budget import subject_of

log = logging.getLogger(__name__)
MAX_COUNTERS = 4096
"""Counters remembered at once; the memory is cleared when it grows past this."""


class BudgetPressure:
    """Reads a request's budget pressure (0..1) from the budget store; each counter's spend
    is kept for refresh_s, so requests of one tenant share one read."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._clock = clock
        self._spent: dict[str, tuple[int, float]] = {}

    async def of(self, request: LlmRequest) -> float:
        """The pressure on the request's tightest budget; 0 if it cannot be read."""
        try:
            return await self._read(subject_of(request))
        except Exception:  # routing must not fail because a budget could not be read
            log.warning("budget pressure of %s unreadable; taken as 0", request.id, exc_info=True)
            return 0.0

    async def _read(self, subject: Subject) -> float:
        rules = await self._store.rules()
        if not rules.budgets:
            return 0.0
        found = [
            c
            for c in checks(
                rules.budgets.values(),
                {},
                subject,
                max_cost=0,
                at_ms=now_ms(),
                overlap_ms=0,
            )
            if c.unit is Unit.USD
        ]
        worst = 0.0
        for check in found:
            if check.limit <= 0:
                return 1.0
            worst = max(worst, await self._spent_of(check.counter) / check.limit)
        return min(worst, 1.0)

    async def _spent_of(self, counter: str) -> int:
        now = self._clock()
        known = self._spent.get(counter)
        if known is not None and now - known[1] < self._refresh_s:
            return known[0]
        spent, _ = await self._store.counter(counter)
        if len(self._spent) >= MAX_COUNTERS:
            self._spent.clear()
        self._spent[counter] = (spent, now)
        return spent
