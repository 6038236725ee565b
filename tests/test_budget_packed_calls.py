"""A packed call is covered by its items' reservations before it is sent.

A packed call's bound (its own instructions, each item's output overhead) passes the sum of
what its items reserved alone. Lost with its replica, it is booked at that bound: settled
spend must still never pass a budget, and each item's part lands on that item's own budgets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import cast

import msgspec
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from opentelemetry import trace

from bus.messages import BudgetPeriod, BudgetScope, BudgetSpec, LedgerEvent, LlmRequest, LlmResult
from bus.settings import Settings
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.policy import name_token
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from flipsync.providers import SIMULATED, provider_registry
from router.batching.packer import Packer
from router.batching.policy import BatchPolicy, PackPolicy
from router.batching.prompt import build_packed_call
from router.call_markers import EVENTS, LEASES
from router.context import RequestContext, Route
from router.paid_answers import PaidAnswers
from router.providers.registry import ProviderRegistry
from router.stages.batch import BatchStage
from router.stages.budget import BudgetStage, estimate_input_tokens
from router.stages.dispatch import Dispatcher
from router.token_bound import max_request_cost
from simulator.config import Faults, SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually
from tests.test_budget_store import day_counter, make_store
from tests.test_packing import packable

MODEL = "gpt-4o-mini"
CATALOG = PriceCatalog.load()
MARGIN = EngineSettings().input_margin
HANG_S = 8.0
"""How long a call hangs: well past the few hundred ms a test takes to lose and reap it."""
_ANY_MARKER = msgspec.json.Decoder(LedgerEvent | list[LedgerEvent])


@pytest.fixture
async def hanging() -> AsyncIterator[ProviderRegistry]:
    """A simulated provider that holds every call past the client's timeout: the replica dies
    meanwhile (the timeout only ends the packed call the test leaves behind)."""
    async with SimulatedProvider(SimConfig()) as sim:
        await sim.set_faults(Faults(timeout=1.0, timeout_s=60.0))
        settings = Settings(provider_max_retries=0, provider_timeout_s=HANG_S)
        clients = provider_registry(settings, CATALOG, sim.base_url)
        yield clients
        await clients.close()


def reserved_alone(request: LlmRequest) -> int:
    """What the budget stage reserves for request on MODEL."""
    tokens = estimate_input_tokens(request)
    return max_request_cost(request, CATALOG.get(MODEL), MARGIN, estimate=tokens)


def packed_bound(requests: Sequence[LlmRequest]) -> int:
    """The most the packed call of requests can cost: what its lost call is booked at."""
    call = build_packed_call(requests, "pack-bound").request
    tokens = estimate_input_tokens(call)
    return max_request_cost(call, CATALOG.get(MODEL), MARGIN, estimate=tokens)


async def _markers(redis: aioredis.Redis, tenant: str) -> dict[bytes, list[LedgerEvent]]:
    """The lost-call markers of the tenant's calls at the provider, by call id. The lease
    keys are shared by every test of this worker's Redis: another test's leftovers are not
    this test's calls."""
    out: dict[bytes, list[LedgerEvent]] = {}
    stored = cast(dict[bytes, bytes], await redis.hgetall(EVENTS))
    for call_id, raw in stored.items():
        marker = _ANY_MARKER.decode(raw)
        events = marker if isinstance(marker, list) else [marker]
        if events and all(e.tenant == tenant for e in events):
            out[call_id] = events
    return out


async def _covered_items(redis: aioredis.Redis, tenant: str, ids: set[str]) -> bool:
    """Whether every request of ids is at the provider (under a lease), alone or packed."""
    seen: set[str] = set()
    for events in (await _markers(redis, tenant)).values():
        for event in events:
            if "(request pack-" in event.route_reason:  # one event for a whole packed call
                return True
            seen |= {i for i in ids if f"(request {i})" in event.route_reason}
    return seen == ids


