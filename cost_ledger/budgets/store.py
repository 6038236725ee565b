"""BudgetStore: reserve before dispatch, settle after, in Redis, shared by every replica.

- reserve(): the request's maximum cost is held in every counter a budget reads (tenant,
  agent, workflow, global; day and month) and its user's message quota, all or none, in one
  Lua script. A counter refuses when settled spend plus the amount would pass its limit;
  it says "wait" when only in-flight reservations are in the way.
- settle(): the actual cost is added to every counter of the request (whether a budget reads
  it or not) and its reservation is released, once per request id. Both the router (right
  after the answer) and the ledger consumer (from the LEDGER stream) settle; the first wins.
- A reservation not kept alive expires after reservation_ttl_s: any later script call
  releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bus.messages import BudgetAlert, LedgerEvent, now_ms
from cost_ledger.budgets import keys, scripts
from cost_ledger.budgets.alerts import Alerter, AlertSink, Crossing
from cost_ledger.budgets.config import BudgetRules, EngineSettings
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.policy import (
    Check,
    Subject,
    Unit,
    applies,
    charges,
    checks,
    scope_id,
    thresholds_reached,
)
from cost_ledger.budgets.scripts import Code

if TYPE_CHECKING:
    from cost_ledger.budgets.status import BudgetStatus

Clock = Callable[[], int]
"""Unix milliseconds now."""


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """What reserve() answered."""

    code: Code
    check: Check | None = None
    """The counter that refused or made the request wait."""
    spent: int = 0
    """Settled spend of that counter."""
    reserved: int = 0
    """Amount held by in-flight requests in that counter."""

    @property
    def holds(self) -> bool:
        """Whether the request may go on: it holds a reservation, or needs none."""
        return self.code in (Code.RESERVED, Code.HELD, Code.SETTLED)


@dataclass(frozen=True, kw_only=True)
class Settlement:
    """What settle() did."""

    applied: bool
    """False when the request id was settled before, with nothing to correct."""
    corrected: bool = False
    """A final settle replaced an earlier provisional one of another amount."""
    alerts: tuple[BudgetAlert, ...] = ()
    """Alerts this settle sent."""


class BudgetStore:
    """Reservations, settlements and counters of every budget, in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        live: LiveBudgets,
        *,
        alerts: AlertSink | None = None,
        clock: Clock = now_ms,
    ) -> None:
        self.redis = redis
        self.live = live
        self._clock = clock
        self._alerter = Alerter(redis, alerts)
        self._reserve = redis.register_script(scripts.RESERVE)
        self._settle = redis.register_script(scripts.SETTLE)
        self._release = redis.register_script(scripts.RELEASE)
        self._keepalive = redis.register_script(scripts.KEEPALIVE)
        self._sweep = redis.register_script(scripts.SWEEP)
        self._freed = asyncio.Event()

    @property
    def engine(self) -> EngineSettings:
        """Reservation settings of the budgets file."""
        return self.live.engine

    async def rules(self) -> BudgetRules:
        """The live rules (reloaded if another replica changed them)."""
        return await self.live.current()

    @property
    def alerter(self) -> Alerter:
        """Sends (and restores) alert markers."""
        return self._alerter

    async def reserve(self, request_id: str, subject: Subject, max_cost: int) -> Reservation:
        """Hold max_cost (and one message of a user's quota) in every counter a budget reads."""
        rules = await self.live.current()
        engine = self.live.engine
        found = checks(
            rules.budgets.values(),
            rules.tiers,
            subject,
            max_cost=max_cost,
            at_ms=self._clock(),
            overlap_ms=engine.period_overlap_s * 1000,
            default_tier=engine.default_tier,
        )
        if not found:
            return Reservation(code=Code.RESERVED)
        args: list[str | int] = [
            request_id,
            int(engine.reservation_ttl_s * 1000),
            keys.RESERVATION_PREFIX,
        ]
        for check in found:
            args += [check.limit, check.amount, check.expire_at_s]
        reply = await self._reserve(
            keys=[
                keys.RESERVATIONS,
                keys.reservation(request_id),
                keys.settled(request_id),
                keys.READY,
                *(keys.counter(c.counter) for c in found),
            ],
            args=args,
        )
        code = Code(int(reply[0]))
        if code not in (Code.DENIED, Code.WAIT):
            return Reservation(code=code)
        check = found[int(reply[1]) - 1]
        got = Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))
        if code is Code.DENIED and check.unit is Unit.USD and _nearly_used(got.spent, check):
            await self._alerter.fire([_crossing(check, got.spent, 100)])  # used up: 100%
        return got

    async def settle(
        self,
        request_id: str,
        subject: Subject,
        *,
        cost: int,
        messages: int,
        at_ms: int,
        final: bool = False,
        alerts: bool = True,
    ) -> Settlement:
        """Add a finished request's cost (and messages) to its counters and release its
        reservation, once per request id; at_ms (its finish) picks the periods.

        The router's settle is provisional; the ledger's is final (final=True) and corrects
        a provisional one of another amount (a request answered twice, by two replicas).
        """
        found = charges(subject, at_ms)
        args: list[str | int] = [
            request_id, keys.SETTLED_TTL_S, keys.RESERVATION_PREFIX, "f" if final else "p",
            cost, messages,
        ]  # fmt: skip
        for charge in found:
            args += ["u" if charge.unit is Unit.USD else "m", charge.expire_at_s]
        try:
            reply = await self._settle(
                keys=[
                    keys.RESERVATIONS,
                    keys.reservation(request_id),
                    keys.settled(request_id),
                    *(keys.counter(c.counter) for c in found),
                ],
                args=args,
            )
        finally:
            self._wake()
        code = int(reply[0])
        if not code:
            return Settlement(applied=False)
        if not alerts or cost <= 0:
            return Settlement(applied=True, corrected=code == 2)
        spent = {c.counter: int(v) for c, v in zip(found, reply[1:], strict=True)}
        sent = await self._alerter.fire(self._crossings(subject, spent, at_ms))
        return Settlement(applied=True, corrected=code == 2, alerts=tuple(sent))

    async def settle_event(
        self, event: LedgerEvent, *, final: bool = True, alerts: bool = True
    ) -> Settlement:
        """Settle from a ledger event (the ledger consumer, or a rebuild); idempotent.

        final: the event was just applied to the aggregates, so its cost is the one the
        ledger keeps for this request; a duplicate event is settled provisionally (a no-op
        once anything was settled).
        """
        messages = 1 if event.user and event.paid_call else 0
        subject = Subject(
            tenant=event.tenant, agent=event.agent, workflow=event.workflow_id, user=event.user
        )
        at_ms = event.finished_ms or event.started_ms or self._clock()
        return await self.settle(
            event.request_id,
            subject,
            cost=event.cost_micro_usd,
            messages=messages,
            at_ms=at_ms,
            final=final,
            alerts=alerts,
        )

    async def release(self, request_id: str) -> bool:
        """Drop a request's reservation without charging anything (it failed unpaid)."""
        try:
            held = await self._release(
                keys=[keys.RESERVATIONS, keys.reservation(request_id)],
                args=[request_id, keys.RESERVATION_PREFIX],
            )
        finally:
            self._wake()
        return bool(held)

    async def keepalive(self, request_id: str) -> bool:
        """Push a live request's reservation expiry back by reservation_ttl_s."""
        ttl_ms = int(self.live.engine.reservation_ttl_s * 1000)
        kept = await self._keepalive(
            keys=[keys.RESERVATIONS, keys.reservation(request_id)], args=[request_id, ttl_ms]
        )
        return bool(kept)

    async def sweep(self) -> int:
        """Release expired reservations now; returns how many."""
        released = int(await self._sweep(keys=[keys.RESERVATIONS], args=[keys.RESERVATION_PREFIX]))
        if released:
            self._wake()
        return released

    async def wait_for_release(self, timeout_s: float) -> None:
        """Return when this replica settles or releases something, or after timeout_s."""
        freed = self._freed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await freed.wait()

    async def status(
        self,
        tenant: str | None = None,
        *,
        agent: str | None = None,
        workflow: str | None = None,
        user: str | None = None,
        tier: str | None = None,
    ) -> list[BudgetStatus]:
        """Each budget's limit, spent, reserved, period and alerts sent, for a tenant or all
        (see status.budget_status)."""
        from cost_ledger.budgets.status import budget_status  # status reads this store

        return await budget_status(
            self, tenant, agent=agent, workflow=workflow, user=user, tier=tier
        )

    async def ready(self) -> bool:
        """Whether the counters are complete (not a flushed Redis awaiting a rebuild)."""
        return bool(await self.redis.exists(keys.READY))

    async def mark_ready(self) -> None:
        """Say the counters are complete: after a rebuild, or on a fresh deployment."""
        await self.redis.set(keys.READY, str(self._clock()))

    async def counter(self, counter_id: str) -> tuple[int, int]:
        """(spent, reserved) of one counter."""
        spent, reserved = await self.redis.hmget(keys.counter(counter_id), ["spent", "reserved"])
        return int(spent or 0), int(reserved or 0)

    async def held(self) -> int:
        """How many reservations are held (expired ones included until swept)."""
        return int(await self.redis.zcard(keys.RESERVATIONS))

    def _wake(self) -> None:
        """Wake this replica's waiters: room may have been freed."""
        self._freed.set()
        self._freed = asyncio.Event()

    def _crossings(self, subject: Subject, spent: dict[str, int], at_ms: int) -> list[Crossing]:
        out: list[Crossing] = []
        for spec in self.live.rules.budgets.values():
            scope = scope_id(spec.scope, subject)
            if scope is None or not applies(spec, subject):
                continue
            key = period_key(spec.period, at_ms)
            amount = spent.get(f"{scope}:{key}")
            if amount is None:
                continue
            for percent in thresholds_reached(amount, spec.limit_micro_usd):
                out.append(
                    Crossing(
                        budget=spec.name,
                        scope=scope,
                        period=spec.period,
                        period_key=key,
                        limit=spec.limit_micro_usd,
                        spent=amount,
                        percent=percent,
                    )
                )
        return out


def _crossing(check: Check, spent: int, percent: int) -> Crossing:
    return Crossing(
        budget=check.budget,
        scope=check.scope,
        period=check.period,
        period_key=check.period_key,
        limit=check.limit,
        spent=spent,
        percent=percent,
    )


def _nearly_used(spent: int, check: Check) -> bool:
    """A refusal means "used up" (the 100% alert) only once the budget is past 80%; before
    that it is one request too large for what is left, said in its own error result."""
    return 80 in thresholds_reached(spent, check.limit)
