"""The ledger's Redis view with budgets: each ledger event applied to the aggregates and
settled into the budget counters, each once (by event id, by request id)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis

from bus.messages import LedgerEvent
from cost_ledger import keys as ledger_keys
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.store import BudgetStore


class LedgerView(AggregateStore):
    """AggregateStore that also settles budgets, so the ledger consumer keeps both.

    The router settles right after the answer; this settles whatever it could not (a replica
    killed between publishing and settling, a Redis error), and a rebuild replays it all.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        budgets: BudgetStore,
        *,
        seen_ttl_s: int = ledger_keys.SEEN_TTL_S,
    ) -> None:
        super().__init__(redis, seen_ttl_s=seen_ttl_s)
        self.budgets = budgets

    async def settle_applied(self, events: Sequence[LedgerEvent], new: Sequence[bool]) -> None:
        """Settle each event of an applied batch into the budgets (final if newly applied),
        concurrently: each settle is its own idempotent script."""
        await asyncio.gather(
            *(self.budgets.settle_event(e, final=n) for e, n in zip(events, new, strict=True))
        )

    async def apply(self, event: LedgerEvent) -> bool:
        """Apply an event to the aggregates and settle it into the budgets, each once."""
        applied = await super().apply(event)
        # The event the aggregates kept is the ledger's word on this request's cost.
        await self.budgets.settle_event(event, final=applied)
        return applied
