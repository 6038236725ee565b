"""A request that may be packed reserves its part of the packed call's overhead up front.

So its packed call's items hold the call's bound already and cover() sends no Redis command;
without the up-front share, cover() grows every item in one call of the budgets (one script
per budget group). Over-reserving is released at settle.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from decimal import Decimal

import msgspec
import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from bus.messages import (
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    ChatMessage,
    Lever,
    LlmRequest,
    LlmResult,
    OutputSchema,
    Priority,
)
from cost_ledger.budgets.policy import Subject, name_token
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from flipsync.providers import SIMULATED
from router.batching.packer import Packer
from router.batching.policy import BatchPolicy, PackPolicy
from router.batching.prompt import build_packed_call
from router.batching.upfront import pack_share
from router.context import RequestContext, Route
from router.providers.registry import ProviderRegistry
from router.stages.batch import BatchStage
from router.stages.budget import BudgetStage, estimate_input_tokens
from router.stages.dispatch import Dispatcher
from router.token_bound import max_request_cost
from simulator.server import SimulatedProvider
from tests.helpers import TITLE_SCHEMA
from tests.test_budget_store import day_counter, make_store
from tests.test_packing import SOMETIMES_SCHEMA, packable
from tests.test_packing import registry as registry  # noqa: F401 - the fixture
from tests.test_packing import sim as sim  # noqa: F401 - the fixture

MODEL = "gpt-4o-mini"
CATALOG = PriceCatalog.load()
MARGIN = Decimal("1.10")
WORDS = (
    "mug", "stoneware", "glaze", "the", "a", "waterproof", "teal", "Ærøskøbing", "北京", "123",
    "4567", ",", '{"x":', "  ", "\n", "\n\n", "- ", "é", "naïve", "über", "### Item 3",
)  # fmt: skip
OPENING = "Write an eBay title for the product below, please, with care and brevity.\n\n"


def bound(requests: Sequence[LlmRequest], model: str) -> int:
    """The packed call's bound, as Packer._bound and PaidAnswers.most compute it."""
    call = build_packed_call(requests, "pack-bound").request
    tokens = estimate_input_tokens(call)
    return max_request_cost(call, CATALOG.get(model), MARGIN, estimate=tokens)


def alone(request: LlmRequest, model: str) -> int:
    """What the budget stage reserves for request on model when it will not be packed."""
    tokens = estimate_input_tokens(request)
    return max_request_cost(request, CATALOG.get(model), MARGIN, estimate=tokens)


def held(request: LlmRequest, model: str, max_items: int) -> int:
    """What the budget stage reserves for request on model when it may be packed."""
    return max(alone(request, model), pack_share(request, CATALOG.get(model), MARGIN, max_items))


def _text(rng: random.Random) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 120)))
    return OPENING + text if rng.random() < 0.5 else text


@pytest.mark.parametrize("model", [MODEL, "gpt-4o", "claude-haiku-3.5", "gemini-2.0-flash-lite"])
def test_the_up_front_shares_of_any_pack_hold_its_bound(model: str) -> None:
    rng = random.Random(f"upfront-{model}")
    array = OutputSchema(name="tags", schema={"type": "array", "items": {"type": "string"}})
    for _ in range(200):
        max_items = rng.randint(2, 10)
        schema = rng.choice([TITLE_SCHEMA, SOMETIMES_SCHEMA, array])
        system = rng.choice([[], [ChatMessage(role="system", content=_text(rng))]])
        requests = [
            LlmRequest(
                id=f"r{i}",
                tenant="t",
                agent="a",
                task_type="text_generation",
                messages=[*system, ChatMessage(role="user", content=_text(rng))],
                output_schema=schema,
                max_output_tokens=rng.randint(1, 1024),
            )  # fmt: skip
            for i in range(rng.randint(2, max_items))
        ]
        most = bound(requests, model)
        assert sum(held(r, model, max_items) for r in requests) >= most
        # A pack of these requests costs more than they reserve alone: the share is needed.
        assert most > sum(alone(r, model) for r in requests) or system


