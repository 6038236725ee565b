"""compose.yaml run as separate processes: the services, commands, replicas and environment
the file gives, on the test's own nats-server, redis-server and OTLP receiver (no Docker
engine runs here). Uploads go through them: every product finishes with its listings, the
ledger adds up, each process answers /metrics, and each upload is one trace across them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agents.upload import Uploader, load_catalog
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.embedded.process import free_port
from bus.settings import Settings
from bus.streams import ensure_streams
from bus.tracing import make_tracer_provider
from cost_ledger.aggregates import AggregateStore
from flipsync.children import READY_LINE, ChildProcess
from tests.compose_env import (
    COMPOSE_FILE,
    ComposeService,
    load_services,
    local_argv,
    local_value,
    published_ports,
    rewrite_addresses,
)
from tests.helpers import eventually
from tests.otlp_receiver import OtlpReceiver
from tests.test_tracing import trace_of

MAX_REPLICAS = 2
"""Replicas started per service at most. compose runs router x3; on this 2-core machine the
test runs two of each replicated service (router, workflow, agents), which still share their
durable consumers the way compose's replicas do."""
PRODUCTS = 3
REQUIRED_ENV = (
    "NATS_URL",
    "REDIS_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "FLIPSYNC_METRICS_PORT",
    "FLIPSYNC_SIM_BASE_URL",
)
PROMETHEUS_CONFIG = COMPOSE_FILE.parent / "deploy" / "prometheus" / "prometheus.yml"
EXPECTED_METRICS = {
    "router": {
        "flipsync_llm_requests",
        "flipsync_llm_request_duration_seconds",
        "flipsync_llm_cost_micro_usd",
        "flipsync_llm_baseline_micro_usd",
        "flipsync_llm_savings_micro_usd",
        "flipsync_breaker_state",
        "flipsync_budget_spent_micro_usd",
        "flipsync_budget_utilization_ratio",
    },
    "ledger": {"flipsync_budget_spent_micro_usd", "flipsync_budget_limit_micro_usd"},
    "workflow": set(),
    "agents": set(),
}
"""Besides what every process serves: messages processed, queue depths, process metrics."""
EVERYWHERE = {
    "flipsync_messages_processed",
    "flipsync_message_duration_seconds",
    "flipsync_queue_pending",
    "flipsync_queue_ack_pending",
    "process_cpu_seconds",
}
DURABLE_OF = {"router": "router", "ledger": "ledger", "workflow": "workflow-", "agents": "agent-"}
"""The durable (name or prefix) each service's processed messages are counted under."""


@dataclass(kw_only=True)
class Running:
    """One replica of one compose service, as a local process."""

    service: str
    process: ChildProcess
    metrics_port: int | None


@dataclass(kw_only=True)
class Servers:
    """What stands in for compose's nats, redis and jaeger."""

    nats: EmbeddedNats
    redis: EmbeddedRedis
    jaeger: OtlpReceiver


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    """A fresh nats-server, redis-server and OTLP receiver for this test alone."""
    nats, redis = EmbeddedNats(), EmbeddedRedis()
    await nats.start()
    await redis.start()
    async with OtlpReceiver() as jaeger:
        yield Servers(nats=nats, redis=redis, jaeger=jaeger)
    await redis.stop()
    await nats.stop()


def plan(servers: Servers) -> list[Running]:
    """Every replica compose would start, with its command and environment made local."""
    document, services = load_services()
    local = {
        "nats": _host_port(servers.nats.url),
        "redis": _host_port(servers.redis.url),
        "jaeger": _host_port(servers.jaeger.endpoint),
    }
    names = {s.name for s in services}
    ports: dict[tuple[str, int], int] = {}  # a FlipSync service's container port -> local
    taken: set[int] = set()

    def distinct_port() -> int:  # free_port twice before any bind may draw one port twice
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    def local_port(host: str, port: int) -> int:
        if (host, port) not in ports:
            ports[host, port] = distinct_port()
        return ports[host, port]

    def address_of(host: str, port: int) -> str | None:
        if host in local:
            assert port in published_ports(document, host), f"{host} does not publish {port}"
            return local[host]
        if host in names:
            return f"127.0.0.1:{local_port(host, port)}"
        return None

    planned: list[Running] = []
    for service in services:
        published = published_ports(document, service.name)
        own = functools.partial(local_port, service.name)
        env = {
            key: local_value(rewrite_addresses(value, address_of), published, own)
            for key, value in service.environment.items()
        }
        for value in env.values():
            assert not any(f"//{h}:" in value for h in [*local, *names]), value
        argv = local_argv(service.argv, own)
        for _ in range(min(service.replicas, MAX_REPLICAS)):
            planned.append(_replica(service, argv, env, distinct_port))
    return planned


def _replica(
    service: ComposeService, argv: list[str], env: dict[str, str], distinct_port: Callable[[], int]
) -> Running:
    if argv[1:3] == ["-m", "flipsync"]:  # `flipsync run ...`: ready when it says so
        for key in REQUIRED_ENV:
            assert env.get(key), f"compose gives {service.name} no {key}"
        port = distinct_port()  # compose gives each container 9464; here each process its own
        env = {**env, "FLIPSYNC_METRICS_PORT": str(port)}
        process = ChildProcess(argv, env, ready_line=READY_LINE)
        return Running(service=service.name, process=process, metrics_port=port)
    port_arg = argv[argv.index("--port") + 1]  # the simulated provider: ready once it listens
    process = ChildProcess(argv, env, ready_port=int(port_arg))
    return Running(service=service.name, process=process, metrics_port=None)


