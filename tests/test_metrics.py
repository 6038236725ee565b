"""Prometheus metrics: what the router counts per result, and a live stack's /metrics with its
lever money, per-lever request counts (hit ratios are PromQL over them), budget use, breaker
states and queue depths."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping

import aiohttp
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from bus import subjects
from bus.embedded.process import free_port
from bus.llm_client import LlmClient
from bus.messages import ErrorCode, Lever, LlmResult, Status, Usage, error_result
from bus.metrics import REGISTRY, MetricsServer
from bus.settings import Settings
from flipsync.scrape import start_metrics
from flipsync.stack import Service, Stack, start_stack
from router.metrics import MAX_LABEL_VALUES, OTHER, ResultRecorder
from tests.helpers import eventually, make_request

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample called name with exactly these labels, if there is one."""
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of name's samples whose labels include these."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def ok_result(tenant: str, lever: Lever, cost: int, baseline: int) -> LlmResult:
    """An ok result served by lever."""
    return LlmResult(
        request_id=uuid.uuid4().hex,
        tenant=tenant,
        agent="ebay_listing",
        status=Status.OK,
        model="gpt-4o-mini",
        usage=Usage(input_tokens=10, output_tokens=5),
        cost_micro_usd=cost,
        baseline_micro_usd=baseline,
        lever=lever,
    )


def test_a_result_counts_its_request_latency_and_money_per_lever() -> None:
    tenant = f"m{uuid.uuid4().hex[:8]}"
    recorder = ResultRecorder()
    recorder.record(ok_result(tenant, Lever.ROUTED, cost=150, baseline=1000), 0.2)
    recorder.record(ok_result(tenant, Lever.ROUTED, cost=50, baseline=1000), 0.02)
    recorder.record(ok_result(tenant, Lever.EXACT_CACHE, cost=0, baseline=1000), 0.001)
    # An escalation that cost more than its baseline saves nothing (and never counts down).
    recorder.record(ok_result(tenant, Lever.ESCALATED, cost=1500, baseline=1000), 1.0)
    error = error_result("r1", tenant, "ebay_listing", ErrorCode.OVER_BUDGET, "no room")
    recorder.record(error, 0.003)

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"tenant": tenant, **labels})

    routed = {"agent": "ebay_listing", "lever": "routed", "status": "ok", "model": "gpt-4o-mini"}
    assert sample("flipsync_llm_requests_total", **routed) == 2
    assert sample("flipsync_llm_request_duration_seconds_count", **routed) == 2
    assert sample("flipsync_llm_request_duration_seconds_bucket", **routed, le="0.025") == 1
    assert sample("flipsync_llm_cost_micro_usd_total", lever="routed") == 200
    assert sample("flipsync_llm_baseline_micro_usd_total", lever="routed") == 2000
    assert sample("flipsync_llm_savings_micro_usd_total", lever="routed") == 1800
    assert sample("flipsync_llm_savings_micro_usd_total", lever="exact_cache") == 1000
    assert sample("flipsync_llm_cost_micro_usd_total", lever="escalated") == 1500
    assert sample("flipsync_llm_savings_micro_usd_total", lever="escalated") == 0
    failed = {"agent": "ebay_listing", "lever": "none", "status": "error", "model": ""}
    assert sample("flipsync_llm_requests_total", **failed) == 1
    assert sample("flipsync_llm_cost_micro_usd_total", lever="none") is None  # nothing moved
    cached = {**routed, "lever": "exact_cache"}
    assert sample("flipsync_llm_requests_total", **cached) == 1
    # A second recorder (another router in this process) adds to the same series.
    ResultRecorder().record(ok_result(tenant, Lever.ROUTED, cost=1, baseline=2), 0.01)
    assert sample("flipsync_llm_requests_total", **routed) == 3


def test_a_flood_of_tenant_names_adds_no_series_past_the_bound() -> None:
    """A sender naming a new tenant per request: the registry keeps MAX_LABEL_VALUES of them,
    the rest are counted (not dropped) under OTHER."""
    prefix = f"fl{uuid.uuid4().hex[:6]}"
    limit = MAX_LABEL_VALUES["tenant"]
    recorder = ResultRecorder()
    for n in range(limit + 50):
        recorder.record(ok_result(f"{prefix}{n}", Lever.ROUTED, cost=1, baseline=2), 0.01)
    tenants = {
        sample.labels["tenant"]
        for family in REGISTRY.collect()
        if family.name == "flipsync_llm_requests"
        for sample in family.samples
    }
    assert len({t for t in tenants if t.startswith(prefix)}) == limit
    other = {"tenant": OTHER, "agent": "ebay_listing", "lever": "routed", "status": "ok",
             "model": "gpt-4o-mini"}  # fmt: skip
    assert (REGISTRY.get_sample_value("flipsync_llm_requests_total", other) or 0) >= 50


