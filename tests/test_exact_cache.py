"""The exact cache: fingerprints (pure), the Redis store (bound, TTL, tenants), the stage."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from bus.llm_client import LlmClient
from bus.messages import (
    CachePolicy,
    ChatMessage,
    ErrorCode,
    ImagePart,
    Lever,
    LlmRequest,
    LlmResult,
    OutputSchema,
    Part,
    Status,
    TextPart,
    Usage,
    error_result,
)
from cost_ledger.catalog import PriceCatalog
from flipsync.stack import Stack
from router import keys
from router.context import RequestContext
from router.levers.fingerprint import ANY_TIER, fingerprint, normalize_text, requested_tier
from router.pipeline import Handler, compose
from router.stages.cache import CacheStage, ExactCache
from tests.helpers import eventually, make_request, router_stack

CATALOG = PriceCatalog.load()


def request(**fields: object) -> LlmRequest:
    """A request with a fixed id-independent content, changed by fields."""
    base = make_request(tenant="t1", text="Write a title for a teal stoneware mug.")
    return msgspec.structs.replace(base, **fields)


def key(req: LlmRequest) -> str:
    """The fingerprint the stages use."""
    return fingerprint(req, requested_tier(req, CATALOG))


# --- fingerprints -----------------------------------------------------------------------


def test_normalization_removes_only_invisible_differences() -> None:
    assert normalize_text("  Teal   mug\t\r\nsecond  line \n\n\n\nend ") == (
        "Teal mug\nsecond line\n\nend"
    )
    assert normalize_text("Cafe\u0301") == normalize_text("Caf\u00e9")  # NFD vs NFC
    assert normalize_text("Teal mug") != normalize_text("teal mug")  # case is kept


def test_fingerprint_ignores_the_id_and_whitespace_but_not_what_changes_the_answer() -> None:
    base = request()
    assert key(base) == key(msgspec.structs.replace(base, id="other", workflow_id="w9"))
    spaced = [ChatMessage(role="user", content="  Write a title for a  teal stoneware mug. ")]
    assert key(base) == key(msgspec.structs.replace(base, messages=spaced))
    other_schema = OutputSchema(name="t", schema={"type": "object"})
    variants: list[dict[str, object]] = [
        {"tenant": "t2"},
        {"task_type": "market_data"},
        {"temperature": 0.7},
        {"max_output_tokens": 101},
        {"output_schema": None},
        {"output_schema": other_schema},
        {"quality_floor": 0.8},
        {"model_hint": "gpt-4o"},
        {"messages": [ChatMessage(role="user", content="Write a title for a TEAL stoneware mug.")]},
        {
            "messages": [
                ChatMessage(role="system", content="Write a title for a teal stoneware mug.")
            ]
        },
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
    ]
    keys_seen = {key(base)} | {key(request(**v)) for v in variants}
    assert len(keys_seen) == len(variants) + 1


def test_tier_comes_from_the_model_hint() -> None:
    assert requested_tier(request(), CATALOG) == ANY_TIER
    assert requested_tier(request(model_hint="gpt-4o"), CATALOG) == "premium"
    assert requested_tier(request(model_hint="no-such-model"), CATALOG) == ANY_TIER
    # Two premium models share a tier, so one's answer may serve the other's request.
    assert key(request(model_hint="gpt-4o")) == key(request(model_hint="gpt-4.1"))


def test_images_are_part_of_the_fingerprint() -> None:
    def with_image(url: str) -> LlmRequest:
        parts: list[Part] = [TextPart(text="Describe."), ImagePart(url=url)]
        return request(messages=[ChatMessage(role="user", content=parts)])

    assert key(with_image("data:image/png;base64,AAAA")) != key(
        with_image("data:image/png;base64,AAAB")
    )


# --- the Redis store --------------------------------------------------------------------


def paid(req: LlmRequest, content: str = "Teal Stoneware Mug") -> LlmResult:
    """A paid ok result of req."""
    return LlmResult(
        request_id=req.id,
        tenant=req.tenant,
        agent=req.agent,
        status=Status.OK,
        content=content,
        model="gpt-4o-mini",
        provider="simulated",
        usage=Usage(input_tokens=40, output_tokens=10),
        cost_micro_usd=12,
        baseline_micro_usd=200,
        lever=Lever.ROUTED,
    )


def store(redis: aioredis.Redis, max_entries: int = 100) -> ExactCache:
    """An exact cache with the seeds' TTLs."""
    ttl = {"market_data": 3600, "product_analysis": 86400, "never": 0}
    return ExactCache(redis, ttl_s=ttl, default_ttl_s=600, max_entries=max_entries)


