"""Anomalies to people: a periodic scan of the ledger's aggregates (cost_ledger.anomalies),
each anomaly delivered once to the anomaly targets, whichever replica scans first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from bus.settings_sections import NotifySettings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.anomalies import anomalies_view
from cost_ledger.api_models import Filter
from notifier.render import Notice, cost_per_call_notice, spend_anomaly_notice

log = logging.getLogger(__name__)
Deliver = Callable[[Notice, list[str]], Awaitable[int]]
"""Delivers a notice to named targets once each; returns how many are still owed."""


class AnomalyWatch:
    """Scans for anomalies every anomaly_interval_s and delivers the ones found."""

    def __init__(self, store: AggregateStore, deliver: Deliver, settings: NotifySettings) -> None:
        self._store = store
        self._deliver = deliver
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    async def scan(self) -> list[Notice]:
        """One scan: the anomalies of the ledger's window, each sent (or found sent) once."""
        view = await anomalies_view(self._store, Filter())
        notices = [spend_anomaly_notice(a) for a in view.spend]
        notices += [cost_per_call_notice(a) for a in view.cost_per_call]
        targets = list(self._settings.anomaly_targets)
        for notice in notices:  # one still owed is tried again at the next scan
            await self._deliver(notice, targets)
        return notices

    def start(self) -> None:
        """Scan in the background until close()."""
        if self._task is None and self._settings.anomaly_targets:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop scanning."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.scan()
            except (RedisError, ValueError) as exc:  # Redis away, a bad aggregate: next time
                log.warning("anomaly scan failed: %s", exc)
            await asyncio.sleep(self._settings.anomaly_interval_s)