def test_the_share_is_the_most_of_a_pair_and_none_where_nothing_is_packed() -> None:
    requests = [packable(i) for i in range(8)]
    price = CATALOG.get(MODEL)
    share = pack_share(requests[0], price, MARGIN, 8)
    assert alone(requests[0], MODEL) < share
    assert 2 * share >= bound(requests[:2], MODEL)
    assert 8 * share >= bound(requests, MODEL)
    assert pack_share(requests[0], price, MARGIN, 1) == 0  # packing off: nothing up front
    no_schema = msgspec.structs.replace(requests[0], output_schema=None)
    assert pack_share(no_schema, price, MARGIN, 8) == 0


class Grows:
    """Counts the budgets' grow calls (each one script per budget group)."""

    def __init__(self, store: BudgetStore) -> None:
        self.calls: list[int] = []
        self._grow = store.extend_many

    async def __call__(self, wanted: Sequence[tuple[str, Subject, int]]) -> list[object]:
        self.calls.append(len(wanted))
        return list(await self._grow(wanted))


async def _run_packed(
    registry: ProviderRegistry,  # noqa: F811 - the fixture
    store: BudgetStore,
    requests: Sequence[LlmRequest],
    *,
    upfront: bool,
) -> tuple[list[LlmResult], list[RequestContext]]:
    """requests through budget, batch and dispatch stages, one window for them all."""
    tracer = trace.get_tracer("test")
    policy = PackPolicy(max_items=len(requests), window_ms=5000)
    packer = Packer(policy, registry, CATALOG, "gpt-4o", tracer)
    batch = BatchStage(pack=policy, batch=BatchPolicy(enabled=False), packer=packer)
    dispatcher = Dispatcher(registry, CATALOG, "gpt-4o", tracer)
    pack_items = batch.pack_items if upfront else None
    budget = BudgetStage(store, CATALOG, lambda model: SIMULATED, pack_items=pack_items)
    route = Route(model=MODEL, provider=SIMULATED, reason="test route")
    contexts = [RequestContext(request=r, route=route) for r in requests]
    try:
        results = await asyncio.gather(
            *(budget(ctx, lambda c: batch(c, dispatcher)) for ctx in contexts)
        )
    finally:
        await packer.close()
    return list(results), contexts


def _tenant_budget(tenant: str, limit: int) -> BudgetSpec:
    return BudgetSpec(name=f"{tenant}-daily", scope=BudgetScope.TENANT,
                      period=BudgetPeriod.DAY, limit_micro_usd=limit, tenant=tenant)  # fmt: skip


@pytest.mark.parametrize("upfront", [True, False])
async def test_a_packed_call_whose_items_hold_its_bound_up_front_grows_nothing(
    redis_client: aioredis.Redis,
    sim: SimulatedProvider,  # noqa: F811 - the fixture
    registry: ProviderRegistry,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    upfront: bool,
) -> None:
    tenant = f"up{uuid.uuid4().hex[:8]}"
    requests = [packable(i, tenant=tenant) for i in range(4)]
    store = await make_store(redis_client, [_tenant_budget(tenant, 10**9)])
    grows = Grows(store)
    monkeypatch.setattr(store, "extend_many", grows)

    results, contexts = await _run_packed(registry, store, requests, upfront=upfront)

    assert all(r.ok and r.lever is Lever.PACKED for r in results), [r.reason for r in results]
    assert (await sim.stats()).calls == 1
    holds = [c.reserved_micro_usd or 0 for c in contexts]
    assert sum(holds) >= bound(requests, MODEL)
    if upfront:  # reserved by the budget stage: cover() had nothing to grow
        assert grows.calls == []
        assert holds == [held(r, MODEL, 4) for r in requests]
    else:  # every item grown by the packer, all in one call of the budgets
        assert grows.calls == [4]
        assert all(
            c.own_micro_usd == alone(r, MODEL) for c, r in zip(contexts, requests, strict=True)
        )
    spent, reserved = await store.counter(day_counter(f"tenant:{name_token(tenant)}"))
    assert (spent, reserved) == (sum(r.cost_micro_usd for r in results), 0)  # rest released