async def _lose_every_call(
    redis: aioredis.Redis,
    broker: NatsBroker,
    registry: ProviderRegistry,
    store: BudgetStore,
    requests: Sequence[LlmRequest],
) -> tuple[int, list[LedgerEvent]]:
    """Run requests through budget, batch and dispatch; once all are at the provider, the
    replica dies: every lease lapses and another replica's reaper books the calls. Returns
    the lost calls' events and how many calls were made."""
    tracer = trace.get_tracer("test")
    policy = PackPolicy(max_items=len(requests), window_ms=5000)
    answers = PaidAnswers(redis, broker, CATALOG, lambda: "test", lease_s=30,
                          answer_ttl_s=60, budgets=store)  # fmt: skip
    packer = Packer(policy, registry, CATALOG, "gpt-4o", tracer, answers)
    batch = BatchStage(pack=policy, batch=BatchPolicy(enabled=False), packer=packer)
    dispatcher = Dispatcher(registry, CATALOG, "gpt-4o", tracer, paid=answers)
    budget = BudgetStage(store, CATALOG, lambda model: SIMULATED)
    route = Route(model=MODEL, provider=SIMULATED, reason="test route")

    async def run(request: LlmRequest) -> LlmResult:
        return await budget(
            RequestContext(request=request, route=route), lambda c: batch(c, dispatcher)
        )

    tasks = [asyncio.create_task(run(r)) for r in requests]
    try:
        tenant = requests[0].tenant
        await eventually(lambda: _covered_items(redis, tenant, {r.id for r in requests}))
        mine = await _markers(redis, tenant)
        calls = len(mine)
        await redis.zadd(LEASES, dict.fromkeys(mine, 0))  # the replica died: all lapse
        assert await answers.reap() >= calls  # (and any other test's lapsed leftovers)
        assert not await _markers(redis, tenant)  # every one of this test's calls booked
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await answers.close()
        await packer.close()
    return calls, [event for events in mine.values() for event in events]


def _tenant_budget(tenant: str, limit: int) -> BudgetSpec:
    return BudgetSpec(name=f"{tenant}-daily", scope=BudgetScope.TENANT,
                      period=BudgetPeriod.DAY, limit_micro_usd=limit, tenant=tenant)  # fmt: skip


async def test_a_lost_packed_call_never_passes_a_budget_its_items_fill(
    redis_client: aioredis.Redis,
    broker: NatsBroker,  # noqa: F811 - the fixture
    hanging: ProviderRegistry,
) -> None:
    tenant = f"pk{uuid.uuid4().hex[:8]}"
    requests = [packable(i, tenant=tenant) for i in range(2)]
    limit = sum(reserved_alone(r) for r in requests)  # room for the items, not the packing
    assert packed_bound(requests) > limit  # gpt-4o-mini: 191 against 144 micro-USD
    store = await make_store(redis_client, [_tenant_budget(tenant, limit)])

    _, events = await _lose_every_call(redis_client, broker, hanging, store, requests)

    spent, _ = await store.counter(day_counter(f"tenant:{tenant}"))
    assert spent == sum(e.cost_micro_usd for e in events) > 0  # every lost call is booked ...
    assert spent <= limit, f"{spent - limit} micro-USD over: lost calls {events}"


async def test_a_lost_packed_call_is_booked_on_each_items_budgets_within_its_reservation(
    redis_client: aioredis.Redis,
    broker: NatsBroker,  # noqa: F811 - the fixture
    hanging: ProviderRegistry,
) -> None:
    tenant = f"pk{uuid.uuid4().hex[:8]}"
    requests = [
        msgspec.structs.replace(packable(i, tenant=tenant), agent=f"agent{i}") for i in range(2)
    ]
    bound = packed_bound(requests)
    shortfall = bound - sum(reserved_alone(r) for r in requests)
    assert shortfall > 0
    # Each agent's budget holds its item's reservation and its part of the packing overhead:
    # an even share, rounded up (cover() gives the odd micro-dollar to the item that reached
    # the packer first, and which one that is depends on scheduling: a loaded run flipped it).
    extras = [shortfall - shortfall // 2] * 2
    budgets = [_tenant_budget(tenant, bound)] + [
        BudgetSpec(name=f"{tenant}-{r.agent}", scope=BudgetScope.AGENT, period=BudgetPeriod.DAY,
                   limit_micro_usd=reserved_alone(r) + extra, tenant=tenant, agent=r.agent)
        for r, extra in zip(requests, extras, strict=True)
    ]  # fmt: skip
    store = await make_store(redis_client, budgets)

    calls, events = await _lose_every_call(redis_client, broker, hanging, store, requests)

    assert calls == 1  # the budgets had room for the packing overhead: packed
    assert sorted(e.agent for e in events) == ["agent0", "agent1"]
    assert sum(e.cost_micro_usd for e in events) == bound  # booked at its maximum, shared
    spent, _ = await store.counter(day_counter(f"tenant:{tenant}"))
    assert spent == bound
    for budget in budgets[1:]:
        spent, _ = await store.counter(day_counter(f"agent:{tenant}:{name_token(budget.agent)}"))
        assert 0 < spent <= budget.limit_micro_usd, budget.name