async def test_an_entry_serves_its_tenant_only(redis_client: aioredis.Redis) -> None:
    cache = store(redis_client)
    req = request()
    answer = paid(req)
    await cache.put("t1", key(req), answer, req.task_type)
    assert await cache.get("t1", key(req)) == answer
    assert await cache.get("t2", key(req)) is None  # same fingerprint, another tenant
    assert await redis_client.exists(keys.cache_entry("t1", key(req)))
    assert not await redis_client.exists(keys.cache_entry("t2", key(req)))


async def test_ttl_follows_the_task_type(redis_client: aioredis.Redis) -> None:
    cache = store(redis_client)
    for task, expected_s in (("market_data", 3600), ("product_analysis", 86400), ("x", 600)):
        req = request(task_type=task)
        await cache.put("t1", key(req), paid(req), task)
        ttl_ms = await redis_client.pttl(keys.cache_entry("t1", key(req)))
        assert expected_s * 1000 - 5000 < ttl_ms <= expected_s * 1000
    never = request(task_type="never")
    assert await cache.put("t1", key(never), paid(never), "never") == 0
    assert await cache.get("t1", key(never)) is None


async def test_the_bound_evicts_the_least_recently_used(redis_client: aioredis.Redis) -> None:
    cache = store(redis_client, max_entries=3)
    reqs = [request(messages=[ChatMessage(role="user", content=f"q{i}")]) for i in range(5)]
    for req in reqs[:3]:
        await cache.put("t1", key(req), paid(req), req.task_type)
    assert await cache.get("t1", key(reqs[0])) is not None  # q0 is now the most recent
    evicted = 0
    for req in reqs[3:]:
        evicted += await cache.put("t1", key(req), paid(req), req.task_type)
    assert evicted == 2
    present = [await cache.get("t1", key(r)) is not None for r in reqs]
    assert present == [True, False, False, True, True]
    assert await redis_client.zcard(keys.cache_index("t1")) == 3
    # Another tenant's entries are bounded separately and untouched.
    other = request(tenant="t2")
    await cache.put("t2", key(other), paid(other), other.task_type)
    assert await redis_client.zcard(keys.cache_index("t1")) == 3


# --- the stage, with a stand-in for the rest of the pipeline ------------------------------


class Upstream:
    """Counts calls and answers with a paid result (or what it is told to)."""

    def __init__(self, answer: LlmResult | None = None) -> None:
        self.calls = 0
        self.answer = answer

    async def __call__(self, ctx: RequestContext) -> LlmResult:
        self.calls += 1
        if self.answer is not None:
            return msgspec.structs.replace(self.answer, request_id=ctx.request.id)
        return paid(ctx.request, content=f"answer {self.calls}")


def stage_pipeline(redis: aioredis.Redis, upstream: Upstream) -> Handler:
    """The cache stage in front of upstream."""
    stage = CacheStage(key=key, exact=store(redis))
    return compose([stage], upstream, trace.get_tracer("test"))


async def test_a_hit_is_free_and_keeps_the_baseline(redis_client: aioredis.Redis) -> None:
    upstream = Upstream()
    handler = stage_pipeline(redis_client, upstream)
    first_request, second_request = request(id="r1"), request(id="r2")
    first = await handler(RequestContext(request=first_request))
    second = await handler(RequestContext(request=second_request))
    assert upstream.calls == 1
    assert first.lever is Lever.ROUTED and second.lever is Lever.EXACT_CACHE
    assert second.request_id == "r2" and second.content == first.content
    assert second.cost_micro_usd == 0 and second.usage == Usage()
    assert second.baseline_micro_usd == first.baseline_micro_usd == 200
    assert "r1" in second.reason
    # A redelivery of the request that paid gets its own paid result back, not a free copy.
    again = await handler(RequestContext(request=first_request))
    assert again == first