async def test_the_endpoint_serves_readers_and_survives_a_failing_one() -> None:
    async def good() -> Iterable[Metric]:
        gauge = GaugeMetricFamily("flipsync_test_depth", "A reader's gauge.", labels=["q"])
        gauge.add_metric(["a"], 7.0)
        return [gauge]

    async def broken() -> Iterable[Metric]:
        raise ConnectionError("the store is away")

    async def breakers() -> Mapping[tuple[str, str], str]:
        return {("simulated", "gpt-4o"): "open"}

    async def more() -> Mapping[tuple[str, str], str]:
        return {("simulated", "gpt-4o-mini"): "half_open"}

    readers = [breakers, more]
    server = MetricsServer("127.0.0.1", free_port(), [good, broken], breakers=readers)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            samples = parse(await response.text())
    finally:
        await server.stop()
    assert value(samples, "flipsync_test_depth", q="a") == 7
    assert value(samples, "flipsync_scrape_errors") == 1
    big = {"provider": "simulated", "model": "gpt-4o"}
    assert value(samples, "flipsync_breaker_state", **big, state="open") == 1
    assert value(samples, "flipsync_breaker_state", **big, state="closed") == 0
    assert value(samples, "flipsync_breaker_state", **big, state="half_open") == 0
    mini = {"provider": "simulated", "model": "gpt-4o-mini"}
    assert value(samples, "flipsync_breaker_state", **mini, state="half_open") == 1
    assert value(samples, "flipsync_breaker_state", **mini, state="open") == 0
    assert value(samples, "process_cpu_seconds_total") is not None  # the standard ones too


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded router and ledger, as `flipsync run router ledger` starts them."""
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
    settings = Settings(sim_latency_ms=0, pack_max_items=1, metrics_port=free_port())
    running = await start_stack(settings, services)
    yield running
    await running.stop()


async def test_a_stack_exports_money_cache_budgets_and_queue_depths(stack: Stack) -> None:
    server = await start_metrics(stack)
    assert server is not None
    tenant = f"m{uuid.uuid4().hex[:8]}"
    client = LlmClient(stack.broker)
    try:
        first = await client.request(make_request(tenant=tenant), timeout_s=20)
        again = await client.request(make_request(tenant=tenant), timeout_s=20)
        other = await client.request(make_request(tenant=tenant, text="A title: jug."), 20)
        assert first.ok and again.ok and other.ok, (first.reason, again.reason, other.reason)
        assert again.lever is Lever.EXACT_CACHE
        spend = first.cost_micro_usd + other.cost_micro_usd

        async def settled() -> bool:
            return (await stack.aggregates.totals(tenant)).spend_micro_usd == spend

        await eventually(settled)

        async with aiohttp.ClientSession() as http:

            async def scrape() -> Samples:
                async with http.get(server.url) as response:
                    assert response.status == 200
                    return parse(await response.text())

            budget = {"budget": "tenant-daily", "scope": f"tenant:{tenant}"}
            samples = await scrape()

            async def budget_settled() -> bool:
                nonlocal samples
                samples = await scrape()
                return total(samples, "flipsync_budget_spent_micro_usd", **budget) == spend

            await eventually(budget_settled)
    finally:
        await server.stop()

    ok = {"tenant": tenant, "status": "ok"}
    assert total(samples, "flipsync_llm_requests_total", **ok) == 3
    assert total(samples, "flipsync_llm_requests_total", **ok, lever="exact_cache") == 1
    assert total(samples, "flipsync_llm_request_duration_seconds_count", **ok) == 3
    assert total(samples, "flipsync_llm_cost_micro_usd_total", tenant=tenant) == spend
    baseline = first.baseline_micro_usd + again.baseline_micro_usd + other.baseline_micro_usd
    assert total(samples, "flipsync_llm_baseline_micro_usd_total", tenant=tenant) == baseline
    cached = value(
        samples, "flipsync_llm_savings_micro_usd_total", tenant=tenant, lever="exact_cache"
    )
    assert cached == again.baseline_micro_usd > 0

    # Hit ratios are PromQL over these per-tenant counts (router/metrics.py): 1 of 3 exact.
    assert total(samples, "flipsync_llm_requests_total", **ok, lever="semantic_cache") == 0
    assert not any(name == "flipsync_cache_hit_ratio" for name, _ in samples)  # no per-process

    # The router's providers' circuit breakers (router/health, shared in Redis).
    called = {"provider": first.provider, "model": first.model}
    assert value(samples, "flipsync_breaker_state", **called, state="closed") == 1
    assert value(samples, "flipsync_breaker_state", **called, state="open") == 0

    assert total(samples, "flipsync_budget_limit_micro_usd", **budget) == 2_000_000
    utilization = total(samples, "flipsync_budget_utilization_ratio", **budget)
    assert utilization == pytest.approx(spend / 2_000_000)

    for stream, durable in (
        (subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER),
        (subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER),
    ):
        depth = {"stream": stream, "durable": durable}
        assert value(samples, "flipsync_queue_pending", **depth) == 0, depth
        assert value(samples, "flipsync_queue_ack_pending", **depth) is not None, depth
    for durable in (subjects.DURABLE_ROUTER, subjects.DURABLE_LEDGER):
        assert total(samples, "flipsync_messages_processed_total", durable=durable) >= 3
    assert value(samples, "flipsync_scrape_errors") == 0


async def test_no_port_means_no_endpoint(stack: Stack) -> None:
    quiet = dataclasses.replace(stack, settings=Settings(metrics_port=None))
    assert await start_metrics(quiet) is None
