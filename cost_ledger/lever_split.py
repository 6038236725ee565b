"""Savings by lever from the ledger stream: every event's split, and the levers' own cost.

Read from the LEDGER stream (the money's truth), so it needs no aggregate of its own. An event
with overhead_of set is a lever's cost (a shadow check, a cascade's failed attempt): its cost
is charged to that lever (routing's own calls to ``routed``: cost_ledger.savings.
charged_lever). Every other event's split is completed by cost_ledger.savings.settled (older
events without a split give their whole saving to their lever), so the gross parts sum to
the answers' baseline minus their cost, and gross minus lever cost is the net saving.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus import subjects
from bus.codec import decode
from bus.messages import LedgerEvent
from cost_ledger.savings import by_charged_lever, settled

BATCH = 500


@dataclass(kw_only=True)
class LeverSplit:
    """Savings by lever over some ledger events, in micro-dollars."""

    gross: dict[str, int] = field(default_factory=dict)
    """Lever to what it took off the naive cost (the split, summed)."""
    lever_cost: dict[str, int] = field(default_factory=dict)
    """overhead_of (as booked and stored) to what those overhead calls cost."""
    baseline_micro_usd: int = 0
    spend_micro_usd: int = 0
    """Every event's cost, overhead included."""

    def add(self, event: LedgerEvent) -> None:
        """Count one event."""
        self.spend_micro_usd += event.cost_micro_usd
        self.baseline_micro_usd += event.baseline_micro_usd
        if event.overhead_of:
            name = event.overhead_of
            self.lever_cost[name] = self.lever_cost.get(name, 0) + event.cost_micro_usd
            return
        split = settled(
            event.savings_by_lever,
            event.baseline_micro_usd,
            event.cost_micro_usd,
            event.lever.value,
        )
        for name, amount in split.items():
            self.gross[name] = self.gross.get(name, 0) + amount

    @property
    def cost_by_lever(self) -> dict[str, int]:
        """Lever to what its own overhead calls cost (lever_cost keyed by charged lever)."""
        return by_charged_lever(self.lever_cost)

    @property
    def net(self) -> dict[str, int]:
        """Lever to its saving net of its own cost: gross less cost_by_lever."""
        costs = self.cost_by_lever
        names = sorted(set(self.gross) | set(costs))
        return {n: self.gross.get(n, 0) - costs.get(n, 0) for n in names}


async def lever_split(js: JetStreamContext, tenants: Collection[str] | None = None) -> LeverSplit:
    """The split over every ledger event in the stream (of tenants, when given)."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        filter_subject=subjects.LEDGER_ALL,
        inactive_threshold=60.0,
    )
    sub = await js.pull_subscribe(subjects.LEDGER_ALL, stream=subjects.STREAM_LEDGER, config=config)
    out = LeverSplit()
    try:
        while True:
            try:
                batch = await sub.fetch(BATCH, timeout=2.0)
            except nats.errors.TimeoutError:
                break
            for msg in batch:
                event = decode(msg.data, LedgerEvent)
                if tenants is None or event.tenant in tenants:
                    out.add(event)
            if batch[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out
