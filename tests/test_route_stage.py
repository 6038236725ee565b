"""The route stage's decisions: hint, policy and flag override, task floors, budget pressure
read from the budget store, recorded quality, deadline, vision, fallbacks and the cascade."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from bus.messages import ChatMessage, ImagePart, LlmRequest, TextPart, now_ms
from bus.settings import Settings
from bus.settings_sections import RoutingSettings
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from router.context import RequestContext, Route
from router.health.config import BreakerPolicy
from router.health.store import HealthStore, Outcome
from router.providers.client import ProviderClient
from router.providers.config import ProviderConfig
from router.providers.registry import ProviderRegistry
from router.routing.candidates import Candidate
from router.routing.config import RoutingConfig
from router.routing.latency import MeasuredLatency
from router.routing.learned import PromptRouter
from router.routing.policy import Policy
from router.routing.pressure import BudgetPressure
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore, QualityView, quality_estimates
from router.stages.budget import subject_of
from router.stages.cascade import CascadeRoute
from router.stages.route import RouteStage
from tests.helpers import TITLE_SCHEMA

CATALOG = PriceCatalog.load()
MODERATE_TEXT = (
    "Calculate the total price: 3 + 4 = 7 and 5 * 6 = 30. How many units at 20%? "
    "First compare, then explain why step by step."
)  # heuristic complexity 0.45: moderate under the seed thresholds
SIMPLE_TEXT = "Write a title for a teal stoneware mug."  # complexity 0.0
PNG_1PX = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

Stage = Callable[..., RouteStage]


@pytest.fixture
async def registry() -> AsyncIterator[ProviderRegistry]:
    """Two providers: one offering every catalog model, a second offering gpt-4o-mini too."""
    every = tuple(m.name for m in CATALOG.models())
    configs = [
        ProviderConfig(
            name="main", base_url="http://127.0.0.1:9/v1", api_key=SecretStr("k"), models=every
        ),
        ProviderConfig(
            name="spare",
            base_url="http://127.0.0.1:9/v1",
            api_key=SecretStr("k"),
            models=("gpt-4o-mini",),
        ),
    ]
    running = ProviderRegistry(ProviderClient(c, timeout_s=1) for c in configs)
    yield running
    await running.close()


@pytest.fixture
def make_stage(registry: ProviderRegistry, redis_client: aioredis.Redis) -> Stage:
    """Builds a route stage over the registry, with quality counts in the test's Redis."""

    def build(
        routing: RoutingSettings | None = None,
        pressure: BudgetPressure | None = None,
        explore_share: float = 0.0,
        latency: MeasuredLatency | None = None,
    ) -> RouteStage:
        routing = routing or Settings().routing
        learned = PromptRouter.load() if routing.learned_task_types else None
        view = QualityView(
            QualityStore(redis_client),
            {m.name: m.quality for m in CATALOG.models()},
            prior_strength=routing.quality_prior_strength,
            refresh_s=0.0,
        )
        return RouteStage(
            registry,
            CATALOG,
            config=RoutingConfig.from_settings(routing),
            policy=Policy(routing.policy),
            cascade_task_types=routing.cascade_task_types,
            quality=view,
            pressure=pressure,
            learned=learned,
            learned_task_types=routing.learned_task_types,
            explore_share=explore_share,
            latency=latency,
        )

    return build


def request(
    text: str = SIMPLE_TEXT,
    *,
    task_type: str = "general",
    tenant: str = "t1",
    **fields: object,
) -> LlmRequest:
    """A one-message request."""
    fields.setdefault("id", uuid.uuid4().hex)
    return LlmRequest(
        tenant=tenant,
        agent="ebay_listing",
        task_type=task_type,
        messages=[ChatMessage(role="user", content=text)],
        max_output_tokens=200,
        **fields,  # type: ignore[arg-type]
    )


async def route(stage: RouteStage, req: LlmRequest, policy: str | None = None) -> Route:
    """The stage's route for a request."""
    return await stage.route(RequestContext(request=req, routing_policy=policy))


async def test_agent_task_types_stay_on_the_default_model(make_stage: Stage) -> None:
    got = await route(make_stage(), request(task_type="text_generation"))
    # The task floor (0.7) rules out the cheaper nano and flash-lite: gpt-4o-mini is the
    # cheapest model good enough, which is what every call went to before routing.
    assert (got.model, got.provider) == ("gpt-4o-mini", "main")
    assert got.reason == (
        "simple (0.00) on text_generation: gpt-4o-mini balances cost and latency "
        "(latency weight 0.30) with quality >= 0.70 (the request's floor)"
    )
    # Fallbacks: the same model at the other provider first, then the next-best models.
    assert got.fallbacks[0].model == "gpt-4o-mini" and got.fallbacks[0].provider == "spare"
    others = [f.model for f in got.fallbacks[1:]]
    assert len(got.fallbacks) == 3 and "gpt-4o-mini" not in others and len(set(others)) == 2
    assert all(CATALOG.get(m).quality >= 0.7 for m in others)


