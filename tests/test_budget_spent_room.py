"""A call booked at its bound spends its request's reservation; a further call needs room.

A provider that answers 200 with a body that is not JSON was paid for an answer FlipSync
cannot use: the call is booked at once at its maximum, which is what the budget stage reserved
for the request. Before, dispatch then fell back to the next candidate within that same
reservation, and the fallback's cost was settled on top: with the budget full, settled spend
passed it by the fallback's cost. Now the fallback first grows the reservation beside what
was booked, or is not made.

Real redis-server and nats-server, two simulated providers, the real budget stage, dispatch
and paid-call booking.
"""

from __future__ import annotations

import uuid
from typing import cast

import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from opentelemetry import trace
from redis.exceptions import RedisError

from bus.messages import (
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    ErrorCode,
    LedgerEvent,
    Lever,
    LlmResult,
    error_result,
    now_ms,
)
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.gate import Settlement
from cost_ledger.budgets.policy import Subject
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from flipsync.providers import dispatch_health
from router.batching.outcome import Alone
from router.batching.packer import Packer
from router.batching.policy import BatchPolicy, PackPolicy
from router.context import Fallback, RequestContext, Route
from router.errors import RouterError
from router.paid_answers import PaidAnswers
from router.paid_calls import booked, paid_micro_usd
from router.pipeline import Handler, Stage, compose
from router.providers.client import Completion
from router.providers.errors import NoCandidateLeftError, ProviderCallError
from router.stages.batch import BatchStage
from router.stages.budget import BudgetStage, estimate_input_tokens
from router.stages.dispatch import Dispatcher
from router.token_bound import max_request_cost
from simulator.config import Faults
from simulator.server import SimulatedProvider
from tests.helpers import make_request
from tests.test_budget_store import day_counter, make_store
from tests.test_budget_store import tenant_budget as acme_budget
from tests.test_packing import packable
from tests.test_provider_fallback import MODEL, FixedRoute, registry_of, settings_for

CATALOG = PriceCatalog.load()


async def _run(
    sims: dict[str, SimulatedProvider],
    redis: aioredis.Redis,
    broker: NatsBroker,
    limit_in_reservations: int,
) -> tuple[LlmResult | RouterError, BudgetStore, str, int, RequestContext]:
    """One request routed to a (which answers garbage) with b as fallback, under a budget of
    limit_in_reservations times what the stage reserves for it."""
    tenant = f"room{uuid.uuid4().hex[:8]}"
    request = make_request(tenant=tenant, agent="listing")
    reserved = max_request_cost(
        request,
        CATALOG.get(MODEL),
        EngineSettings().input_margin,
        estimate=estimate_input_tokens(request),
    )
    limit = reserved * limit_in_reservations
    budget = BudgetSpec(name=f"{tenant}-daily", scope=BudgetScope.TENANT,
                        period=BudgetPeriod.DAY, limit_micro_usd=limit, tenant=tenant)  # fmt: skip
    store = await make_store(redis, [budget])
    settings = settings_for(["a", "b"])
    registry = registry_of(settings, sims)
    await sims["a"].set_faults(Faults(malformed_json=1.0))
    paid = PaidAnswers(redis, broker, CATALOG, lambda: "test", lease_s=30, answer_ttl_s=60,
                       budgets=store)  # fmt: skip
    tracer = trace.get_tracer("test")
    dispatcher = Dispatcher(
        registry, CATALOG, "gpt-4o", tracer,
        health=dispatch_health(settings, redis), paid=paid,
    )  # fmt: skip
    stages: list[Stage] = [
        FixedRoute("a", (Fallback(model=MODEL, provider="b"),)),
        BudgetStage(store, CATALOG, lambda model: "a"),
    ]
    handler: Handler = compose(stages, dispatcher, tracer)
    ctx = RequestContext(request=request)
    try:
        got: LlmResult | RouterError = await handler(ctx)
    except RouterError as exc:
        got = exc
    finally:
        await paid.close()
        await registry.close()
    return got, store, tenant, limit, ctx


