"""The budgets as a running stack uses them: live rules, the store, alerts, control, rebuild."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from faststream.nats import NatsBroker, NatsRouter
from nats.js import JetStreamContext

from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.control import control_router
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.projection import LedgerView
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.rebuild import rebuild

log = logging.getLogger(__name__)


class BudgetRuntime:
    """Everything budgets need in one process; built before the broker starts."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, broker: NatsBroker) -> None:
        self.redis = redis
        self.live = LiveBudgets(redis, BudgetConfig.load(settings.budget_config))
        self.store = BudgetStore(redis, self.live, alerts=JetStreamAlerts(broker))

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