async def test_an_offered_hint_wins_and_falls_back_to_as_good_models(make_stage: Stage) -> None:
    got = await route(make_stage(), request(model_hint="gpt-4.1"))
    assert (got.model, got.reason) == ("gpt-4.1", "requested model gpt-4.1")
    # Models at least as good come first (the rest, best first, only so as never to dead-end).
    as_good = [CATALOG.get(f.model).quality >= 0.90 for f in got.fallbacks]
    assert as_good[0] and as_good == sorted(as_good, reverse=True)
    unknown = await route(make_stage(), request(model_hint="no-such-model"))
    assert not unknown.reason.startswith("requested")


async def test_policy_comes_from_settings_unless_a_flag_overrides_it(make_stage: Stage) -> None:
    stage = make_stage()  # balanced
    simple = request()
    balanced = await route(stage, simple)
    assert balanced.model == "gemini-2.0-flash-lite"  # no task floor: the cheapest economy
    # Economy models share a latency estimate; fastest breaks the tie on quality.
    fastest = await route(stage, simple, policy="fastest")
    assert fastest.model == "gpt-4o-mini" and "is the fastest" in fastest.reason
    bogus = await route(stage, simple, policy="bogus")
    assert bogus.model == balanced.model
    cheapest = make_stage(RoutingSettings(policy="cheapest"))
    assert "is the cheapest" in (await route(cheapest, simple)).reason


async def test_moderate_request_needs_a_better_model(make_stage: Stage) -> None:
    got = await route(make_stage(), request(MODERATE_TEXT))
    assert got.reason.startswith("moderate (0.45) on general")
    assert CATALOG.get(got.model).quality >= 0.75


async def test_budget_pressure_from_the_store_lowers_the_tier(
    make_stage: Stage, redis_client: aioredis.Redis
) -> None:
    config = BudgetConfig.from_dict(
        {"budgets": {"daily": {"scope": "tenant", "period": "day", "limit_usd": "1.00"}}}
    )
    store = BudgetStore(redis_client, LiveBudgets(redis_client, config))
    pressure = BudgetPressure(store, refresh_s=0.0)
    stage = make_stage(pressure=pressure)
    req = request(MODERATE_TEXT, tenant="spender")
    assert await pressure.of(req) == 0.0
    before = await route(stage, req)
    assert before.reason.startswith("moderate")
    # 90% of the tenant's daily budget spent: 0.45 - 0.3 * 0.9 = 0.18, a simple request.
    await store.settle("paid-1", subject_of(req), cost=900_000, messages=0, at_ms=now_ms())
    assert await pressure.of(req) == pytest.approx(0.9)
    after = await route(stage, req)
    assert "lowered to 0.18 by budget pressure 0.90" in after.reason
    assert after.reason.startswith("simple")
    assert CATALOG.get(after.model).input < CATALOG.get(before.model).input
    other = await route(stage, request(MODERATE_TEXT, tenant="thrifty"))
    assert other.reason.startswith("moderate")  # another tenant's spend does not count


async def test_recorded_quality_moves_the_choice(
    make_stage: Stage, redis_client: aioredis.Redis
) -> None:
    stage = make_stage()
    req = request(task_type="text_generation")
    assert (await route(stage, req)).model == "gpt-4o-mini"
    store = QualityStore(redis_client)
    for index in range(6):
        bad = QualitySignal(
            model="gpt-4o-mini", task_type="text_generation", kind=SignalKind.VALIDATOR, good=False
        )
        assert await store.record(bad, f"s{index}")
    assert not await store.record(bad, "s0")  # a signal id counts once
    moved = await route(stage, req)
    assert moved.model != "gpt-4o-mini"  # 7.4 / 16 = 0.46 < 0.7 now
    assert CATALOG.get(moved.model).quality >= 0.7
    estimates = await quality_estimates(redis_client)
    estimate = estimates[("gpt-4o-mini", "text_generation")]
    assert estimate.n == 6 and estimate.mean == pytest.approx(7.4 / 16)
    assert list(estimates) == [("gpt-4o-mini", "text_generation")]  # only recorded pairs
    # Another task type keeps the prior.
    assert (await route(stage, request(task_type="translation"))).model == "gpt-4o-mini"


async def test_a_close_deadline_takes_the_fastest_model(make_stage: Stage) -> None:
    soon = request(deadline_ms=int(time.time() * 1000) + 300)
    got = await route(make_stage(), soon)
    assert "deadline" in got.reason and CATALOG.get(got.model).tier.value == "economy"


