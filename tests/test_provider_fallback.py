"""Fallback, circuit breakers, 429 storms and deadlines, on real Redis and simulated providers.

The pipeline is built here (a fixed route with fallbacks, then the real Dispatcher), so
these tests do not depend on the routing policy; the deadline is also checked end to end
through nats-server and the router service.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus.llm_client import LlmClient
from bus.messages import ErrorCode, LlmRequest, LlmResult, Status
from bus.settings import Settings
from bus.settings_sections import HealthSettings
from cost_ledger.catalog import PriceCatalog
from flipsync.providers import dispatch_health, provider_registry
from flipsync.stack import start_stack
from router.context import Fallback, RequestContext, Route
from router.errors import DeadlineExceededError, RouterError
from router.health import BreakerState, RateLimiter, health_snapshot
from router.pipeline import Handler, compose
from router.providers.attempts import BILLED_ATTRIBUTE, MAY_HAVE_BEEN_BILLED
from router.providers.registry import ProviderRegistry
from router.stages.dispatch import Dispatcher
from simulator.config import Faults, SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually, make_request

CATALOG = PriceCatalog.load()
MODEL = "gpt-4o-mini"
# A cool-down long enough (1.5 s) that a test process stalled for a few hundred ms (a loaded
# machine) does not see an open circuit half-open before the test looks at it.
QUICK_HEALTH = HealthSettings(
    breaker_failures=3,
    breaker_cooldown_s=1.5,
    retry_base_s=0.01,
    retry_max_s=0.05,
    rate_wait_before_fallback_s=0.2,
)


class FixedRoute:
    """Routes every request to one model and provider, with the given fallbacks."""

    name = "route"

    def __init__(self, provider: str, fallbacks: tuple[Fallback, ...] = (), model: str = MODEL):
        self._route = (model, provider, fallbacks)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Set the route, call the rest."""
        model, provider, fallbacks = self._route
        ctx.route = Route(model=model, provider=provider, reason="test", fallbacks=fallbacks)
        return await call_next(ctx)


def settings_for(names: list[str], health: HealthSettings = QUICK_HEALTH) -> Settings:
    """Settings naming simulated providers, with quick breakers and retries."""
    providers = [{"name": name, "kind": "simulated"} for name in names]
    return Settings(providers=providers, health=health, provider_max_retries=1)


def registry_of(settings: Settings, sims: dict[str, SimulatedProvider]) -> ProviderRegistry:
    """Clients of the named simulated providers that are already running."""
    urls = {name: sim.base_url for name, sim in sims.items()}
    return provider_registry(settings, CATALOG, None, urls)


def pipeline(
    settings: Settings,
    registry: ProviderRegistry,
    redis: aioredis.Redis,
    route: FixedRoute,
    tracer: trace.Tracer | None = None,
) -> Handler:
    """The fixed route, then the real Dispatcher with health in Redis."""
    tracer = tracer or trace.get_tracer("test")
    dispatcher = Dispatcher(
        registry,
        CATALOG,
        "gpt-4o",
        tracer,
        health=dispatch_health(settings, redis),
        provider_timeout_s=settings.provider_timeout_s,
    )
    return compose([route], dispatcher, tracer)


