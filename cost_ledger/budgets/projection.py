"""The ledger's Redis view with budgets: each ledger event applied to the aggregates and
settled into the budget counters, each once (by event id, by request id)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis

from bus.messages import LedgerEvent
from cost_ledger import keys as ledger_keys
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.policy import event_messages
from cost_ledger.budgets.store import BudgetStore


class LedgerView(AggregateStore):
    """AggregateStore that also settles budgets, so the ledger consumer keeps both.

    The router settles right after the answer; this settles whatever it could not (a replica
    killed between publishing and settling, a Redis error), and a rebuild replays it all.
    An event whose router_settled says the router's settle already charged exactly what this
    one would is not settled again (settle once; see settled_by_router).
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
        concurrently: each settle is its own idempotent script. Events the router settled
        already, to the same amount, are skipped."""
        await asyncio.gather(
            *(
                self.budgets.settle_event(e, final=n)
                for e, n in zip(events, new, strict=True)
                if not settled_by_router(e)
            )
        )

    async def apply(self, event: LedgerEvent) -> bool:
        """Apply an event to the aggregates and settle it into the budgets, each once."""
        applied = await super().apply(event)
        # The event the aggregates kept is the ledger's word on this request's cost.
        await self.budgets.settle_event(event, final=applied)
        return applied


def settled_by_router(event: LedgerEvent) -> bool:
    """Whether the router's own settle charged, first in every budget group, exactly what
    settling this event would (its cost, and its message for a user's paid call).

    Then the budget counters already equal the ledger for this request: a final settle would
    change nothing (a provisional one of the same amount is what it would confirm), so the
    ledger skips it. A router that died before settling, a settle that failed or found the
    request settled before, or a different amount leaves router_settled empty or unequal,
    and the ledger settles as before.
    """
    return event.router_settled == settled_mark(event)


def settled_mark(event: LedgerEvent) -> str:
    """The router_settled of an event whose own settle charged it first in every budget group:
    its cost and its message for a user's paid call (as settle_event charges them)."""
    return f"{event.cost_micro_usd}:{event_messages(event)}"