def _host_port(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0]


async def scrape(http: aiohttp.ClientSession, port: int) -> tuple[set[str], dict[Any, float]]:
    """Family and sample names one process serves, and its samples by (name, labels)."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    names: set[str] = set()
    samples: dict[Any, float] = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def summed(samples: dict[Any, float], name: str, **labels: str) -> float:
    """Sum of name's samples whose labels include these."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def test_prometheus_scrapes_every_flipsync_process_on_its_metrics_port() -> None:
    _, services = load_services()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "flipsync"]
    (discovery,) = job["dns_sd_configs"]
    runs = {s.name: s for s in services if s.argv[:2] == ["flipsync", "run"]}
    assert set(runs) <= set(discovery["names"]), "a `flipsync run` service is not scraped"
    for service in runs.values():
        assert service.environment["FLIPSYNC_METRICS_PORT"] == str(discovery["port"])


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_compose_services_as_processes_run_uploads_end_to_end(servers: Servers) -> None:
    began = time.monotonic()
    running = plan(servers)
    counts = dict(collections.Counter(r.service for r in running))
    assert counts["router"] >= 2 and counts["ledger"] == 1, counts
    tracing = make_tracer_provider("flipsync-upload", servers.jaeger.endpoint)
    broker = make_broker(servers.nats.url, tracer_provider=tracing)
    redis = aioredis.Redis.from_url(servers.redis.url)
    tenant = f"c{uuid.uuid4().hex[:8]}"
    try:
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), Settings())
        providers = [r for r in running if r.metrics_port is None]
        await asyncio.gather(*(r.process.start(ready_within_s=30) for r in providers))
        services = [r for r in running if r.metrics_port is not None]
        await asyncio.gather(*(r.process.start(ready_within_s=60) for r in services))
        started = time.monotonic()

        uploader = Uploader(broker, Settings())
        tracer = tracing.get_tracer("flipsync.upload")
        products = load_catalog()[:PRODUCTS]
        async with WorkflowWatcher(broker, tenant) as watcher:
            uploads = await asyncio.gather(
                *(uploader.upload(p, tenant=tenant, tracer=tracer) for p in products)
            )
            done = await watcher.wait([u.workflow_id for u in uploads], timeout_s=60)
        finished = time.monotonic()
        for event in done.values():
            assert event.ok, event.reason
            markets = event.listing["marketplaces"]
            assert isinstance(markets, dict)
            assert set(markets) == {"ebay", "amazon", "etsy", "shopify"}
            assert 0 < event.cost_micro_usd < event.baseline_micro_usd
        spend = sum(e.cost_micro_usd for e in done.values())
        baseline = sum(e.baseline_micro_usd for e in done.values())
        store = AggregateStore(redis)

        async def ledgered() -> bool:
            # call-free work is booked by the workflow as each ends, after the paid calls
            totals = await store.totals(tenant)
            return (totals.spend_micro_usd, totals.baseline_micro_usd) == (spend, baseline)

        await eventually(ledgered, timeout_s=15)

        js = broker.connection.jetstream()
        info = await js.stream_info(
            subjects.STREAM_REQUESTS, subjects_filter=f"llm.request.{tenant}.>"
        )
        llm_requests = sum((info.state.subjects or {}).values())
        routers: dict[Any, float] = {}
        async with aiohttp.ClientSession() as http:
            for replica in services:
                assert replica.metrics_port is not None
                names, samples = await scrape(http, replica.metrics_port)
                missing = (EVERYWHERE | EXPECTED_METRICS.get(replica.service, set())) - names
                assert not missing, f"{replica.service} serves no {sorted(missing)}"
                if replica.service not in DURABLE_OF:
                    continue
                durable = DURABLE_OF[replica.service]
                processed = [
                    labels
                    for (name, labels), _ in samples.items()
                    if name == "flipsync_messages_processed_total"
                    and dict(labels)["durable"].startswith(durable)
                ]
                assert processed, f"{replica.service} counted no {durable} message"
                if replica.service == "router":
                    for key, value in samples.items():
                        routers[key] = routers.get(key, 0.0) + value
        # What the routers counted is what the ledger booked and what the agents asked.
        assert summed(routers, "flipsync_llm_cost_micro_usd_total", tenant=tenant) == spend
        assert summed(routers, "flipsync_llm_requests_total", tenant=tenant) == llm_requests
    finally:
        # SIGTERM: each service flushes its spans to the receiver as it stops.
        stopping = time.monotonic()
        await asyncio.gather(*(r.process.stop() for r in reversed(running)))
        stop_s = time.monotonic() - stopping
        with contextlib.suppress(Exception):
            await broker.stop()
        await redis.aclose()
        tracing.shutdown()

    spans = servers.jaeger.spans
    for upload in uploads:
        tree = trace_of(spans, upload.workflow_id)
        assert tree is not None, f"no trace of {upload.workflow_id}"
        assert len(tree.roots) == 1, tree.explain("the upload's trace has several roots")
        services_seen = {span.service_name for span in tree.spans}
        expected = {f"flipsync-{name}" for name in ("upload", *DURABLE_OF)}
        assert expected <= services_seen, services_seen
    print(
        f"\ncompose as processes: {counts}, started in {started - began:.1f} s; "
        f"{PRODUCTS} uploads ({llm_requests} LLM requests) in {finished - started:.1f} s; "
        f"stopped in {stop_s:.1f} s; "
        f"spend {spend} vs baseline {baseline} micro-USD"
    )