async def test_images_rule_out_models_without_vision(make_stage: Stage) -> None:
    parts: list[TextPart | ImagePart] = [
        TextPart(text=MODERATE_TEXT),
        ImagePart(url=PNG_1PX, detail="low"),
    ]
    req = LlmRequest(
        id=uuid.uuid4().hex,
        tenant="t1",
        agent="a",
        messages=[ChatMessage(role="user", content=parts)],
    )
    got = await route(make_stage(RoutingSettings(moderate_quality=0.76)), req)
    # claude-haiku-3.5 (0.76) would be the cheapest good-enough text model, but sees no images.
    assert CATALOG.get(got.model).vision
    assert all(CATALOG.get(f.model).vision for f in got.fallbacks)


async def test_cascade_task_types_start_on_the_cheapest_rung(make_stage: Stage) -> None:
    stage = make_stage(RoutingSettings(cascade_task_types=frozenset({"text_generation"})))
    got = await route(stage, request(task_type="text_generation", output_schema=TITLE_SCHEMA))
    assert isinstance(got, CascadeRoute)
    assert [r.tier.value for r in got.ladder.rungs] == ["economy", "standard", "premium"]
    assert got.model == got.ladder.rungs[0].model == "gpt-4o-mini"
    assert got.reason.startswith("cascade gpt-4o-mini > ")
    # The fallbacks continue up the ladder after the other provider's gpt-4o-mini.
    assert [f.model for f in got.fallbacks][1:] == [r.model for r in got.ladder.rungs[1:]]
    plain = await route(stage, request(task_type="text_generation"))  # no schema: no cascade
    assert not isinstance(plain, CascadeRoute)


async def test_learned_task_types_take_the_prompt_router_complexity(make_stage: Stage) -> None:
    stage = make_stage(RoutingSettings(learned_task_types=frozenset({"general"})))
    learned = PromptRouter.load().complexity(MODERATE_TEXT)
    got = await route(stage, request(MODERATE_TEXT))
    tier = "simple" if learned < 0.3 else "moderate" if learned < 0.7 else "complex"
    assert got.reason.startswith(f"{tier} ({learned:.2f}) on general")
    heuristic = await route(make_stage(), request(MODERATE_TEXT))
    assert heuristic.reason.startswith("moderate (0.45)")
    assert learned != pytest.approx(0.45, abs=0.005)  # the learned score is its own


async def test_exploring_requests_route_on_sampled_quality(make_stage: Stage) -> None:
    # Priors worth 50 answers (the default until the prior strength was calibrated to 20):
    # samples stay near the means, so exploring spreads over mini and its cheaper peers.
    exploring = make_stage(RoutingSettings(quality_prior_strength=50.0), explore_share=1.0)
    # Fixed ids: which requests explore, and where, is a hash of the id.
    reqs = [request(task_type="text_generation", id=f"probe-{i}") for i in range(40)]
    routes = [await route(exploring, r) for r in reqs]
    models = {r.model for r in routes}
    assert "gpt-4o-mini" in models and len(models) >= 3  # others get their chance, and signals
    # At the default 20, wider samples more often lift the cheapest models over the floor:
    # exploring gives them (cheaper than mini, the steady pick) the signals.
    default = {(await route(make_stage(explore_share=1.0), r)).model for r in reqs}
    prices = {m.name: m.input for m in CATALOG.models()}
    assert len(default) >= 2 and all(prices[m] < prices["gpt-4o-mini"] for m in default)
    # Each explores: a model cheaper than the policy's pick, else sampled quality.
    assert all(r.reason.startswith("exploring") for r in routes)
    assert any(r.reason.startswith("exploring a cheaper model than ") for r in routes)
    again = [await route(exploring, r) for r in reqs[:5]]
    assert [r.model for r in again] == [r.model for r in routes[:5]]  # stable per request
    steady = make_stage()  # explore_share 0: the means decide, always the same model
    assert {(await route(steady, r)).model for r in reqs} == {"gpt-4o-mini"}


async def test_measured_latency_replaces_the_tier_default(
    make_stage: Stage, redis_client: aioredis.Redis
) -> None:
    """Provider health saw gpt-4o-mini answer slowly at main: fastest moves off it, and a
    model nobody measured keeps its tier's default."""
    health = HealthStore(redis_client, BreakerPolicy(), probe_lease_s=5)
    for _ in range(5):
        await health.record("main", "gpt-4o-mini", Outcome.OK, latency_ms=9000.0, output_tokens=100)
    stage = make_stage(latency=MeasuredLatency(redis_client, refresh_s=0.0))
    fastest = await route(stage, request(), policy="fastest")
    assert fastest.model != "gpt-4o-mini" and "is the fastest" in fastest.reason
    measured = {c.model: c.latency for c in await stage_candidates(stage, redis_client)}
    assert measured["gpt-4o-mini"].total_ms(100) == pytest.approx(9000.0)
    default = next(c for c in stage.candidates if c.model == "gpt-4.1-nano").latency
    assert measured["gpt-4.1-nano"] == default


async def stage_candidates(stage: RouteStage, redis: aioredis.Redis) -> list[Candidate]:
    """The stage's candidates as measured latency adjusts them."""
    return list(await MeasuredLatency(redis, refresh_s=0.0).candidates(stage.candidates))