async def test_an_item_whose_budget_refuses_its_share_up_front_is_grown_by_its_call(
    redis_client: aioredis.Redis,
    sim: SimulatedProvider,  # noqa: F811 - the fixture
    registry: ProviderRegistry,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = f"up{uuid.uuid4().hex[:8]}"
    requests = [packable(i, tenant=tenant) for i in range(2)]
    shares = [held(r, MODEL, 2) for r in requests]
    limit = sum(shares) - 1  # room for one share up front and the other's own maximum ...
    assert shares[0] + alone(requests[1], MODEL) <= limit
    assert shares[1] + alone(requests[0], MODEL) <= limit
    assert bound(requests, MODEL) <= limit  # ... and for the packed call, once grown
    assert max(shares[0] + alone(requests[1], MODEL), shares[1] + alone(requests[0], MODEL)) < (
        bound(requests, MODEL)
    )  # the one that reserved alone must grow
    store = await make_store(redis_client, [_tenant_budget(tenant, limit)])
    grows = Grows(store)
    monkeypatch.setattr(store, "extend_many", grows)

    results, contexts = await _run_packed(registry, store, requests, upfront=True)

    assert all(r.ok and r.lever is Lever.PACKED for r in results), [r.reason for r in results]
    assert (await sim.stats()).calls == 1
    assert grows.calls == [1]  # only the one that reserved alone grows, to its part
    assert sum(c.reserved_micro_usd or 0 for c in contexts) >= bound(requests, MODEL)
    spent, reserved = await store.counter(day_counter(f"tenant:{name_token(tenant)}"))
    assert spent == sum(r.cost_micro_usd for r in results) <= limit and reserved == 0


async def test_interactive_requests_reserve_no_share(
    redis_client: aioredis.Redis,
    sim: SimulatedProvider,  # noqa: F811 - the fixture
    registry: ProviderRegistry,  # noqa: F811 - the fixture
) -> None:
    tenant = f"up{uuid.uuid4().hex[:8]}"
    requests = [packable(i, tenant=tenant, priority=Priority.INTERACTIVE) for i in range(2)]
    store = await make_store(redis_client, [_tenant_budget(tenant, 10**9)])
    results, contexts = await _run_packed(registry, store, requests, upfront=True)
    assert all(r.ok and r.lever is not Lever.PACKED for r in results)
    assert [c.reserved_micro_usd for c in contexts] == [alone(r, MODEL) for r in requests]


async def test_a_redelivery_counts_only_the_earlier_deliverys_own_maximum_as_held(
    redis_client: aioredis.Redis,
) -> None:
    tenant = f"up{uuid.uuid4().hex[:8]}"
    request = packable(0, tenant=tenant)
    store = await make_store(redis_client, [_tenant_budget(tenant, 10**9)])
    own = alone(request, MODEL)
    subject = Subject(tenant=tenant, agent=request.agent, workflow=request.workflow_id)
    assert (await store.reserve(request.id, subject, own)).holds  # the earlier delivery's
    budget = BudgetStage(store, CATALOG, lambda model: SIMULATED, pack_items=lambda ctx: 4)
    seen: list[int | None] = []

    async def rest(ctx: RequestContext) -> LlmResult:
        seen.append(ctx.reserved_micro_usd)
        raise RuntimeError("stop here")

    ctx = RequestContext(request=request, route=Route(model=MODEL, provider=SIMULATED, reason=""))
    with pytest.raises(RuntimeError):
        await budget(ctx, rest)
    # Its packed call must not count on a share the earlier delivery may not have reserved.
    assert seen == [own] and held(request, MODEL, 4) > own
