"""BudgetStore: reserve before dispatch, settle after, in Redis, shared by every replica.

- reserve() (reserving.py): the request's maximum cost is held in every counter a budget
  reads (tenant, agent, workflow, workspace, project, global; day and month) and its user's
  message quota, all or none, group by group in a fixed order.
- settle() (settling.py): the actual cost is added to every counter of the request and its
  reservation is released, once per request id. Both the router (right after the answer)
  and the ledger consumer (from the LEDGER stream) settle; the first wins.
- A reservation not kept alive (hold()) expires after reservation_ttl_s: any later script
  call releases it. release() drops one unpaid; sweep() releases the expired ones now.

Here too: whether the counters are complete (ready markers) and what they hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from bus.liveness import Liveness, LoopLiveness, Renewal
from bus.messages import now_ms
from cost_ledger.budgets import keys, scripts
from cost_ledger.budgets.alerts import Alerter, AlertSink
from cost_ledger.budgets.config import BudgetRules, EngineSettings
from cost_ledger.budgets.groups import subject_groups
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.policy import Subject
from cost_ledger.budgets.settling import Settling
from cost_ledger.budgets.waiters import WAKE_PER_RELEASE, Waiters

if TYPE_CHECKING:
    from cost_ledger.budgets.status import BudgetStatus

Clock = Callable[[], int]
"""Unix milliseconds now."""


class BudgetStore(Settling):
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

    async def _all_groups(self) -> list[str]:
        raw = await self.redis.smembers(keys.GROUPS)
        return sorted({g.decode() if isinstance(g, bytes) else g for g in raw})

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
