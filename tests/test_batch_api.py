"""Bulk requests through the Batch API: end to end with the discount in the ledger, the
deadline rule, and a replica that dies while its batch runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from bus.llm_client import LlmClient
from bus.messages import Lever, LlmResult, Priority, now_ms
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from flipsync.providers import SIMULATED, provider_configs
from flipsync.stack import Service, Stack, start_stack
from router.batching import keys
from router.batching.batch_api import BatchApiClient
from router.batching.lane import BatchLane
from router.batching.policy import BatchPolicy
from router.context import RequestContext, Route
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually
from tests.test_packing import AGENT, MODEL, packable

CATALOG = PriceCatalog.load()
PRICE = CATALOG.get(MODEL)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack whose simulated batches take 0.3 s, polled every 0.1 s."""
    settings = Settings(
        sim_latency_ms=0,
        provider_max_retries=0,
        sim_batch_delay_s=0.3,
        batch_poll_s=0.1,
        batch_window_ms=200,
        batch_turnaround_s=30,
        extra_agents=frozenset({AGENT}),
    )
    running = await start_stack(settings, [Service.PROVIDER, Service.ROUTER, Service.LEDGER])
    yield running
    await running.stop()


async def test_bulk_requests_go_through_one_batch_at_the_discount(stack: Stack) -> None:
    assert stack.sim is not None
    before = await stack.sim.stats()
    tenant = f"b{uuid.uuid4().hex[:8]}"
    client = LlmClient(stack.broker)
    requests = [packable(i, tenant=tenant, priority=Priority.BULK) for i in range(6)]
    results = await asyncio.gather(*(client.request(r, timeout_s=30) for r in requests))

    after = await stack.sim.stats()
    assert (after.batches - before.batches, after.batch_calls - before.batch_calls) == (1, 6)
    assert after.calls == before.calls  # not one synchronous call
    assert [r.request_id for r in results] == [r.id for r in requests]
    for result in results:
        assert result.ok and result.lever is Lever.BATCH_API, result.reason
        assert isinstance(result.parsed, dict) and result.parsed["title"]
        full = cost_micro_usd(PRICE, result.usage)
        assert result.cost_micro_usd == cost_micro_usd(PRICE, result.usage, batch=True)
        assert abs(2 * result.cost_micro_usd - full) <= 1  # the catalog's 50% discount
        assert result.baseline_micro_usd > full

    async def settled() -> bool:
        return (await stack.aggregates.totals(tenant)).calls == 6

    await eventually(settled)
    totals = await stack.aggregates.totals(tenant)
    assert totals.spend_micro_usd == sum(r.cost_micro_usd for r in results)
    assert totals.paid_calls == 6


async def test_a_deadline_too_short_for_a_batch_goes_the_normal_way(stack: Stack) -> None:
    assert stack.sim is not None
    before = await stack.sim.stats()
    tenant = f"b{uuid.uuid4().hex[:8]}"
    request = packable(0, tenant=tenant, priority=Priority.BULK, deadline_ms=now_ms() + 10_000)
    result = await LlmClient(stack.broker).request(request, timeout_s=30)
    assert result.ok and result.lever in (Lever.ROUTED, Lever.PACKED), result.lever
    after = await stack.sim.stats()
    assert after.batches == before.batches and after.calls == before.calls + 1


def lane(redis: aioredis.Redis, sim: SimulatedProvider) -> BatchLane:
    """A Batch API lane as one router replica has it."""
    config = provider_configs(Settings(), CATALOG, sim.base_url)[0]
    return BatchLane(
        policy=BatchPolicy(window_ms=50, turnaround_s=30),
        clients={SIMULATED: BatchApiClient(config, timeout_s=10, max_retries=0)},
        catalog=CATALOG,
        baseline_model="gpt-4o",
        redis=redis,
        poll_s=0.05,
        tracer=trace.get_tracer("test"),
    )


def contexts(tenant: str, n: int) -> list[RequestContext]:
    route = Route(model=MODEL, provider=SIMULATED, reason="test route")
    return [
        RequestContext(request=packable(i, tenant=tenant, priority=Priority.BULK), route=route)
        for i in range(n)
    ]


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "found-by-metadata"])
async def test_a_redelivered_request_waits_for_the_batch_it_is_already_in(
    redis_client: aioredis.Redis, recorded: bool
) -> None:
    async with SimulatedProvider(SimConfig(batch_completion_s=1.0)) as sim:
        tenant = f"b{uuid.uuid4().hex[:8]}"
        held = contexts(tenant, 3)
        first = lane(redis_client, sim)
        doomed = [asyncio.create_task(first.submit(ctx)) for ctx in held]

        async def batch_created() -> bool:
            return bool(await redis_client.get(keys.request_window(held[0].request.id))) and (
                (await sim.stats()).batches == 1
            )

        await eventually(batch_created)
        for task in doomed:  # the replica dies: its waiting requests are gone
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        await first.close()
        if not recorded:  # it died after creating the batch, before recording it
            window = await redis_client.get(keys.request_window(held[0].request.id))
            assert isinstance(window, bytes)
            await redis_client.delete(keys.window_batch(window.decode()))

        again = [RequestContext(request=ctx.request, route=ctx.route) for ctx in held]
        outcomes = await asyncio.gather(*(lane(redis_client, sim).submit(c) for c in again))

        stats = await sim.stats()
        assert (stats.batches, stats.batch_calls, stats.calls) == (1, 3, 0)  # paid once
        for ctx, outcome in zip(held, outcomes, strict=True):
            assert isinstance(outcome, LlmResult) and outcome.lever is Lever.BATCH_API
            assert outcome.ok and outcome.request_id == ctx.request.id
