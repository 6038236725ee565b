"""The state one request carries through the pipeline stages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bus.messages import Lever, LlmRequest, Usage
from router.batching.shares import allocate


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
    """Grows this request's reservation (see reserve_more), where top_ups is not set."""
    top_ups: TopUps | None = None
    """Set by the budget stage: grows the reservations of several of its requests at once
    (cover() hands it the items of a packed call, reserve_more this one), in one round trip."""
    reserved_micro_usd: int | None = None
    """Set by the budget stage: what this request's reservation holds now (None: no budget
    stage, so nothing is reserved and nothing caps its share of a call)."""
    own_micro_usd: int | None = None
    """Set by the budget stage: the most the request's own call can cost. Its reservation may
    hold more: its part of a packed call's overhead, reserved up front when it may be packed."""
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
    settled: tuple[int, int] | None = None
    """(cost, messages) the budget stage's settle charged first in every budget group; the
    ledger event says so, and the ledger does not settle it again."""

    async def reserve_more(self, extra_micro_usd: int) -> bool:
        """Grow the budget reservation before spending more than was reserved (a fallback to a
        dearer model, a cascade escalation, a packed item retried alone); False means a budget
        has no room, so do not spend it. True when no budget stage runs."""
        if extra_micro_usd <= 0:
            return True
        if self.top_ups is not None:
            return (await self.top_ups([(self, extra_micro_usd)]))[0]
        if self.top_up is None:
            return True
        return await self.top_up(extra_micro_usd)

    def remaining_s(self) -> float | None:
        """Seconds left before the requester's deadline, or None without a deadline."""
        if not self.request.deadline_ms:
            return None
        return self.request.deadline_ms / 1000 - time.time()

    def elapsed_ms(self) -> float:
        """Milliseconds since the pipeline took the request."""
        return (time.monotonic() - self.started_monotonic) * 1000


TopUps = Callable[[Sequence[tuple[RequestContext, int]]], Awaitable[list[bool]]]
"""Grows each (request, extra micro-dollars) reservation, all or none per request; which grew."""


async def cover(bound: int, payers: Sequence[RequestContext]) -> list[bool]:
    """Grow the reservations of the requests one call serves (a packed call's items) until
    together they hold bound, the call's maximum cost. Returns which of them the budgets let
    grow; a refused one must not take part in the call. Without a budget stage, nothing to grow.

    The budget stage reserves a packable request's part of the packing overhead up front, so
    the items usually hold the bound already and nothing is sent. Otherwise each item is grown
    to its own maximum plus an even share of what the call costs beyond the items' own maxima
    (less what it holds already), all of them together: one script per budget group."""
    held = [p.reserved_micro_usd for p in payers]
    if not payers or any(h is None for h in held):
        return [True] * len(payers)
    holds = [h for h in held if h is not None]
    if bound - sum(holds) <= 0:
        return [True] * len(payers)
    own = [
        p.own_micro_usd if p.own_micro_usd is not None else h
        for p, h in zip(payers, holds, strict=True)
    ]
    even = allocate(max(bound - sum(own), 0), [1] * len(payers))
    extras = [max(o + e - h, 0) for o, e, h in zip(own, even, holds, strict=True)]
    batches: dict[object, list[tuple[RequestContext, int]]] = {}
    where: dict[object, list[int]] = {}
    for i, (payer, extra) in enumerate(zip(payers, extras, strict=True)):
        if extra > 0:  # by the budget stage that grows them together; each alone without one
            key: object = payer.top_ups or i
            batches.setdefault(key, []).append((payer, extra))
            where.setdefault(key, []).append(i)
    answers = await asyncio.gather(*(_grow(wanted) for wanted in batches.values()))
    granted = [True] * len(payers)
    for indices, answer in zip(where.values(), answers, strict=True):
        for i, ok in zip(indices, answer, strict=True):
            granted[i] = ok
    return granted


async def _grow(wanted: list[tuple[RequestContext, int]]) -> list[bool]:
    """Grow each request by its extra: together through its budget stage, or alone."""
    top_ups = wanted[0][0].top_ups
    if top_ups is not None:
        return await top_ups(wanted)
    return [await ctx.reserve_more(extra) for ctx, extra in wanted]
