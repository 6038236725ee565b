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

from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, now_ms
from cost_ledger.budgets import keys, scripts
from cost_ledger.budgets.alerts import Alerter, AlertSink
from cost_ledger.budgets.config import BudgetRules, EngineSettings
from cost_ledger.budgets.crossings import crossings, used_up
from cost_ledger.budgets.gate import Reservation, Settlement
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.policy import (
    Check,
    Subject,
    Unit,
    charges,
    checks,
)
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.waiters import Waiters

if TYPE_CHECKING:
    from cost_ledger.budgets.status import BudgetStatus

Clock = Callable[[], int]
"""Unix milliseconds now."""
WAKE_PER_RELEASE = 2
"""Waiters woken by each settle or release in this replica."""


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
        self._extend = redis.register_script(scripts.EXTEND)
        self._release = redis.register_script(scripts.RELEASE)
        self._keepalive = redis.register_script(scripts.KEEPALIVE)
        self._sweep = redis.register_script(scripts.SWEEP)
        self._waiters = Waiters()

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
        found = await self._checks(subject, max_cost)
        if not found:
            return Reservation(code=Code.RESERVED)
        args = self._reservation_args(request_id, found)
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
        full = used_up(check, got.spent) if code is Code.DENIED else None
        if full is not None and check.unit is Unit.USD:
            await self._alerter.fire([full])
        return got

    async def extend(self, request_id: str, subject: Subject, extra_cost: int) -> Reservation:
        """Add extra_cost to a standing reservation in every money counter, all or none."""
        found = [c for c in await self._checks(subject, extra_cost) if c.unit is Unit.USD]
        if not found or extra_cost <= 0:
            return Reservation(code=Code.RESERVED)
        args = self._reservation_args(request_id, found)
        reply = await self._extend(
            keys=[
                keys.RESERVATIONS,
                keys.reservation(request_id),
                *(keys.counter(c.counter) for c in found),
            ],
            args=args,
        )
        code = Code(int(reply[0]))
        if code is not Code.DENIED:
            return Reservation(code=code)
        check = found[int(reply[1]) - 1]
        return Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))

    async def _checks(self, subject: Subject, amount: int) -> list[Check]:
        """The counters a request of subject holding amount must fit in, under the live rules."""
        rules = await self.live.current()
        engine = self.live.engine
        return checks(
            rules.budgets.values(),
            rules.tiers,
            subject,
            max_cost=amount,
            at_ms=self._clock(),
            overlap_ms=engine.period_overlap_s * 1000,
            default_tier=engine.default_tier,
        )

    def _reservation_args(self, request_id: str, found: list[Check]) -> list[str | int]:
        """RESERVE's and EXTEND's arguments: id, ttl, prefix, then each counter's triple."""
        args: list[str | int] = [
            request_id,
            int(self.live.engine.reservation_ttl_s * 1000),
            keys.RESERVATION_PREFIX,
        ]
        for check in found:
            args += [check.limit, check.amount, check.expire_at_s]
        return args

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
            self._waiters.wake(WAKE_PER_RELEASE)
        code = int(reply[0])
        if not code:
            return Settlement(applied=False)
        if not alerts or cost <= 0:
            return Settlement(applied=True, corrected=code == 2)
        spent = {c.counter: int(v) for c, v in zip(found, reply[1:], strict=True)}
        owed = crossings(self.live.rules.budgets.values(), subject, spent, at_ms)
        sent = await self._alerter.fire(owed)
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
            self._waiters.wake(WAKE_PER_RELEASE)
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
            self._waiters.wake(WAKE_PER_RELEASE * released)
        return released

    async def wait_for_release(self, timeout_s: float) -> None:
        """Return when this replica frees room (waking WAKE_PER_RELEASE waiters, longest
        waiting first), or after timeout_s."""
        await self._waiters.wait(timeout_s)

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
