"""Verdicts on served semantic hits in the running stack: an agent's validators rejecting a
served answer, or negative explicit feedback on it, stop that entry serving that question;
a shadow check re-asks a hit off the response path and books its cost to the cache."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import ChatMessage, Lever, LlmRequest, LlmResult, QualitySignal
from bus.settings_sections import SemanticSettings
from flipsync.stack import Stack
from router.routing.feedback import publish_feedback
from router.semantic import keys, records
from router.semantic.entry_store import EntryStore
from router.semantic.shadow import chosen
from tests.chaos_scenario import ledger_events
from tests.helpers import eventually, router_stack

SHIPPING = "How do I change my shipping address?"
SHIPPING_PARAPHRASE = "How can I update my shipping address?"  # cosine 0.91


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Router (with its quality consumer and semantic cache), ledger, simulated provider;
    no shadow checks, which would take a hit's verdict before the signals below."""
    async with router_stack(pack_max_items=1, semantic=SemanticSettings(shadow_share=0)) as running:
        yield running


def ask(tenant: str, text: str) -> LlmRequest:
    """A seller question of a tenant."""
    return LlmRequest(
        id=uuid.uuid4().hex,
        tenant=tenant,
        agent="listing",
        task_type="seller_chat",
        messages=[ChatMessage(role="user", content=text)],
        max_output_tokens=60,
    )


async def learned(redis: aioredis.Redis, tenant: str) -> None:
    """Right observations, as other replicas' misses would share, so that any score may
    serve: what stops a hit below is the verdict alone."""
    store = EntryStore(redis, max_entries=100, log_max_entries=1000, longest_ttl_s=3600)
    for n in range(300):  # at both ends of the scores: every lookup is between them
        observation = records.Observation(
            tenant=tenant, task_type="seller_chat", entry_id=f"seen-{n}", score=(-1.0, 1.0)[n % 2],
            correct=True, source="test",
        )  # fmt: skip
        await store.observe(observation)


async def verdicts(redis: aioredis.Redis, tenant: str, source: str) -> list[bool]:
    """Whether each observation of the tenant from source found the hit right."""
    raw = await redis.xrange(keys.OBSERVATIONS) or []
    decoded = [
        records.decode_observation(body)
        for _id, fields in raw
        if isinstance(body := (fields or {}).get(b"e"), bytes)
    ]
    return [
        o.correct for o in decoded if o is not None and o.tenant == tenant and o.source == source
    ]


async def wrong_verdicts(redis: aioredis.Redis, tenant: str, source: str) -> int:
    """Observations of the tenant saying a served hit was wrong, from source."""
    return (await verdicts(redis, tenant, source)).count(False)


async def served_then_rejected(stack: Stack, tenant: str) -> LlmResult:
    """Store an answer, get a paraphrase served from it; returns the served hit."""
    await learned(stack.redis, tenant)
    client = LlmClient(stack.broker)
    first = await client.request(ask(tenant, SHIPPING), timeout_s=30)
    assert first.ok and first.lever is Lever.ROUTED, first.reason
    hit = await client.request(ask(tenant, SHIPPING_PARAPHRASE), timeout_s=30)
    assert hit.lever is Lever.SEMANTIC_CACHE, hit.reason
    assert hit.content == first.content
    assert await stack.redis.exists(keys.served(hit.request_id)) == 1  # awaits its verdict
    return hit


def verdict(hit: LlmResult, *, valid: bool) -> QualitySignal:
    """A quality signal about a served answer."""
    return QualitySignal(
        request_id=hit.request_id, tenant=hit.tenant, agent=hit.agent,
        task_type="seller_chat", model=hit.model, lever=hit.lever, valid=valid,
        problems=[] if valid else ["answers another question"],
    )  # fmt: skip


async def asked_again(stack: Stack, tenant: str) -> LlmResult:
    """The paraphrase asked once more."""
    again = await LlmClient(stack.broker).request(ask(tenant, SHIPPING_PARAPHRASE), timeout_s=30)
    assert again.ok, again.reason
    return again