@pytest.fixture
async def a_then_b(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> AsyncIterator[Handler]:
    """The pipeline routing to a, with b as its fallback (the registry closed afterwards)."""
    settings = settings_for(["a", "b"])
    registry = registry_of(settings, sims)
    route = FixedRoute("a", (Fallback(model=MODEL, provider="b"),))
    yield pipeline(settings, registry, redis_client, route)
    await registry.close()


async def answer(handler: Handler, request: LlmRequest) -> LlmResult:
    """The handler's result, or the error result the router service would publish."""
    try:
        return await handler(RequestContext(request=request))
    except RouterError as exc:
        return LlmResult(
            request_id=request.id,
            tenant=request.tenant,
            agent=request.agent,
            status=Status.ERROR,
            error_code=exc.code,
            reason=exc.reason,
        )


async def state_of(redis: aioredis.Redis, provider: str) -> BreakerState | None:
    """The circuit state of provider/MODEL, or None before any call."""
    for health in await health_snapshot(redis):
        if (health.provider, health.model) == (provider, MODEL):
            return health.state
    return None


async def test_a_dead_provider_is_bypassed_and_its_circuit_opens_then_closes(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, a_then_b: Handler
) -> None:
    handler = a_then_b
    await sims["a"].set_faults(Faults(server_error=1.0))
    results = [await answer(handler, make_request()) for _ in range(12)]
    assert all(r.status is Status.OK for r in results), [r.reason for r in results]
    assert {r.provider for r in results} == {"b"}
    assert "fallback to b/gpt-4o-mini" in results[0].reason
    assert "HTTP 500" in results[0].reason
    assert await state_of(redis_client, "a") is BreakerState.OPEN
    # Open: a is no longer called; 3 failures opened it (one retry each counted).
    calls_to_a = (await sims["a"].stats()).requests
    assert calls_to_a <= 4
    assert "circuit open" in results[-1].reason
    more = await asyncio.gather(*(answer(handler, make_request()) for _ in range(8)))
    assert all(r.ok and r.provider == "b" for r in more)
    assert (await sims["a"].stats()).requests == calls_to_a

    await sims["a"].set_faults(Faults())  # a recovers

    async def served_by_a() -> bool:
        await asyncio.sleep(0.05)
        return (await answer(handler, make_request())).provider == "a"

    await eventually(served_by_a, timeout_s=5)  # after the cool-down, a probe closes it
    assert await state_of(redis_client, "a") is BreakerState.CLOSED
    back = await asyncio.gather(*(answer(handler, make_request()) for _ in range(5)))
    assert all(r.ok and r.provider == "a" and "fallback" not in r.reason for r in back)


async def test_a_failed_probe_opens_the_circuit_again(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, a_then_b: Handler
) -> None:
    handler = a_then_b
    await sims["a"].set_faults(Faults(server_error=1.0))
    for _ in range(3):
        assert (await answer(handler, make_request())).ok
    assert await state_of(redis_client, "a") is BreakerState.OPEN
    before = (await sims["a"].stats()).requests
    await asyncio.sleep(QUICK_HEALTH.breaker_cooldown_s + 0.1)  # cool-down over; a still fails
    assert (await answer(handler, make_request())).provider == "b"
    assert (await sims["a"].stats()).requests == before + 1  # one probe, no retry
    assert await state_of(redis_client, "a") is BreakerState.OPEN


async def test_every_circuit_open_fails_fast_with_a_reason(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> None:
    health = QUICK_HEALTH.model_copy(update={"breaker_cooldown_s": 30.0})
    settings = settings_for(["a"], health)
    registry = registry_of(settings, {"a": sims["a"]})
    handler = pipeline(settings, registry, redis_client, FixedRoute("a"))
    await sims["a"].set_faults(Faults(server_error=1.0))
    try:
        first = await answer(handler, make_request())
        assert first.error_code is ErrorCode.PROVIDER_ERROR and "HTTP 500" in first.reason
        await answer(handler, make_request())
        calls = (await sims["a"].stats()).requests
        started = time.monotonic()
        fast = await answer(handler, make_request())
        # Fast: a is not called, and nothing waits (far less than the 30 s cool-down; the
        # bound leaves room for a stalled test process).
        assert (await sims["a"].stats()).requests == calls
        assert time.monotonic() - started < 5.0
        assert fast.error_code is ErrorCode.PROVIDER_ERROR
        assert "a/gpt-4o-mini: circuit open" in fast.reason
    finally:
        await registry.close()


async def test_a_fallback_dearer_than_the_reservation_is_skipped(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> None:
    settings = settings_for(["a", "b"])
    registry = registry_of(settings, sims)
    fallbacks = (
        Fallback(model="gpt-4o", provider="b"),
        Fallback(model="gpt-4.1-nano", provider="b"),
    )
    handler = pipeline(settings, registry, redis_client, FixedRoute("a", fallbacks))
    await sims["a"].set_faults(Faults(server_error=1.0))
    try:
        result = await answer(handler, make_request())
        assert result.ok and result.model == "gpt-4.1-nano" and result.provider == "b"
        assert "b/gpt-4o: could cost more than the budget reserved" in result.reason
        assert (await sims["b"].stats()).by_model["gpt-4o"] == 0
    finally:
        await registry.close()


async def test_a_429_storm_slows_requests_down_but_loses_none(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> None:
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    settings = settings_for(["a"])
    registry = registry_of(settings, {"a": sims["a"]})
    handler = pipeline(settings, registry, redis_client, FixedRoute("a"), tracing.get_tracer("t"))
    try:
        calm = await asyncio.gather(*(answer(handler, make_request()) for _ in range(20)))
        assert all(r.ok for r in calm)
        # retry-after 100 ms: well above what an attempt itself takes here (tens of ms with
        # 20 at once), so a 429 that held no one would show.
        await sims["a"].set_faults(Faults(rate_limit=0.6, retry_after_s=1, retry_after_ms=100))
        exporter.clear()
        stormy = await asyncio.gather(*(answer(handler, make_request()) for _ in range(20)))
        assert all(r.ok for r in stormy), [r.reason for r in stormy if not r.ok]
        limited = (await sims["a"].stats()).faults["rate_limit"]
        assert limited >= 10  # most calls met at least one 429
        # Each 429 pauses the provider 100 ms before its request tries again: a request that
        # met k of them took at least k * 100 ms. Both come from the request's spans (its
        # root span's duration, its last attempt number), so the bound follows the 429s
        # that happened, not a calm run's wall time (which a stalled test process inflates).
        took: dict[int, float] = {}
        attempts: dict[int, int] = {}
        for span in exporter.get_finished_spans():
            request = span.context.trace_id
            if span.parent is None and span.start_time and span.end_time:
                took[request] = (span.end_time - span.start_time) / 1e9
            attempt = (span.attributes or {}).get("flipsync.attempt")
            if isinstance(attempt, int):
                attempts[request] = max(attempts.get(request, 0), attempt)
        assert len(took) == len(attempts) == 20
        assert sum(n - 1 for n in attempts.values()) == limited  # no other failure retried
        quick = {r: (took[r], n - 1) for r, n in attempts.items() if took[r] < 0.098 * (n - 1)}
        assert not quick, quick  # (seconds, 429s) of requests that did not wait
        [health] = await health_snapshot(redis_client)
        assert health.rate_limited == limited and health.state is BreakerState.CLOSED
        assert health.failures == 0 and health.ok == 40
    finally:
        await registry.close()
        tracing.shutdown()


async def test_a_rate_limit_moves_the_request_to_a_fallback(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, a_then_b: Handler
) -> None:
    handler = a_then_b
    await sims["a"].set_faults(Faults(rate_limit=1.0, retry_after_s=5))
    started = time.monotonic()
    result = await answer(handler, make_request())
    assert result.ok and result.provider == "b"
    assert time.monotonic() - started < 3.0  # did not sit out the 5 s retry-after
    assert "rate limited" in result.reason


async def test_a_deadline_during_a_hanging_call_is_a_timeout_result(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, a_then_b: Handler
) -> None:
    handler = a_then_b
    await sims["a"].set_faults(Faults(timeout=1.0, timeout_s=30))
    request = make_request()
    # 1.5 s: the call is under way before the deadline even if the test process stalls; the
    # answer comes at the deadline, long before the 30 s hang ends.
    request.deadline_ms = int(time.time() * 1000) + 1500
    started = time.monotonic()
    result = await answer(handler, request)
    assert time.monotonic() - started < 5.0
    assert result.error_code is ErrorCode.DEADLINE_EXCEEDED
    assert "a/gpt-4o-mini" in result.reason and "deadline" in result.reason
    # The deadline cut the call short: that says nothing against a's health.
    assert all(h.failures == 0 for h in await health_snapshot(redis_client))


async def test_a_deadline_while_rate_limited_is_a_timeout_result(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> None:
    settings = settings_for(["a"])
    registry = registry_of(settings, {"a": sims["a"]})
    handler = pipeline(settings, registry, redis_client, FixedRoute("a"))
    await sims["a"].set_faults(Faults(rate_limit=1.0, retry_after_s=5))
    try:
        request = make_request()
        request.deadline_ms = int(time.time() * 1000) + 1500  # far less than the 5 s wait
        with pytest.raises(DeadlineExceededError, match="would pass the deadline"):
            await handler(RequestContext(request=request))
    finally:
        await registry.close()


async def test_the_requester_gets_a_timeout_result_through_the_bus() -> None:
    faults = Faults(timeout=1.0, timeout_s=30)
    stack = await start_stack(
        Settings(sim_latency_ms=0, provider_max_retries=0),
        sim_config=SimConfig(faults=faults),
    )
    try:
        request = make_request(tenant=f"t{uuid.uuid4().hex[:8]}")
        request.deadline_ms = int(time.time() * 1000) + 1500
        started = time.monotonic()
        result = await LlmClient(stack.broker).request(request, timeout_s=10)
        assert time.monotonic() - started < 5  # the deadline's answer, not the client's 10 s
        assert result.status is Status.ERROR
        assert result.error_code is ErrorCode.DEADLINE_EXCEEDED, result.reason
        assert "deadline" in result.reason
    finally:
        await stack.stop()


async def test_a_request_waits_for_rate_limit_capacity_and_is_not_dropped(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> None:
    providers = [{"name": "a", "kind": "simulated", "requests_per_min": 600}]
    settings = Settings(providers=providers, health=QUICK_HEALTH)
    registry = registry_of(settings, {"a": sims["a"]})
    handler = pipeline(settings, registry, redis_client, FixedRoute("a"))
    limiter = RateLimiter(redis_client)
    limits = registry.get("a").config.limits
    try:
        while True:  # drain the shared bucket
            # Timed from before the take that finds it empty: the bucket refills from then
            # on, stalled test process or not.
            started = time.monotonic()
            if await limiter.try_take("a", MODEL, limits, 0):
                break
        results = await asyncio.gather(*(answer(handler, make_request()) for _ in range(5)))
        assert all(r.ok for r in results)
        assert time.monotonic() - started >= 0.4  # 10 a second, once the bucket is empty
        assert (await sims["a"].stats()).calls == 5
    finally:
        await registry.close()


async def test_a_client_timeout_is_not_retried_and_may_have_been_billed(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # 1.5 s: the call reaches a (in this process) before the timeout, however stalled.
    settings = settings_for(["a", "b"]).model_copy(update={"provider_timeout_s": 1.5})
    assert settings.provider_max_retries == 1  # a 500 would be retried once
    registry = registry_of(settings, sims)
    route = FixedRoute("a", (Fallback(model=MODEL, provider="b"),))
    handler = pipeline(settings, registry, redis_client, route, provider.get_tracer("test"))
    await sims["a"].set_faults(Faults(timeout=1.0, timeout_s=30))
    try:
        result = await answer(handler, make_request())
        assert result.ok and result.provider == "b"
        # a may have generated (and billed) the answer it never sent: asked once, not twice.
        assert (await sims["a"].stats()).requests == 1
        assert MAY_HAVE_BEEN_BILLED in result.reason and "timed out" in result.reason
        billed = [
            s for s in exporter.get_finished_spans() if (s.attributes or {}).get(BILLED_ATTRIBUTE)
        ]
        assert billed
    finally:
        await registry.close()
        provider.shutdown()
