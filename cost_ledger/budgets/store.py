"""BudgetStore: reserve before dispatch, settle after, in Redis, shared by every replica.

- reserve(): the request's maximum cost is held in every counter a budget reads (tenant,
  agent, workflow, workspace, project, global; day and month) and its user's message quota,
  all or none, in one Lua script. A counter refuses when settled spend plus the amount
  would pass its limit; it says "wait" when only in-flight reservations are in the way.
- settle(): the actual cost is added to every counter of the request (whether a budget reads
  it or not) and its reservation is released, once per request id. Both the router (right
  after the answer) and the ledger consumer (from the LEDGER stream) settle; the first wins.
- A reservation not kept alive expires after reservation_ttl_s: any later script call
  releases it.

Each script touches one counter group (a tenant's counters, or the global ones: one Redis
Cluster slot each, see keys.py). A request whose counters span groups reserves in each, in a
fixed order (its tenant's, then the global one); when a later group refuses, what the earlier
ones reserved is released again (compensation). docs/scaling.md argues why no budget can be
overspent this way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from bus.liveness import Liveness, LoopLiveness, Renewal
from bus.messages import LedgerEvent, now_ms
from cost_ledger.budgets import keys, scripts
from cost_ledger.budgets.alerts import Alerter, AlertSink
from cost_ledger.budgets.config import BudgetRules, EngineSettings
from cost_ledger.budgets.crossings import crossings, used_up
from cost_ledger.budgets.gate import Reservation, Settlement
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.policy import (
    Charge,
    Check,
    Subject,
    Unit,
    charges,
    checks,
    name_token,
)
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.waiters import Waiters

if TYPE_CHECKING:
    from cost_ledger.budgets.status import BudgetStatus

Clock = Callable[[], int]
"""Unix milliseconds now."""
WAKE_PER_RELEASE = 2
"""Waiters woken by each settle or release in this replica."""
_MEMO_MAX = 100_000
C = TypeVar("C", Check, "Charge")
log = logging.getLogger(__name__)


def event_messages(event: LedgerEvent) -> int:
    """The user messages a ledger event charges: one for a user's paid call, none for a call
    booked at its bound under its own id (reserved_by: lost, or billed and unusable), as its
    request charges the message when it settles, however many of its calls were booked."""
    return 1 if event.user and event.paid_call and not event.reserved_by else 0


def grouped(found: Iterable[C]) -> list[tuple[str, list[C]]]:
    """Counters by group, in the fixed order every replica uses: tenants' groups (by name),
    then the global group, the most contended, held for the shortest time."""
    groups: dict[str, list[C]] = {}
    for item in found:
        groups.setdefault(keys.group_of(item.counter), []).append(item)
    order = sorted(groups, key=lambda g: (g == keys.GLOBAL_GROUP, g))
    return [(g, groups[g]) for g in order]


def subject_groups(subject: Subject) -> list[str]:
    """The groups a subject's reservations can be in."""
    return [keys.tenant_group(name_token(subject.tenant)), keys.GLOBAL_GROUP]


