"""Dedup (singleflight) across router replicas, and tenant isolation of the caches.

The in-process tests run two DedupStage instances (two "replicas") on the session's real
nats-server and redis-server with a stand-in for the rest of the pipeline. The slow ones run
three router replicas as separate processes against a simulated provider in this process,
whose latency keeps the calls in flight long enough to overlap.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from opentelemetry import trace

from bus.broker import make_broker
from bus.embedded import EmbeddedNats
from bus.messages import (
    CachePolicy,
    ErrorCode,
    FlightOutcome,
    Lever,
    LlmRequest,
    LlmResult,
    Status,
    Usage,
)
from cost_ledger.catalog import PriceCatalog
from router import keys
from router.context import RequestContext
from router.errors import DeadlineExceededError, ProviderError
from router.levers.fingerprint import fingerprinter
from router.pipeline import Handler, compose
from router.stages.dedup import DedupStage
from router.stages.flight import FlightChannel, FlightStore
from tests.helpers import eventually, make_request

KEY = fingerprinter(PriceCatalog.load())


@dataclass
class Upstream:
    """A stand-in for route..dispatch: counts calls, takes its time, answers or fails."""

    delay_s: float = 0.3
    calls: int = 0
    fail: Exception | None = None
    started: list[float] = field(default_factory=list)

    async def __call__(self, ctx: RequestContext) -> LlmResult:
        self.calls += 1
        self.started.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        request = ctx.request
        return LlmResult(
            request_id=request.id,
            tenant=request.tenant,
            agent=request.agent,
            status=Status.OK,
            content=f"answer {self.calls}",
            model="gpt-4o-mini",
            provider="stand-in",
            usage=Usage(input_tokens=100, output_tokens=20),
            cost_micro_usd=27,
            baseline_micro_usd=450,
            lever=Lever.ROUTED,
        )


@pytest.fixture
async def broker(nats_server: EmbeddedNats) -> AsyncIterator[NatsBroker]:
    """A connected broker on the session's nats-server."""
    running = make_broker(nats_server.url)
    await running.connect()
    yield running
    await running.stop()


def replica(redis: aioredis.Redis, broker: NatsBroker, name: str, ttl_s: float = 5.0) -> DedupStage:
    """One replica's dedup stage."""
    store = FlightStore(redis, claim_ttl_s=ttl_s, result_ttl_s=30)
    return DedupStage(
        key=KEY, store=store, channel=FlightChannel(broker), claim_ttl_s=ttl_s, replica=name
    )


def pipeline(stage: DedupStage, upstream: Upstream) -> Handler:
    """The stage in front of the stand-in upstream."""
    return compose([stage], upstream, trace.get_tracer("test"))


def same_requests(n: int, tenant: str, **fields: object) -> list[LlmRequest]:
    """n requests with one fingerprint and their own ids."""
    base = make_request(tenant=tenant, text=f"Describe product {uuid.uuid4().hex}.")
    return [msgspec.structs.replace(base, id=uuid.uuid4().hex, **fields) for _ in range(n)]


