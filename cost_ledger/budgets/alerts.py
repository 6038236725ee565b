"""Budget alerts at 50%, 80% and 100%: each sent once per budget, scope, period and limit.

Once is kept by a Redis SET NX marker: whichever replica sets it publishes the alert, through
JetStream (the LEDGER stream keeps budget.alert.>), with the marker as message id. If the
publish fails the marker is dropped again, so a later settle retries. A rebuild restores the
markers from the alerts kept in the stream, so a flush does not make them fire twice.

Which thresholds are owed is decided in crossings.py.
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient

from bus import subjects
from bus.codec import encode
from bus.messages import BudgetAlert
from bus.publishing import MSG_ID, publish
from cost_ledger.budgets import keys
from cost_ledger.budgets.crossings import Crossing, crossing_of
from cost_ledger.budgets.periods import end_of_key_ms

GLOBAL_TENANT = "_global"
"""Tenant token of the alert subject of global budgets: budget.alert._global."""
_MEMO_MAX = 10_000

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    """Where alerts go (JetStream in a deployment, a list in a test)."""

    async def __call__(self, alert: BudgetAlert, msg_id: str) -> None:
        """Deliver one alert; msg_id is unique per alert, for deduplication."""
        ...


def alert_subject(alert: BudgetAlert) -> str:
    """Where an alert is published: budget.alert.<tenant> (GLOBAL_TENANT for a global one)."""
    return subjects.budget_alert(alert.tenant or GLOBAL_TENANT)


class JetStreamAlerts:
    """Publishes alerts on budget.alert.<tenant>, stored in the LEDGER stream."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def __call__(self, alert: BudgetAlert, msg_id: str) -> None:
        """Publish and wait for JetStream's ack."""
        await publish(
            self._broker,
            encode(alert),
            alert_subject(alert),
            stream=subjects.STREAM_LEDGER,
            msg_id=msg_id,
        )


class ClientAlerts:
    """JetStreamAlerts for a plain nats-py client (the budget command has no broker)."""

    def __init__(self, client: NatsClient) -> None:
        self._client = client

    async def __call__(self, alert: BudgetAlert, msg_id: str) -> None:
        """Publish and wait for JetStream's ack (msg_id: one alert, however often sent)."""
        await self._client.jetstream().publish(
            alert_subject(alert), encode(alert), stream=subjects.STREAM_LEDGER,
            headers={MSG_ID: msg_id},
        )  # fmt: skip


class Alerter:
    """Sends each crossing's alert once, across every replica."""

    def __init__(self, redis: aioredis.Redis, sink: AlertSink | None) -> None:
        self._redis = redis
        self._sink = sink
        self._memo: set[str] = set()
        """Markers this replica knows are set: spares a round trip per settle."""

    async def fire(self, crossings: list[Crossing]) -> list[BudgetAlert]:
        """Send the alerts of crossings not alerted yet; returns those this call sent."""
        if self._sink is None:
            return []
        todo = [c for c in crossings if c.marker not in self._memo]
        if not todo:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in todo:
                pipe.set(c.marker, c.spent, nx=True, exat=_expire_s(c.period_key))
            won = await pipe.execute()
        if len(self._memo) > _MEMO_MAX:
            self._memo.clear()
        sent: list[BudgetAlert] = []
        for crossing, first in zip(todo, won, strict=True):
            self._memo.add(crossing.marker)
            if not first:
                continue
            alert = crossing.alert()
            try:
                await self._sink(alert, crossing.marker.removeprefix(keys.ALERT_PREFIX))
            except Exception:
                log.warning("budget alert %s not published; will retry", crossing.marker)
                self._memo.discard(crossing.marker)
                await self._redis.delete(crossing.marker)
                continue
            sent.append(alert)
        return sent

    async def restore(self, alert: BudgetAlert) -> None:
        """Mark a stored alert as sent (a rebuild replaying the stream)."""
        crossing = crossing_of(alert)
        await self._redis.set(
            crossing.marker, crossing.spent, nx=True, exat=_expire_s(crossing.period_key)
        )


def _expire_s(period_key: str) -> int:
    return end_of_key_ms(period_key) // 1000 + keys.COUNTER_KEEP_S
