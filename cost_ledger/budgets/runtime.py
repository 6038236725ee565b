"""The budgets as a running stack uses them: live rules, the store, alerts, control, rebuild."""

from __future__ import annotations

import asyncio
import itertools
import logging

import redis.asyncio as aioredis
from faststream.nats import NatsBroker, NatsRouter
from nats.js import JetStreamContext
from redis.exceptions import RedisError

from bus.liveness import Liveness
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets import keys
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.control import control_router
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.projection import LedgerView
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.rebuild import rebuild

log = logging.getLogger(__name__)

FULL_CHECK_S = 60.0
CLOSE_GRACE_S = 5.0
"""How long close() waits for the watch to end after each cancellation."""
"""How often the budget watch checks every slot's ready marker, not one per node."""


class BudgetRuntime:
    """Everything budgets need in one process; built before the broker starts."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        broker: NatsBroker,
        *,
        liveness: Liveness | None = None,
    ) -> None:
        """liveness keeps held reservations alive (bus.liveness; default: on the loop)."""
        self.redis = redis
        self.settings = settings
        self.live = LiveBudgets(redis, BudgetConfig.load(settings.budget_config))
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self.rebuilds = 0
        """Rebuilds this process ran after Redis lost the counters (for tests and logs)."""
        self.store = BudgetStore(
            redis, self.live, alerts=JetStreamAlerts(broker), liveness=liveness
        )

    def control_router(self) -> NatsRouter:
        """The budget.control subscriber (every replica runs one)."""
        return control_router(self.live)

    def ledger_view(self) -> LedgerView:
        """The ledger consumer's store: aggregates plus budget settlement."""
        return LedgerView(self.redis, self.store)

    async def start(self, js: JetStreamContext) -> None:
        """Load the live rules; if the counters are not there (a fresh or flushed Redis),
        rebuild them from the LEDGER stream first."""
        await self.live.ensure_seeded()
        if not await self.store.ready():
            report = await rebuild(js, AggregateStore(self.redis), self.store)
            log.info("budgets rebuilt from the ledger: %s", report)
        await self.live.load()

    def watch(self, js: JetStreamContext) -> None:
        """Check every budget_watch_s that the counters are complete; when a Redis node came
        back empty, rebuild them from the ledger (one replica at a time)."""
        if self._watch is None and self.settings.budget_watch_s > 0:
            self._closing = False
            self._watch = asyncio.get_running_loop().create_task(self._watching(js))

    async def close(self) -> None:
        """Stop watching, within a bounded wait. A cancellation that lands inside a Redis
        call can be swallowed there (seen once: a stack's stop waited past 60 s on a full
        check's pipeline), so the watch also stops at its next round, and close() cancels
        again rather than wait forever."""
        self._closing = True
        task, self._watch = self._watch, None
        if task is None:
            return
        for _ in range(3):
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=CLOSE_GRACE_S)
            if done:
                return
        log.warning("the budget watch did not stop within %.0f s", 3 * CLOSE_GRACE_S)

    async def _watching(self, js: JetStreamContext) -> None:
        for tick in itertools.count(1):
            await asyncio.sleep(self.settings.budget_watch_s)
            if self._closing:
                return
            # One marker per node each time; every slot's after a reservation met a missing
            # one, and once every FULL_CHECK_S (see BudgetStore.ready).
            every = max(1, round(FULL_CHECK_S / self.settings.budget_watch_s))
            full = self.store.suspect or tick % every == 0
            try:
                if not await self.store.ready(full=full):
                    await self.recover(js)
            except RedisError as exc:  # Redis still away: look again next time
                log.warning("budget counters not checked: %s", exc)
            except Exception as exc:  # NATS failing over under the replay: again next time
                # Anything else ended this task silently, and every reservation then waited
                # for a rebuild that nobody would finish (seen in the cluster chaos test: the
                # ledger stream's leader was killed while Redis came back empty).
                log.warning(
                    "budget rebuild failed, tried again in %.1fs: %s: %s",
                    self.settings.budget_watch_s, type(exc).__name__, exc,
                )  # fmt: skip

    async def recover(self, js: JetStreamContext) -> bool:
        """Rebuild counters and aggregates that Redis lost; returns whether this replica did.

        Requests dispatched before the loss may still be answering: their reservations are
        gone, and their cost reaches Redis only when they settle. So the rebuild waits one
        grace period (a provider timeout and then some) first, during which reservations
        answer NOT_READY and wait; then every paid call is in the ledger or settled, and the
        rebuilt counters hold all of it before any new reservation is taken.
        """
        grace_s = self.settings.budget_rebuild_grace_s
        if grace_s is None:
            grace_s = self.settings.provider_timeout_s + 5.0
        lease_ms = int((grace_s + 120.0) * 1000)
        if not await self.redis.set(keys.REBUILD_LOCK, "1", nx=True, px=lease_ms):
            return False  # another replica is at it
        try:
            log.warning(
                "budget counters lost (Redis came back empty): rebuilding in %.0fs", grace_s
            )
            await asyncio.sleep(grace_s)
            await self.live.ensure_seeded()
            report = await rebuild(js, AggregateStore(self.redis), self.store)
            await self.live.load()
            self.rebuilds += 1
            log.warning("budgets rebuilt from the ledger: %s", report)
            return True
        finally:
            await self.redis.delete(keys.REBUILD_LOCK)