async def test_identical_requests_on_two_replicas_make_one_call(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    upstream = Upstream()
    replicas = [pipeline(replica(redis_client, broker, f"r{i}"), upstream) for i in range(2)]
    requests = same_requests(20, "t1")
    results = await asyncio.gather(
        *(replicas[i % 2](RequestContext(request=r)) for i, r in enumerate(requests))
    )
    assert upstream.calls == 1
    assert [r.request_id for r in results] == [r.id for r in requests]
    assert {r.content for r in results} == {"answer 1"}
    leaders = [r for r in results if r.lever is Lever.ROUTED]
    waiters = [r for r in results if r.lever is Lever.DEDUP]
    assert len(leaders) == 1 and len(waiters) == 19
    assert all(w.cost_micro_usd == 0 and w.baseline_micro_usd == 450 for w in waiters)
    assert all(w.usage == Usage() for w in waiters)


async def test_different_tenants_never_coalesce(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    upstream = Upstream()
    handler = pipeline(replica(redis_client, broker, "r0"), upstream)
    base = same_requests(1, "ta")[0]
    other = msgspec.structs.replace(base, id=uuid.uuid4().hex, tenant="tb")
    first, second = await asyncio.gather(
        handler(RequestContext(request=base)), handler(RequestContext(request=other))
    )
    assert upstream.calls == 2
    assert first.lever is second.lever is Lever.ROUTED


async def test_bypass_is_never_coalesced(redis_client: aioredis.Redis, broker: NatsBroker) -> None:
    upstream = Upstream()
    handler = pipeline(replica(redis_client, broker, "r0"), upstream)
    requests = same_requests(3, "t1", cache_policy=CachePolicy.BYPASS)
    await asyncio.gather(*(handler(RequestContext(request=r)) for r in requests))
    assert upstream.calls == 3


async def test_waiters_take_over_from_a_leader_that_died(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    requests = same_requests(4, "t1")
    fingerprint = KEY(requests[0])
    # A leader on a replica that is gone: its claim is there, nobody refreshes it. Its TTL
    # is long enough (1.5 s) that a stalled event loop still finds it held at first.
    claim = keys.flight_claim("t1", fingerprint)
    dead_claim_s = 1.5
    set_at = asyncio.get_running_loop().time()
    await redis_client.set(claim, "dead-request:gone-host:1", px=int(dead_claim_s * 1000))
    upstream = Upstream(delay_s=0.05)
    handler = pipeline(replica(redis_client, broker, "r1", ttl_s=1.5), upstream)
    results = await asyncio.gather(*(handler(RequestContext(request=r)) for r in requests))
    assert upstream.calls == 1
    assert sorted(r.lever for r in results) == sorted([Lever.ROUTED] + [Lever.DEDUP] * 3)
    # The call was made by a waiter taking over once the dead claim lapsed, not before.
    assert upstream.started[0] - set_at >= dead_claim_s - 0.05


async def test_a_cancelled_leader_releases_its_claim_at_once(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    slow, fast = Upstream(delay_s=30), Upstream(delay_s=0.05)
    # A long claim TTL: only the release, not the lapse, can let the waiter lead in time.
    first = pipeline(replica(redis_client, broker, "r0", ttl_s=30), slow)
    second = pipeline(replica(redis_client, broker, "r1", ttl_s=30), fast)
    leader_request, waiter_request = same_requests(2, "t1")
    leader = asyncio.ensure_future(first(RequestContext(request=leader_request)))
    await eventually(lambda: _async_true(slow.calls == 1))
    waiter = asyncio.ensure_future(second(RequestContext(request=waiter_request)))
    # The waiter found the claim held (it counted itself a waiter): now cancel the leader.
    waiters = keys.flight_waiters("t1", KEY(waiter_request))
    await eventually(lambda: _has_key(redis_client, waiters))
    leader.cancel()
    result = await asyncio.wait_for(waiter, 5)
    assert result.lever is Lever.ROUTED and fast.calls == 1


async def test_provider_errors_are_shared_but_not_deadlines(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    failing = Upstream(delay_s=0.2, fail=ProviderError("sim", "gpt-4o-mini", "HTTP 500"))
    handler = pipeline(replica(redis_client, broker, "r0"), failing)
    requests = same_requests(3, "t1")
    outcomes = await asyncio.gather(
        *(handler(RequestContext(request=r)) for r in requests), return_exceptions=True
    )
    assert failing.calls == 1
    assert all(isinstance(o, LlmResult) for o in outcomes)
    errors = [o for o in outcomes if isinstance(o, LlmResult)]
    assert [o.request_id for o in errors] == [r.id for r in requests]
    assert all(o.error_code is ErrorCode.PROVIDER_ERROR and "HTTP 500" in o.reason for o in errors)
    assert sum("coalesced with request" in o.reason for o in errors) == 2

    late = Upstream(delay_s=0.2, fail=DeadlineExceededError("the deadline passed"))
    handler = pipeline(replica(redis_client, broker, "r0"), late)
    outcomes = await asyncio.gather(
        *(handler(RequestContext(request=r)) for r in same_requests(2, "t1")),
        return_exceptions=True,
    )
    assert late.calls == 2  # a deadline is the leader's own: the waiter asked for itself


async def test_a_redelivered_leader_gets_the_call_it_paid_for(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    upstream = Upstream(delay_s=0.01)
    handler = pipeline(replica(redis_client, broker, "r0"), upstream)
    request = same_requests(1, "t1")[0]
    first = await handler(RequestContext(request=request))
    again = await handler(RequestContext(request=request, delivery=2))  # a redelivery
    assert upstream.calls == 1
    assert again == first and again.lever is Lever.ROUTED and again.cost_micro_usd == 27


async def test_a_near_duplicate_hook_answers_first(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    class Near:
        async def get_near_duplicate(self, request: LlmRequest) -> LlmResult | None:
            return LlmResult(
                request_id=request.id,
                tenant=request.tenant,
                agent=request.agent,
                status=Status.OK,
                content="near",
                lever=Lever.DEDUP,
            )

    upstream = Upstream()
    store = FlightStore(redis_client, claim_ttl_s=5, result_ttl_s=30)
    stage = DedupStage(
        key=KEY, store=store, channel=FlightChannel(broker), claim_ttl_s=5, near_duplicates=Near()
    )
    handler = pipeline(stage, upstream)
    request = same_requests(1, "t1")[0]
    assert (await handler(RequestContext(request=request))).content == "near"
    refresh = msgspec.structs.replace(request, cache_policy=CachePolicy.REFRESH)
    assert (await handler(RequestContext(request=refresh))).content == "answer 1"
    assert upstream.calls == 1


async def _async_true(value: bool) -> bool:
    return value


async def _has_key(redis: aioredis.Redis, key: str) -> bool:
    return bool(await redis.exists(key))


async def test_a_leader_tells_waiters_only_when_a_request_waited(
    redis_client: aioredis.Redis,
) -> None:
    """The notice is a publish on every led call's way: sent only when some request found
    the claim held (counted in the claim script), whatever replica it was on."""
    store = FlightStore(redis_client, claim_ttl_s=5, result_ttl_s=5)
    leader, waiter = "lead-1:host:1", "wait-1:host:2"
    assert await store.claim("t1", "fp-alone", leader) == leader
    assert not await store.finish("t1", "fp-alone", leader, None)  # nobody to tell
    assert await store.claim("t1", "fp-shared", leader) == leader
    assert await store.claim("t1", "fp-shared", waiter) == leader  # it waits on the leader
    assert await store.finish("t1", "fp-shared", leader, None)
    assert await store.claim("t1", "fp-shared", waiter) == waiter  # the next call leads
    assert not await store.finish("t1", "fp-shared", waiter, None)  # the count went


async def test_a_live_leader_keeps_its_claim_past_the_claim_ttl(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """The claim lapses only when its leader dies: a call twice as long as the claim's TTL
    keeps it (refreshed by the process heartbeat), so the other replica's twin waits. The
    TTL (1.5 s, a refresh every 0.5 s) outlasts an event-loop stall of a loaded machine;
    without the refresh the twin, polling every 0.75 s, would find it lapsed and call."""
    upstream = Upstream(delay_s=3.0)
    first = pipeline(replica(redis_client, broker, "r0", ttl_s=1.5), upstream)
    second = pipeline(replica(redis_client, broker, "r1", ttl_s=1.5), upstream)
    leader_request, waiter_request = same_requests(2, "t1")
    leader = asyncio.ensure_future(first(RequestContext(request=leader_request)))
    await eventually(lambda: _async_true(upstream.calls == 1))
    waiter = await second(RequestContext(request=waiter_request))
    assert (await leader).lever is Lever.ROUTED
    assert waiter.lever is Lever.DEDUP and upstream.calls == 1


class _SlowSettle:
    """Stands in for the budget stage: its settle left for after the result, and slow."""

    name = "budget"

    def __init__(self) -> None:
        self.settling = asyncio.Event()

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        result = await call_next(ctx)

        async def settle() -> None:
            self.settling.set()
            await asyncio.sleep(5)  # a slow Redis round trip

        await ctx.later(settle)
        return result


async def test_a_stop_during_the_bookkeeping_still_finishes_the_claim(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """Found by review: the service runs the stages' bookkeeping after the result; a stop
    cancelling it in the first item (a slow settle) skipped dedup's finish, and the claim,
    kept alive, made identical requests on other replicas wait until their deadline."""
    slow = _SlowSettle()
    handler = compose(
        [replica(redis_client, broker, "ra", ttl_s=1.0), slow],
        Upstream(delay_s=0.05),
        trace.get_tracer("t"),
    )
    first, second = same_requests(2, "tcancel")
    ctx = RequestContext(request=first, defer_after=True)

    async def answer_once() -> None:  # as RouterService._answer_once runs it
        try:
            await handler(ctx)
        finally:
            await ctx.run_after()

    task = asyncio.create_task(answer_once())
    await slow.settling.wait()
    task.cancel()  # bus.pull_loop's stop cancels a handler still running after its grace
    assert (await asyncio.gather(task, return_exceptions=True))[0].__class__ is (
        asyncio.CancelledError
    )
    assert not await redis_client.exists(keys.flight_claim(first.tenant, KEY(first)))
    other = Upstream(delay_s=0.05)
    later = compose([replica(redis_client, broker, "rb", ttl_s=1.0)], other, trace.get_tracer("t"))
    deadline = msgspec.structs.replace(second, deadline_ms=int(time.time() * 1000) + 3000)
    assert (await later(RequestContext(request=deadline))).ok  # the outcome, or its own call


class _RacingStore(FlightStore):
    """A store whose renewal finds the claim gone (the liveness thread's reply 0) either
    while the call runs (a lapse) or while its finish runs: then the reply lands between the
    finish's drop and the leader's forget, as it did a few times in a thousand under load."""

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(redis, claim_ttl_s=5.0, result_ttl_s=30)
        self.on_lost: list[Callable[[], None]] = []
        self.during_finish = True

    def keep(self, tenant: str, fingerprint: str, token: str, on_lost: Callable[[], None]) -> int:
        self.on_lost.append(on_lost)
        return super().keep(tenant, fingerprint, token, on_lost)

    def renewal_finds_it_gone(self) -> None:
        for lost in self.on_lost:
            lost()

    async def finish(
        self, tenant: str, fingerprint: str, token: str, outcome: FlightOutcome | None
    ) -> bool:
        waited = await super().finish(tenant, fingerprint, token, outcome)
        if self.during_finish:
            self.renewal_finds_it_gone()
        return waited


@pytest.mark.parametrize("during_finish", [True, False])
async def test_a_lost_claim_is_reported_only_when_it_lapsed_before_the_finish(
    redis_client: aioredis.Redis,
    broker: NatsBroker,
    caplog: pytest.LogCaptureFixture,
    during_finish: bool,
) -> None:
    """Seen in bench.call_counts: "lost the claim of call ..." warnings for calls whose claim
    was never lost, only dropped by their own finish while a renewal was on its way."""
    store = _RacingStore(redis_client)
    store.during_finish = during_finish
    stage = DedupStage(key=KEY, store=store, channel=FlightChannel(broker), claim_ttl_s=5.0)

    async def upstream(ctx: RequestContext) -> LlmResult:
        if not during_finish:
            store.renewal_finds_it_gone()
        return await Upstream(delay_s=0.01)(ctx)

    (request,) = same_requests(1, "trace")
    handler = compose([stage], upstream, trace.get_tracer("t"))
    result = await handler(RequestContext(request=request))
    assert result.lever is Lever.ROUTED and store.on_lost
    assert ("lost the claim" in caplog.text) is not during_finish