async def test_a_hit_its_validators_reject_stops_serving(stack: Stack) -> None:
    tenant = f"v{uuid.uuid4().hex[:8]}"
    hit = await served_then_rejected(stack, tenant)
    js = stack.broker.connection.jetstream()
    await js.publish(
        subjects.quality(tenant), encode(verdict(hit, valid=False)), stream=subjects.STREAM_WORKFLOW
    )

    async def recorded() -> bool:
        return await wrong_verdicts(stack.redis, tenant, "validator") == 1

    await eventually(recorded, timeout_s=20)
    assert await stack.redis.exists(keys.served(hit.request_id)) == 0  # verified once
    again = await asked_again(stack, tenant)
    assert again.lever is Lever.ROUTED, again.reason  # the entry no longer serves it


async def test_negative_feedback_stops_serving_and_a_passing_validator_does_not(
    stack: Stack,
) -> None:
    tenant = f"f{uuid.uuid4().hex[:8]}"
    hit = await served_then_rejected(stack, tenant)
    js = stack.broker.connection.jetstream()
    # A passing validator is no verdict: the hit still awaits one, and still serves.
    await js.publish(
        subjects.quality(tenant), encode(verdict(hit, valid=True)), stream=subjects.STREAM_WORKFLOW
    )
    await publish_feedback(js, verdict(hit, valid=False))

    async def recorded() -> bool:
        return await wrong_verdicts(stack.redis, tenant, "feedback") == 1

    await eventually(recorded, timeout_s=20)
    assert await wrong_verdicts(stack.redis, tenant, "validator") == 0
    again = await asked_again(stack, tenant)
    assert again.lever is Lever.ROUTED, again.reason


async def test_a_shadow_check_reasks_off_the_response_path_and_books_its_cost() -> None:
    """With every hit checked: one extra provider call, one verdict, one ledger event with
    overhead_of semantic_cache and no baseline; the served answer is the cached one."""
    async with router_stack(pack_max_items=1, semantic=SemanticSettings(shadow_share=1.0)) as stack:
        assert stack.sim is not None
        tenant = f"s{uuid.uuid4().hex[:8]}"
        await learned(stack.redis, tenant)
        client = LlmClient(stack.broker)
        first = await client.request(ask(tenant, SHIPPING), timeout_s=30)
        assert first.ok and first.lever is Lever.ROUTED, first.reason
        calls = (await stack.sim.stats()).calls
        hit = await client.request(ask(tenant, SHIPPING_PARAPHRASE), timeout_s=30)
        assert hit.lever is Lever.SEMANTIC_CACHE, hit.reason
        assert hit.content == first.content and hit.cost_micro_usd == 0

        async def booked() -> bool:
            return any(e.overhead_of for e in await ledger_events(stack.broker, tenant))

        await eventually(booked, timeout_s=30)
        events = await ledger_events(stack.broker, tenant)
        shadow = [e for e in events if e.overhead_of]
        assert len(shadow) == 1 and len(events) == 3  # the paid answer, the hit, the check
        (event,) = shadow
        assert event.overhead_of == "semantic_cache"
        assert event.request_id == f"{hit.request_id}-shadow"
        assert event.lever is Lever.ROUTED and event.paid_call
        assert event.cost_micro_usd > 0 and event.baseline_micro_usd == 0
        assert not event.savings_by_lever
        assert (await stack.sim.stats()).calls == calls + 1
        hit_event = next(e for e in events if e.request_id == hit.request_id)
        assert hit_event.lever is Lever.SEMANTIC_CACHE and hit_event.cost_micro_usd == 0

        async def verified() -> bool:
            return len(await verdicts(stack.redis, tenant, "shadow")) == 1

        await eventually(verified, timeout_s=30)
        assert await stack.redis.exists(keys.served(hit.request_id)) == 0


def test_the_share_of_hits_checked_is_the_share_set() -> None:
    ids = [f"req-{n}" for n in range(10_000)]
    assert not any(chosen(i, 0.0) for i in ids)
    assert all(chosen(i, 1.0) for i in ids)
    assert 400 <= sum(chosen(i, 0.05) for i in ids) <= 600
    assert [chosen(i, 0.05) for i in ids[:50]] == [chosen(i, 0.05) for i in ids[:50]]
