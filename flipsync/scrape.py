"""What a running stack's /metrics reads when scraped: budget use and circuit breaker states
from Redis, the queue depths of the durable consumers from JetStream; and starting that
endpoint for a stack."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis
from nats.js import JetStreamContext
from prometheus_client.core import GaugeMetricFamily, Metric

from bus import subjects
from bus.metrics import BreakerReader, MetricsServer, ScrapeReader
from cost_ledger.budgets.policy import Unit
from cost_ledger.budgets.store import BudgetStore
from flipsync.stack import Stack
from router.health.snapshot import breaker_states

QUEUE_STREAMS = (subjects.STREAM_REQUESTS, subjects.STREAM_LEDGER, subjects.STREAM_WORKFLOW)
"""Streams whose durable consumers (router, ledger, workflow, agent-*) have their depth read."""
CONSUMERS_PAGE = 256
"""The most consumers JetStream lists per call."""
BUDGET_LABELS = ["budget", "scope", "period"]


def budget_reader(store: BudgetStore) -> ScrapeReader:
    """Reads each money budget's spent, reserved, limit and utilization in its current period."""

    async def read() -> Iterable[Metric]:
        families = {
            name: GaugeMetricFamily(f"flipsync_budget_{name}", text, labels=BUDGET_LABELS)
            for name, text in (
                ("spent_micro_usd", "Settled spend of a budget's scope in its current period."),
                ("reserved_micro_usd", "Held by requests in flight in the current period."),
                ("limit_micro_usd", "The budget's limit per period."),
                ("utilization_ratio", "Spent over limit (1 means used up)."),
            )
        }
        for row in await store.status():
            if row.unit is not Unit.USD:
                continue
            labels = [row.budget, row.scope, row.period_key]
            families["spent_micro_usd"].add_metric(labels, float(row.spent))
            families["reserved_micro_usd"].add_metric(labels, float(row.reserved))
            families["limit_micro_usd"].add_metric(labels, float(row.limit))
            families["utilization_ratio"].add_metric(labels, float(row.utilization))
        return families.values()

    return read


def queue_reader(js: JetStreamContext) -> ScrapeReader:
    """Reads num_pending and num_ack_pending of every durable consumer of QUEUE_STREAMS."""

    async def read() -> Iterable[Metric]:
        pending = GaugeMetricFamily(
            "flipsync_queue_pending",
            "Messages a durable consumer has not yet been delivered.",
            labels=["stream", "durable"],
        )
        ack_pending = GaugeMetricFamily(
            "flipsync_queue_ack_pending",
            "Messages delivered to a durable consumer and not yet acked (in flight).",
            labels=["stream", "durable"],
        )
        for stream in QUEUE_STREAMS:
            offset = 0
            while True:
                page = await js.consumers_info(stream, offset=offset or None)
                for info in page:
                    if info.config.durable_name:
                        labels = [stream, info.config.durable_name]
                        pending.add_metric(labels, float(info.num_pending or 0))
                        ack_pending.add_metric(labels, float(info.num_ack_pending or 0))
                if len(page) < CONSUMERS_PAGE:
                    break
                offset += len(page)
        return (pending, ack_pending)

    return read


def breaker_reader(redis: aioredis.Redis) -> BreakerReader:
    """Reads the state of every provider and model's breaker, shared by the routers in Redis."""

    async def read() -> Mapping[tuple[str, str], str]:
        return {key: state.value for key, state in (await breaker_states(redis)).items()}

    return read


async def start_metrics(stack: Stack) -> MetricsServer | None:
    """Serve the stack's /metrics on settings.metrics_port; None when no port is set."""
    settings = stack.settings
    if settings.metrics_port is None:
        return None
    readers = [queue_reader(stack.broker.connection.jetstream())]
    if stack.budgets is not None:
        readers.append(budget_reader(stack.budgets))
    # A router exports its providers' breakers (any process could: the state is in Redis).
    breakers = [breaker_reader(stack.redis)] if stack.registry is not None else []
    server = MetricsServer(settings.metrics_host, settings.metrics_port, readers, breakers=breakers)
    await server.start()
    return server