async def test_a_fallback_after_a_billed_failure_is_not_made_without_budget_room(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    got, store, tenant, limit, ctx = await _run(sims, redis_client, broker, 1)
    assert isinstance(got, RouterError), got
    assert got.code is ErrorCode.OVER_BUDGET
    assert "unusable" in got.reason and "no budget room" in got.reason
    assert (await sims["b"].stats()).requests == 0  # the fallback was not paid for
    assert ctx.booked_micro_usd == limit  # the unusable answer, booked at its bound
    spent, held = await store.counter(day_counter(f"tenant:{tenant}"))
    assert held == 0
    assert spent == limit, f"{spent - limit} micro-USD over the budget"


async def test_a_fallback_that_fits_beside_the_booked_call_is_made(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """A budget of two reservations holds the booked unusable call and the fallback's bound
    exactly. The booked part leaves the reservation when it is settled into spend; counted in
    both (found by review), the fallback was refused though it fit."""
    got, store, tenant, limit, ctx = await _run(sims, redis_client, broker, 2)
    assert isinstance(got, LlmResult) and got.ok, got
    assert ctx.booked_micro_usd == limit // 2
    spent, held = await store.counter(day_counter(f"tenant:{tenant}"))
    assert held == 0 and spent == ctx.booked_micro_usd + got.cost_micro_usd <= limit


async def test_a_fallback_after_a_billed_failure_grows_the_reservation_when_there_is_room(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    got, store, tenant, limit, ctx = await _run(sims, redis_client, broker, 3)
    assert isinstance(got, LlmResult) and got.ok, got
    assert got.provider == "b" and "unusable" in got.reason
    booked = ctx.booked_micro_usd
    assert booked == limit // 3
    # The booked part left the reservation; the fallback's bound was reserved beside it.
    assert ctx.reserved_micro_usd is not None and ctx.reserved_micro_usd >= booked
    spent, held = await store.counter(day_counter(f"tenant:{tenant}"))
    assert held == 0
    # Both calls are in the budget: the unusable one at its bound, the fallback at its cost.
    assert spent == booked + paid_micro_usd(ctx) == booked + got.cost_micro_usd
    assert spent <= limit


class _ShareBack:
    """A packer whose packed answer missed this item: it goes alone, carrying its share of
    the packed call, already paid (router.batching.packer)."""

    share = 40

    async def submit(self, key: str, ctx: RequestContext) -> Alone:
        return Alone(reason="item 2 missing from the packed answer", cost_micro_usd=self.share)

    async def close(self) -> None:
        return None


async def test_a_paid_packed_share_is_booked_when_the_retry_alone_fails(
    redis_client: aioredis.Redis,
) -> None:
    """Found by review: the share rode only on the retry's result; when the retry raised,
    the budget settled 0 and the ledger booked 0 for a call share that was paid."""
    store = await make_store(redis_client, [acme_budget(100_000)])
    request = packable(1, tenant="acme")
    policy = PackPolicy(max_items=2, window_ms=50)
    packer = cast(Packer, _ShareBack())
    batch = BatchStage(pack=policy, batch=BatchPolicy(enabled=False), packer=packer)
    budget = BudgetStage(store, CATALOG, lambda model: "simulated")

    async def every_candidate_fails(ctx: RequestContext) -> LlmResult:
        raise NoCandidateLeftError("every provider failed", ErrorCode.PROVIDER_ERROR)

    route = Route(model=MODEL, provider="simulated", reason="test")
    ctx = RequestContext(request=request, route=route)
    with pytest.raises(RouterError) as failed:
        await budget(ctx, lambda c: batch(c, every_candidate_fails))
    error = error_result(request.id, request.tenant, request.agent, failed.value.code, "failed")
    ledger = booked(ctx, error)  # what the router service publishes for it
    assert ctx.shared_micro_usd == _ShareBack.share
    assert ledger.cost_micro_usd == _ShareBack.share and ledger.lever is Lever.PACKED
    assert await store.counter(day_counter("tenant:acme")) == (_ShareBack.share, 0)


class _SettleFails:
    """The budgets as the lost-call booking sees them, with Redis failing on its settle."""

    def __init__(self, store: BudgetStore) -> None:
        self._store = store

    @property
    def engine(self) -> EngineSettings:
        return self._store.engine

    async def settle_event(
        self, event: LedgerEvent, *, final: bool = True, alerts: bool = True
    ) -> Settlement:
        raise RedisError("connection reset")


async def test_a_booked_part_keeps_its_room_until_its_settle_lands(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """Found by review: an unusable answer's booking gave its part back to the budgets even
    when settling it failed (left to the ledger, later): until then that room was neither
    reserved nor spent. Now the room goes back only with the booking's first settle; the
    request still counts the part as booked, so a further call needs room beside it."""
    tenant = f"keep{uuid.uuid4().hex[:8]}"
    request = make_request(tenant=tenant, agent="listing")
    budget = BudgetSpec(name=f"{tenant}-daily", scope=BudgetScope.TENANT,
                        period=BudgetPeriod.DAY, limit_micro_usd=10**5, tenant=tenant)  # fmt: skip
    store = await make_store(redis_client, [budget])
    subject = Subject(tenant=tenant, agent=request.agent)
    assert (await store.reserve(request.id, subject, 500)).holds
    counter = day_counter(f"tenant:{tenant}")
    answers = PaidAnswers(redis_client, broker, CATALOG, lambda: "test", lease_s=30,
                          answer_ttl_s=60, budgets=_SettleFails(store))  # fmt: skip
    ctx = RequestContext(request=request, reserved_micro_usd=500)

    async def unusable() -> Completion:
        raise ProviderCallError("a", MODEL, "unusable answer", retryable=False,
                                unhealthy=True, billed=True)  # fmt: skip

    try:
        with pytest.raises(ProviderCallError):
            await answers.call(ctx, provider="a", model=MODEL, input_tokens=20, simulated=True,
                               make=unusable)  # fmt: skip
    finally:
        await answers.close()
    part = ctx.booked_micro_usd
    assert 0 < part <= 500 and ctx.reserved_micro_usd == 500 - part
    assert await store.counter(counter) == (0, 500)  # the room stays until the settle lands
    # The ledger settles the booking later: then its part leaves the reservation.
    await store.settle(f"{request.id}-booked", subject, cost=part, messages=0, at_ms=now_ms(),
                       final=True, reserved_by=request.id)  # fmt: skip
    assert await store.counter(counter) == (part, 500 - part)
