"""Packing on real servers: the batch stage against the simulated provider over HTTP, and the
whole embedded stack (nats-server, redis-server, router, ledger) for the ledger's view."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from bus.llm_client import LlmClient
from bus.messages import (
    ChatMessage,
    ErrorCode,
    Lever,
    LlmRequest,
    LlmResult,
    OutputSchema,
    Priority,
    Usage,
    now_ms,
)
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from flipsync.providers import SIMULATED, provider_registry
from flipsync.stack import Service, start_stack
from router.batching.packer import Packer
from router.batching.policy import BatchPolicy, PackPolicy
from router.context import RequestContext, Route
from router.health import health_snapshot
from router.health.config import BreakerPolicy
from router.health.store import HealthStore
from router.providers.registry import ProviderRegistry
from router.stages.batch import BatchStage
from router.stages.dispatch import Dispatcher
from router.validation import parse_answer
from simulator.config import Faults, SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import TITLE_SCHEMA, eventually

MODEL = "gpt-4o-mini"
SYSTEM = "You write marketplace listings. Answer only with JSON that matches the given schema."
INSTRUCTIONS = (
    "Write an eBay title of at most 80 characters for the product below. Lead with the brand "
    "and the product name, and say what it is made of.\n\n"
)
SOMETIMES_SCHEMA = OutputSchema(
    name="title",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["title"],
        # The simulator ignores "pattern": some of its titles start with A-M, some do not.
        "properties": {"title": {"type": "string", "minLength": 3, "pattern": "^[A-M]"}},
    },
)
CATALOG = PriceCatalog.load()
PRICE = CATALOG.get(MODEL)
AGENT = "packtest"
"""The requesting agent: not a built-in one, so the stacks here accept it as an extra."""


def packable(
    i: int,
    *,
    tenant: str = "t1",
    schema: OutputSchema = TITLE_SCHEMA,
    priority: Priority = Priority.STANDARD,
    deadline_ms: int = 0,
) -> LlmRequest:
    """The i-th of a packable family: same system prompt, instructions and schema."""
    return LlmRequest(
        id=uuid.uuid4().hex,
        tenant=tenant,
        agent=AGENT,
        task_type="text_generation",
        messages=[
            ChatMessage(role="system", content=SYSTEM),
            ChatMessage(
                role="user",
                content=f"{INSTRUCTIONS}Product {i}: a handmade stoneware mug, glaze number {i}.",
            ),
        ],
        output_schema=schema,
        max_output_tokens=100,
        priority=priority,
        deadline_ms=deadline_ms,
    )


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[SimulatedProvider]:
    """A simulated provider on a free port, reset (and faults off) around each use."""
    async with SimulatedProvider(SimConfig()) as provider:
        yield provider


@pytest.fixture
async def registry(sim: SimulatedProvider) -> AsyncIterator[ProviderRegistry]:
    """A client of the simulated provider, as the router makes it."""
    await sim.reset()
    clients = provider_registry(Settings(provider_max_retries=0), CATALOG, sim.base_url)
    yield clients
    await clients.close()
    await sim.set_faults(Faults())


def stage_for(registry: ProviderRegistry, policy: PackPolicy) -> BatchStage:
    """A batch stage that packs (Batch API off) with the router's dispatcher behind it."""
    tracer = trace.get_tracer("test")
    packer = Packer(policy, registry, CATALOG, "gpt-4o", tracer)
    return BatchStage(pack=policy, batch=BatchPolicy(enabled=False), packer=packer)


async def run_all(
    registry: ProviderRegistry, policy: PackPolicy, requests: Sequence[LlmRequest]
) -> list[LlmResult]:
    """Every request through the stage, started in order (so one window sees that order)."""
    stage = stage_for(registry, policy)
    dispatcher = Dispatcher(registry, CATALOG, "gpt-4o", trace.get_tracer("test"))
    route = Route(model=MODEL, provider=SIMULATED, reason="test route")
    contexts = [RequestContext(request=r, route=route) for r in requests]
    return list(await asyncio.gather(*(stage(ctx, dispatcher) for ctx in contexts)))


def call_usage(stats_prompt: int, stats_cached: int, stats_completion: int) -> Usage:
    return Usage(
        input_tokens=stats_prompt, cached_input_tokens=stats_cached, output_tokens=stats_completion
    )


