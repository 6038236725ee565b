"""The state one request carries through the pipeline stages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bus.messages import Lever, LlmRequest, Usage
from router.batching.shares import allocate

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Route:
    """Where a request goes: a model at a provider, and why."""

    model: str
    provider: str
    reason: str
    fallbacks: tuple[Fallback, ...] = ()
    """Next-best (model, provider) pairs, best first, for dispatch to try if this one fails."""


@dataclass(frozen=True, kw_only=True)
class Fallback:
    """One step of a route's fallback chain."""

    model: str
    provider: str


@dataclass(frozen=True, kw_only=True)
class PaidCall:
    """A provider call this request paid for, noted the moment its answer arrived."""

    model: str
    provider: str
    usage: Usage
    cost_micro_usd: int
    simulated: bool


@dataclass(kw_only=True)
class RequestContext:
    """One request in the pipeline: the request, its route once chosen, and its clock."""

    request: LlmRequest
    route: Route | None = None
    disabled_levers: frozenset[Lever] = frozenset()
    """Levers switched off for this request by a feature flag or an experiment arm."""
    routing_policy: str | None = None
    """A flag's or arm's override of the routing policy (cheapest, fastest or balanced)."""
    arm: str | None = None
    """The experiment arm the request was assigned to ("experiment/arm"), for the ledger."""
    top_up: Callable[[int], Awaitable[bool]] | None = None
    """Set by the budget stage: grows this request's reservation (see reserve_more)."""
    reserved_micro_usd: int | None = None
    """Set by the budget stage: what this request's reservation holds now (None: no budget
    stage, so nothing is reserved and nothing caps its share of a call)."""
    paid: list[PaidCall] = field(default_factory=list)
    """Provider calls answered for this request so far: a failure after them still books them."""
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    started_monotonic: float = field(default_factory=time.monotonic)
    delivery: int = 1
    """JetStream's delivery count of the request: above 1, an earlier delivery may have
    stored an outcome for this request id (its result, a coalesced call it led)."""
    new_id: bool = False
    """Set by the ids stage when this delivery claimed the request id first: no earlier
    delivery can have kept an answer for it, so dispatch need not look one up."""
    defer_after: bool = False
    """Set by the router service: bookkeeping that need not hold the result back (the budget
    settle, dedup's finish) is left for after the result is published (later, run_after)."""
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """That bookkeeping, in the order the stages left it (innermost first)."""
    booked_micro_usd: int = 0
    """Booked for this request outside its own settle: its part of a call booked at its
    bound because the answer was unusable or the call's lease lapsed (router.paid_answers).
    That part is spend, not room this reservation holds for its own settle
    (spent_elsewhere): a further call needs room beside it."""
    shared_micro_usd: int = 0
    """Its share of a packed call that failed for it, paid before it was retried alone (its
    result carries it, so its settle charges it)."""
    settled: tuple[int, int] | None = None
    """(cost, messages) the budget stage's settle charged first in every budget group; the
    ledger event says so, and the ledger does not settle it again."""

    async def reserve_more(self, extra_micro_usd: int) -> bool:
        """Grow the budget reservation before spending more than was reserved (a fallback to a
        dearer model, a cascade escalation, a packed item retried alone); False means a budget
        has no room, so do not spend it. True when no budget stage runs."""
        if self.top_up is None or extra_micro_usd <= 0:
            return True
        return await self.top_up(extra_micro_usd)

    async def later(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run a stage's bookkeeping after the result is published, when the service defers
        it (defer_after); now otherwise (a test's pipeline, a shadow call). work must not
        raise for a failure the caller should see: it runs after the caller has its result."""
        if self.defer_after:
            self.after.append(work)
        else:
            await work()

    async def run_after(self) -> None:
        """Run the deferred bookkeeping in order; a failure is logged and the rest still run.
        A cancellation (a stop past its grace) lets every item run too, then is raised: an
        item skipped would leave a dedup claim or a reservation kept alive for nothing."""
        work, self.after = self.after, []
        cancelled: asyncio.CancelledError | None = None
        for item in work:
            try:
                await item()
            except asyncio.CancelledError as exc:
                cancelled = exc
            except Exception:
                log.warning("bookkeeping of request %s failed after its result",
                            self.request.id, exc_info=True)  # fmt: skip
        if cancelled is not None:
            raise cancelled

    def spent_elsewhere(self, amount: int) -> None:
        """amount of this request's reservation went to a booking under another id (a call
        booked at its bound): it moves from the reservation to booked_micro_usd here. In
        Redis the booking's first settle takes it off the reservation (LedgerEvent.reserved_by,
        BudgetStore.settle), wherever and whenever that settle lands; until then Redis holds
        more than this view, never less."""
        self.booked_micro_usd += amount
        if self.reserved_micro_usd is not None:
            self.reserved_micro_usd = max(self.reserved_micro_usd - amount, 0)

    def committed_micro_usd(self) -> int:
        """What this request's own settle will charge against its reservation so far: its
        calls and a packed share it paid (what was booked elsewhere left the reservation)."""
        paid = sum(p.cost_micro_usd for p in self.paid)
        return paid + self.shared_micro_usd

    async def room_for(self, bound: int) -> bool:
        """Before one more call of at most bound: grow the reservation until it holds what
        was committed plus bound; False means a budget has no room, so do not make the call.
        True when no budget stage runs."""
        if self.reserved_micro_usd is None:
            return True
        need = self.committed_micro_usd() + bound - self.reserved_micro_usd
        return need <= 0 or await self.reserve_more(need)

    def remaining_s(self) -> float | None:
        """Seconds left before the requester's deadline, or None without a deadline."""
        if not self.request.deadline_ms:
            return None
        return self.request.deadline_ms / 1000 - time.time()

    def elapsed_ms(self) -> float:
        """Milliseconds since the pipeline took the request."""
        return (time.monotonic() - self.started_monotonic) * 1000


async def cover(bound: int, payers: Sequence[RequestContext]) -> list[bool]:
    """Grow the reservations of the requests one call serves (a packed call's items) until
    together they hold bound, the call's maximum cost: each by an even share of what they
    lack, all at once (one Redis round trip). Returns which of them the budgets let grow; a
    refused one must not take part in the call. Without a budget stage, nothing to grow."""
    held = [p.reserved_micro_usd for p in payers]
    if not payers or any(h is None for h in held):
        return [True] * len(payers)
    lack = bound - sum(h for h in held if h is not None)
    if lack <= 0:
        return [True] * len(payers)
    extras = allocate(lack, [1] * len(payers))
    return list(
        await asyncio.gather(*(p.reserve_more(e) for p, e in zip(payers, extras, strict=True)))
    )