class BudgetStore:
    """Reservations, settlements and counters of every budget, in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        live: LiveBudgets,
        *,
        alerts: AlertSink | None = None,
        clock: Clock = now_ms,
        liveness: Liveness | None = None,
    ) -> None:
        """liveness keeps held reservations alive (bus.liveness; default: beats on the loop)."""
        self.redis = redis
        self._liveness = liveness if liveness is not None else LoopLiveness(redis)
        self.live = live
        self._clock = clock
        self._alerter = Alerter(redis, alerts)
        self._reserve = redis.register_script(scripts.RESERVE)
        self._settle = redis.register_script(scripts.SETTLE)
        self._extend = redis.register_script(scripts.EXTEND)
        self._release = redis.register_script(scripts.RELEASE)
        self._sweep = redis.register_script(scripts.SWEEP)
        self._shrink = redis.register_script(scripts.SHRINK)
        self._give_back_script = redis.register_script(scripts.GIVE_BACK)
        self._waiters = Waiters()
        self._suspect = False
        """A reservation met a slot without its ready marker since the last full check."""
        self._known_groups: set[str] = set()
        """Groups this replica registered in keys.GROUPS already."""
        self._groups_of: dict[str, list[str]] = {}
        """Groups each request reserved in, here (a release without its subject uses it)."""

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
        """Hold max_cost (and one message of a user's quota) in every counter a budget reads,
        all or none: group by group in a fixed order, undoing earlier groups on a refusal."""
        found = await self._checks(subject, max_cost)
        if not found:
            return Reservation(code=Code.RESERVED, none_needed=True)
        groups = grouped(found)
        await self._register(g for g, _ in groups)
        self._remember(request_id, [g for g, _ in groups])
        done: list[str] = []
        held = False
        for group, group_checks in groups:
            reply = await self._reserve(
                keys=[
                    keys.reservations(group),
                    keys.reservation(group, request_id),
                    keys.settled(group, request_id),
                    keys.ready(group),
                    *(keys.counter(c.counter) for c in group_checks),
                ],
                args=self._reservation_args(request_id, group, group_checks),
            )
            code = Code(int(reply[0]))
            if code is Code.RESERVED:
                done.append(group)
                continue
            if code is Code.HELD:  # a redelivery: an earlier delivery holds this group
                held = True
                continue
            await self._undo(request_id, done)  # compensation: nothing held for a refusal
            if code is Code.NOT_READY:
                self._suspect = True  # a slot lost its marker: the watch checks every slot
            if code not in (Code.DENIED, Code.WAIT):
                return Reservation(code=code)
            check = group_checks[int(reply[1]) - 1]
            got = Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))
            full = used_up(check, got.spent) if code is Code.DENIED else None
            if full is not None and check.unit is Unit.USD:
                await self._alerter.fire([full])
            return got
        return Reservation(code=Code.HELD if held else Code.RESERVED)

    async def extend(self, request_id: str, subject: Subject, extra_cost: int) -> Reservation:
        """Add extra_cost to a standing reservation in every money counter, all or none."""
        found = await self._money_checks(subject, extra_cost)
        if not found or extra_cost <= 0:
            return Reservation(code=Code.RESERVED)
        grown: list[tuple[str, list[Check]]] = []
        for group, group_checks in grouped(found):
            reply = await self._extend(
                keys=[
                    keys.reservations(group),
                    keys.reservation(group, request_id),
                    *(keys.counter(c.counter) for c in group_checks),
                ],
                args=self._reservation_args(request_id, group, group_checks),
            )
            code = Code(int(reply[0]))
            if code is Code.RESERVED:
                grown.append((group, group_checks))
                continue
            for undo_group, undo_checks in grown:  # compensation: all groups or none
                await self._shrink(
                    keys=[
                        keys.reservation(undo_group, request_id),
                        *(keys.counter(c.counter) for c in undo_checks),
                    ],
                    args=[c.amount for c in undo_checks],
                )
            if code is not Code.DENIED:
                return Reservation(code=code)
            check = group_checks[int(reply[1]) - 1]
            return Reservation(code=code, check=check, spent=int(reply[2]), reserved=int(reply[3]))
        return Reservation(code=Code.RESERVED)

    async def _give_back(self, holder: str, subject: Subject, amount: int, only: set[str]) -> None:
        """Take amount off holder's standing reservation in the money counters of the groups
        in only: a booking under another id, settled there first, spent that room (a call of
        holder booked at its bound). Never below what holder holds in a counter."""
        found = await self._money_checks(subject, amount)
        await asyncio.gather(
            *(
                self._give_back_script(
                    keys=[
                        keys.reservation(group, holder),
                        *(keys.counter(c.counter) for c in group_checks),
                    ],
                    args=[amount],
                )
                for group, group_checks in grouped(found)
                if group in only
            )
        )

    async def _undo(self, request_id: str, groups: Sequence[str]) -> None:
        """Release what this request reserved in groups (a later group refused it)."""
        for group in reversed(groups):
            await self._release(
                keys=[keys.reservations(group), keys.reservation(group, request_id)],
                args=[request_id, keys.reservation_prefix(group)],
            )

    async def _register(self, groups: Iterable[str]) -> None:
        new = [g for g in groups if g not in self._known_groups]
        if new:
            await self.redis.sadd(keys.GROUPS, *new)
            self._known_groups.update(new)

    def _remember(self, request_id: str, groups: list[str]) -> None:
        if len(self._groups_of) > _MEMO_MAX:
            self._groups_of.clear()
        self._groups_of[request_id] = groups

    async def _all_groups(self) -> list[str]:
        raw = await self.redis.smembers(keys.GROUPS)
        return sorted({g.decode() if isinstance(g, bytes) else g for g in raw})

    async def _money_checks(self, subject: Subject, amount: int) -> list[Check]:
        """The money counters (not message quotas) a request of subject holding amount is in."""
        return [c for c in await self._checks(subject, amount) if c.unit is Unit.USD]

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

    def _reservation_args(self, request_id: str, group: str, found: list[Check]) -> list[str | int]:
        """RESERVE's and EXTEND's arguments: id, ttl, prefix, then each counter's triple."""
        args: list[str | int] = [
            request_id,
            int(self.live.engine.reservation_ttl_s * 1000),
            keys.reservation_prefix(group),
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
        reserved_by: str = "",
    ) -> Settlement:
        """Add a finished request's cost (and messages) to its counters and release its
        reservation, once per request id; at_ms (its finish) picks the periods.

        The router's settle is provisional; the ledger's is final (final=True) and corrects
        a provisional one of another amount (a request answered twice, by two replicas).
        reserved_by: the request whose reservation held this cost's room (a call booked at
        its bound under its own id); each group settling it first takes the cost off that
        reservation. A failure there leaves the room held until that request settles or its
        reservation expires: held twice for a while, never spent twice.
        """
        groups = grouped(charges(subject, at_ms))
        spent: dict[str, int] = {}
        codes: list[int] = []
        try:
            # Each group settles once, by itself, so the groups go together (one round trip).
            replies = await asyncio.gather(
                *(
                    self._settle_group(request_id, group, group_charges, final, cost, messages)
                    for group, group_charges in groups
                ),
                return_exceptions=True,
            )
        finally:
            self._groups_of.pop(request_id, None)
            self._waiters.wake(WAKE_PER_RELEASE)
        answered: list[list[Any]] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
            answered.append(reply)
        held = False
        for (_, group_charges), reply in zip(groups, answered, strict=True):
            codes.append(int(reply[0]))
            held = held or bool(int(reply[1]))
            if int(reply[0]):  # {0}: this group had it settled already
                spent.update(
                    (c.counter, int(v)) for c, v in zip(group_charges, reply[2:], strict=True)
                )
        if not any(codes):
            return Settlement(applied=False, held=held)
        first = {group for (group, _), code in zip(groups, codes, strict=True) if code == 1}
        if reserved_by and first and cost > 0:
            try:
                await self._give_back(reserved_by, subject, cost, first)
            except Exception:
                log.warning("%d micro-USD of %s's reservation not given back after %s settled"
                            " it", cost, reserved_by, request_id, exc_info=True)  # fmt: skip
        corrected = 2 in codes
        complete = all(code == 1 for code in codes)
        if not alerts or cost <= 0:
            return Settlement(applied=True, corrected=corrected, complete=complete, held=held)
        owed = crossings(self.live.rules.budgets.values(), subject, spent, at_ms)
        sent = await self._alerter.fire(owed)
        return Settlement(
            applied=True, corrected=corrected, alerts=tuple(sent), complete=complete, held=held
        )

    async def _settle_group(
        self,
        request_id: str,
        group: str,
        group_charges: list[Charge],
        final: bool,
        cost: int,
        messages: int,
    ) -> list[Any]:
        """SETTLE in one group: its reply (see scripts.SETTLE)."""
        marker_ttl_s = keys.settled_ttl_s((c.expire_at_s for c in group_charges), time.time())
        args: list[str | int] = [
            request_id, marker_ttl_s, keys.reservation_prefix(group),
            "f" if final else "p", cost, messages,
        ]  # fmt: skip
        for charge in group_charges:
            args += ["u" if charge.unit is Unit.USD else "m", charge.expire_at_s]
        reply: list[Any] = await self._settle(
            keys=[
                keys.reservations(group),
                keys.reservation(group, request_id),
                keys.settled(group, request_id),
                *(keys.counter(c.counter) for c in group_charges),
            ],
            args=args,
        )
        return reply

    async def settle_event(
        self, event: LedgerEvent, *, final: bool = True, alerts: bool = True, live: bool = True
    ) -> Settlement:
        """Settle from a ledger event (the ledger consumer, or a rebuild); idempotent.

        final: the event was just applied to the aggregates, so its cost is the one the
        ledger keeps for this request; a duplicate event is settled provisionally (a no-op
        once anything was settled). live=False (a rebuild replaying old events) leaves
        standing reservations alone: a booking's room is given back only as it happens.
        """
        messages = event_messages(event)
        subject = Subject(
            tenant=event.tenant,
            agent=event.agent,
            workflow=event.workflow_id,
            user=event.user,
            workspace=event.workspace,
            project=event.project,
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
            reserved_by=event.reserved_by if live else "",
        )

    async def release(self, request_id: str, subject: Subject | None = None) -> bool:
        """Drop a request's reservation without charging anything (it failed unpaid)."""
        groups = await self._groups(request_id, subject)
        held = 0
        try:
            for group in groups:
                held += int(
                    await self._release(
                        keys=[keys.reservations(group), keys.reservation(group, request_id)],
                        args=[request_id, keys.reservation_prefix(group)],
                    )
                )
        finally:
            self._groups_of.pop(request_id, None)
            self._waiters.wake(WAKE_PER_RELEASE)
        return bool(held)

    def hold(self, request_id: str, subject: Subject) -> list[int]:
        """Keep the request's reservation (in each group it may be in) from expiring, every
        third of reservation_ttl_s, until unhold(returned keys)."""
        ttl_s = self.live.engine.reservation_ttl_s
        return [
            self._liveness.add(
                Renewal(
                    script=scripts.KEEPALIVE,
                    keys=(keys.reservations(group), keys.reservation(group, request_id)),
                    args=(request_id, int(ttl_s * 1000)),
                    every_s=ttl_s / 3,
                )
            )
            for group in subject_groups(subject)
        ]

    def unhold(self, held: list[int]) -> None:
        """Stop keeping a reservation alive."""
        for key in held:
            self._liveness.remove(key)

    async def _groups(self, request_id: str, subject: Subject | None) -> list[str]:
        """The groups a request may hold a reservation in."""
        if subject is not None:
            return subject_groups(subject)
        known = self._groups_of.get(request_id)
        return known if known is not None else await self._all_groups()

    async def sweep(self) -> int:
        """Release expired reservations now, in every group; returns how many."""
        released = 0
        for group in await self._all_groups():
            released += int(
                await self._sweep(
                    keys=[keys.reservations(group)], args=[keys.reservation_prefix(group)]
                )
            )
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
        workspace: str | None = None,
        project: str | None = None,
    ) -> list[BudgetStatus]:
        """Each budget's limit, spent, reserved, period and alerts sent, for a tenant or all
        (see status.budget_status)."""
        from cost_ledger.budgets.status import budget_status  # status reads this store

        return await budget_status(
            self, tenant, agent=agent, workflow=workflow, user=user, tier=tier,
            workspace=workspace, project=project,
        )  # fmt: skip

    async def ready(self, *, full: bool = True) -> bool:
        """Whether the counters are complete (no slot's marker lost to a flush or a node that
        restarted empty, awaiting a rebuild). full checks every slot's marker; otherwise one
        marker per node (sentinel_markers): a node that restarted empty or a flush loses
        them all. The budget watch checks sentinels, and every slot after a reservation met
        a missing marker and once a minute (a slot moved to a surviving node, a deleted key)."""
        if full:
            self._suspect = False
        markers = keys.ready_keys() if full else self.sentinel_markers()
        # One EXISTS per marker in a pipeline: a cluster client sends each node its share in
        # one round trip (a multi-key EXISTS would be split into one command per slot).
        async with self.redis.pipeline(transaction=False) as pipe:
            for marker in markers:
                pipe.exists(marker)
            found = await pipe.execute()
        return sum(int(n) for n in found) == len(markers)

    @property
    def suspect(self) -> bool:
        """Whether a reservation met a slot without its ready marker since the last full
        check (ready(full=True))."""
        return self._suspect

    def sentinel_markers(self) -> list[str]:
        """The ready markers whose presence says every node still holds its data: one
        Redis has one (slot 0's); a cluster, the first slot of each primary in the client's
        slot map (every slot's when the map is incomplete). Checking all 16,384 every
        budget_watch_s cost a router about 250 ms of CPU each time."""
        if not isinstance(self.redis, RedisCluster):
            return [keys.ready_key(0)]
        slots = self.redis.nodes_manager.slots_cache
        if len(slots) < REDIS_CLUSTER_HASH_SLOTS:
            return keys.ready_keys()
        first: dict[str, int] = {}
        for slot in range(REDIS_CLUSTER_HASH_SLOTS):
            nodes = slots.get(slot)
            if not nodes:
                return keys.ready_keys()
            first.setdefault(nodes[0].name, slot)
        return [keys.ready_key(slot) for slot in first.values()]

    async def mark_ready(self) -> None:
        """Say the counters are complete: after a rebuild, or on a fresh deployment."""
        stamp = str(self._clock())
        markers = keys.ready_keys()
        for start in range(0, len(markers), 1024):
            async with self.redis.pipeline(transaction=False) as pipe:
                for marker in markers[start : start + 1024]:
                    pipe.set(marker, stamp)
                await pipe.execute()

    async def counter(self, counter_id: str) -> tuple[int, int]:
        """(spent, reserved) of one counter."""
        spent, reserved = await self.redis.hmget(keys.counter(counter_id), ["spent", "reserved"])
        return int(spent or 0), int(reserved or 0)

    async def held(self) -> int:
        """How many reservations are held (expired ones included until swept)."""
        groups = await self._all_groups()
        counts = await asyncio.gather(*(self.redis.zcard(keys.reservations(g)) for g in groups))
        return sum(int(n) for n in counts)