async def test_a_full_window_is_one_call_whose_cost_is_shared_out_exactly(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    requests = [packable(i) for i in range(8)]
    results = await run_all(registry, PackPolicy(max_items=8, window_ms=5000), requests)

    stats = await sim.stats()
    assert stats.calls == 1
    assert [r.request_id for r in results] == [r.id for r in requests]
    for result in results:
        assert result.ok and result.lever is Lever.PACKED, result.reason
        assert result.pack_size == 8  # the ledger's packing factor comes from it
        parsed, problem = parse_answer(result.content, TITLE_SCHEMA.schema)
        assert not problem and result.parsed == parsed
        assert 0 < result.cost_micro_usd < result.baseline_micro_usd
    assert len({r.content for r in results}) > 1  # each requester has its own answer
    usage = call_usage(stats.prompt_tokens, stats.cached_tokens, stats.completion_tokens)
    assert sum(r.usage.input_tokens for r in results) == usage.input_tokens
    assert sum(r.usage.output_tokens for r in results) == usage.output_tokens
    assert sum(r.cost_micro_usd for r in results) == cost_micro_usd(PRICE, usage)


async def test_packing_sends_shared_instructions_once(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    requests = [packable(i) for i in range(8)]
    await run_all(registry, PackPolicy(max_items=1), requests)  # packing off: one call each
    alone = await sim.stats()
    await sim.reset()
    await run_all(registry, PackPolicy(max_items=8, window_ms=5000), requests)
    packed = await sim.stats()
    assert (alone.calls, packed.calls) == (8, 1)
    assert packed.prompt_tokens < alone.prompt_tokens * 0.6


async def test_window_closes_after_its_time_with_fewer_items(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    started = time.monotonic()
    results = await run_all(
        registry, PackPolicy(max_items=8, window_ms=200), [packable(i) for i in range(3)]
    )
    assert time.monotonic() - started >= 0.19  # the window waited for company (ms rounding)
    assert all(r.lever is Lever.PACKED for r in results)
    assert (await sim.stats()).calls == 1


async def test_window_closes_before_the_earliest_deadline(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    # The window closes 2.5 s before the deadline (1.5 s from now): room for the packed call
    # even when a loaded machine stalls the test process on its way.
    policy = PackPolicy(max_items=8, window_ms=60_000, deadline_slack_ms=2500)
    started = time.monotonic()
    deadline = now_ms() + 4000
    requests = [packable(0, deadline_ms=deadline), packable(1), packable(2)]
    results = await run_all(registry, policy, requests)
    assert time.monotonic() - started < 30  # nowhere near the 60 s window
    assert all(r.ok and r.lever is Lever.PACKED for r in results)
    assert results[0].finished_ms <= deadline


async def test_interactive_requests_are_not_packed(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    requests = [packable(i, priority=Priority.INTERACTIVE) for i in range(3)]
    results = await run_all(registry, PackPolicy(max_items=8, window_ms=5000), requests)
    assert all(r.ok and r.lever is Lever.ROUTED for r in results)
    assert (await sim.stats()).calls == 3


async def test_only_the_invalid_items_are_retried_alone(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    """The simulator does not honour "pattern", so some packed titles break it, others not;
    started in order, the window's prompt (and so its answer) is the same every run."""
    requests = [packable(i, schema=SOMETIMES_SCHEMA) for i in range(8)]
    results = await run_all(registry, PackPolicy(max_items=8, window_ms=5000), requests)

    packed = [r for r in results if r.lever is Lever.PACKED]
    retried = [r for r in results if "retried alone" in r.reason]
    assert packed and retried and len(packed) + len(retried) == 8
    assert all(r.ok for r in packed)
    assert all(r.lever is Lever.ROUTED for r in retried)  # a normal dispatch of its own
    for result in retried:  # the retry may break the pattern again: then it says so
        assert result.ok or result.error_code is ErrorCode.SCHEMA_INVALID
    stats = await sim.stats()
    assert stats.calls == 1 + len(retried)
    usage = call_usage(stats.prompt_tokens, stats.cached_tokens, stats.completion_tokens)
    assert sum(r.usage.input_tokens for r in results) == usage.input_tokens
    assert sum(r.usage.output_tokens for r in results) == usage.output_tokens
    # Each call is rounded on its own: the total is within half a micro-dollar per call.
    assert abs(sum(r.cost_micro_usd for r in results) - cost_micro_usd(PRICE, usage)) <= (
        stats.calls
    )


async def test_a_broken_packed_answer_sends_every_item_alone_and_still_counts_its_cost(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    await sim.set_faults(Faults(schema_invalid=1.0))  # the packed answer, and each retry
    results = await run_all(
        registry, PackPolicy(max_items=3, window_ms=5000), [packable(i) for i in range(3)]
    )
    assert all(r.error_code is ErrorCode.SCHEMA_INVALID for r in results)
    assert all("retried alone" in r.reason for r in results)
    stats = await sim.stats()
    assert stats.calls == 4
    usage = call_usage(stats.prompt_tokens, stats.cached_tokens, stats.completion_tokens)
    assert sum(r.usage.input_tokens for r in results) == usage.input_tokens
    assert abs(sum(r.cost_micro_usd for r in results) - cost_micro_usd(PRICE, usage)) <= 4


async def test_a_retry_alone_that_no_budget_has_room_for_is_refused_with_its_share(
    sim: SimulatedProvider, registry: ProviderRegistry
) -> None:
    await sim.set_faults(Faults(schema_invalid=1.0))
    stage = stage_for(registry, PackPolicy(max_items=3, window_ms=5000))
    dispatcher = Dispatcher(registry, CATALOG, "gpt-4o", trace.get_tracer("test"))
    route = Route(model=MODEL, provider=SIMULATED, reason="test route")
    asked: list[int] = []

    async def no_room(extra: int) -> bool:
        asked.append(extra)
        return False

    contexts = [RequestContext(request=packable(i), route=route, top_up=no_room) for i in range(3)]
    results = await asyncio.gather(*(stage(ctx, dispatcher) for ctx in contexts))
    assert all(r.error_code is ErrorCode.OVER_BUDGET for r in results)
    assert all("no room to retry it alone" in r.reason for r in results)
    assert (await sim.stats()).calls == 1  # the packed call only: no retry was paid
    assert len(asked) == 3 and all(extra > 0 for extra in asked)
    assert [r.cost_micro_usd for r in results] == asked  # each share still reaches the ledger


async def test_packed_results_reach_the_ledger_once_each() -> None:
    settings = Settings(
        sim_latency_ms=0,
        provider_max_retries=0,
        pack_window_ms=1000,
        extra_agents=frozenset({AGENT}),
    )
    stack = await start_stack(settings, [Service.PROVIDER, Service.ROUTER, Service.LEDGER])
    try:
        assert stack.sim is not None
        tenant = f"p{uuid.uuid4().hex[:8]}"
        client = LlmClient(stack.broker)
        requests = [packable(i, tenant=tenant) for i in range(20)]
        results = await asyncio.gather(*(client.request(r, timeout_s=30) for r in requests))
        assert all(r.ok and r.lever is Lever.PACKED for r in results), [
            (r.lever, r.reason) for r in results if r.lever is not Lever.PACKED
        ]
        assert (await stack.sim.stats()).calls <= 4  # 20 requests, windows of up to 8

        async def settled() -> bool:
            return (await stack.aggregates.totals(tenant)).calls == 20

        await eventually(settled)
        totals = await stack.aggregates.totals(tenant)
        assert totals.spend_micro_usd == sum(r.cost_micro_usd for r in results)
        assert totals.baseline_micro_usd == sum(r.baseline_micro_usd for r in results)
    finally:
        await stack.stop()


async def test_a_packed_call_is_counted_in_its_providers_health(
    registry: ProviderRegistry, redis_client: aioredis.Redis
) -> None:
    """`flipsync providers` reads the health store: a packed call is one call there, with its
    whole cost, as a call dispatch makes is (before, packed calls were missing from it)."""
    health = HealthStore(redis_client, BreakerPolicy(), probe_lease_s=5)
    policy = PackPolicy(max_items=4, window_ms=5000)
    packer = Packer(policy, registry, CATALOG, "gpt-4o", trace.get_tracer("test"), health=health)
    stage = BatchStage(pack=policy, batch=BatchPolicy(enabled=False), packer=packer)
    dispatcher = Dispatcher(registry, CATALOG, "gpt-4o", trace.get_tracer("test"))
    route = Route(model=MODEL, provider=SIMULATED, reason="test route")
    contexts = [RequestContext(request=packable(i), route=route) for i in range(4)]
    results = await asyncio.gather(*(stage(ctx, dispatcher) for ctx in contexts))
    assert all(r.lever is Lever.PACKED for r in results)
    [row] = [h for h in await health_snapshot(redis_client) if h.model == MODEL]
    assert row.ok == 1 and row.provider == SIMULATED
    assert row.cost_micro_usd == sum(r.cost_micro_usd for r in results) > 0