async def test_cache_policies(redis_client: aioredis.Redis) -> None:
    upstream = Upstream()
    handler = stage_pipeline(redis_client, upstream)
    bypass = await handler(RequestContext(request=request(cache_policy=CachePolicy.BYPASS)))
    assert await redis_client.zcard(keys.cache_index("t1")) == 0  # BYPASS stored nothing
    await handler(RequestContext(request=request()))  # stores "answer 2"
    refreshed = await handler(RequestContext(request=request(cache_policy=CachePolicy.REFRESH)))
    assert refreshed.lever is Lever.ROUTED and refreshed.content == "answer 3"  # no read
    hit = await handler(RequestContext(request=request()))
    assert hit.lever is Lever.EXACT_CACHE and hit.content == "answer 3"  # REFRESH wrote
    assert upstream.calls == 3 and bypass.content == "answer 1"


async def test_only_ok_paid_answers_without_tool_calls_are_stored(
    redis_client: aioredis.Redis,
) -> None:
    failed = error_result("x", "t1", "listing", ErrorCode.SCHEMA_INVALID, "bad")
    with_tools = msgspec.structs.replace(
        paid(request()), tool_calls=[{"id": "c1", "type": "function"}]
    )
    for answer in (failed, with_tools):
        upstream = Upstream(answer)
        handler = stage_pipeline(redis_client, upstream)
        await handler(RequestContext(request=request()))
        await handler(RequestContext(request=request()))
        assert upstream.calls == 2


async def test_an_arm_without_the_cache_neither_reads_nor_fills_it(
    redis_client: aioredis.Redis,
) -> None:
    upstream = Upstream()
    handler = stage_pipeline(redis_client, upstream)
    tenant = f"arm{uuid.uuid4().hex[:6]}"
    off = frozenset({Lever.EXACT_CACHE, Lever.SEMANTIC_CACHE})
    for _ in range(2):  # the cache-less arm: every answer paid, none stored
        result = await handler(RequestContext(request=request(tenant=tenant), disabled_levers=off))
        assert result.lever is Lever.ROUTED
    assert await redis_client.zcard(keys.cache_index(tenant)) == 0
    first = await handler(RequestContext(request=request(tenant=tenant)))  # the other arm
    assert first.lever is Lever.ROUTED and first.content == "answer 3"  # no hit from arm one
    hit = await handler(RequestContext(request=request(tenant=tenant)))
    assert hit.lever is Lever.EXACT_CACHE and upstream.calls == 3


# --- through the embedded stack ---------------------------------------------------------


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the router and the ledger."""
    async with router_stack() as running:
        yield running


async def test_the_second_identical_request_is_served_from_the_cache(stack: Stack) -> None:
    assert stack.sim is not None
    tenant = f"c{uuid.uuid4().hex[:8]}"
    client = LlmClient(stack.broker)
    calls = (await stack.sim.stats()).calls
    first = await client.request(make_request(tenant=tenant), timeout_s=10)
    second = await client.request(make_request(tenant=tenant), timeout_s=10)
    other = await client.request(make_request(tenant=f"o{tenant}"), timeout_s=10)
    assert (await stack.sim.stats()).calls == calls + 2  # tenant's first, and the other's
    assert second.lever is Lever.EXACT_CACHE and second.parsed == first.parsed
    assert other.lever is not Lever.EXACT_CACHE

    async def ledgered() -> bool:
        return (await stack.aggregates.totals(tenant)).calls == 2

    await eventually(ledgered)
    totals = await stack.aggregates.totals(tenant)
    assert totals.paid_calls == 1
    assert totals.spend_micro_usd == first.cost_micro_usd
    assert totals.baseline_micro_usd == 2 * first.baseline_micro_usd
