"""Learning from quality in the running stack: agents' signals and explicit feedback on the
quality subjects are folded into the shared counts once each, and change later routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from bus import subjects
from bus.codec import decode, encode
from bus.llm_client import LlmClient
from bus.messages import DeadLetter, Lever, LlmRequest, QualitySignal
from bus.settings import Settings
from bus.settings_sections import RoutingSettings
from flipsync.stack import Service, Stack, start_stack
from router.routing.feedback import publish_feedback
from router.routing.quality_store import quality_estimates
from tests.helpers import eventually, make_request

AGENT = "ebay_listing"


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Router (with its quality consumer), ledger and simulated provider; quality counts are
    re-read on every request. Given here, RoutingSettings replaces the environment's (the
    conftest's FLIPSYNC_ROUTING__EXPLORE_SHARE=0): exploration is turned off explicitly."""
    settings = Settings(
        sim_latency_ms=0,
        pack_max_items=1,
        routing=RoutingSettings(quality_refresh_s=0.0, shadow_share=0.0, explore_share=0.0),
    )
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
    running = await start_stack(settings, services)
    yield running
    await running.stop()


def request(tenant: str, task_type: str) -> LlmRequest:
    """A unique small structured request of a task type."""
    base = make_request(tenant=tenant, agent=AGENT, text=f"Title for mug {uuid.uuid4().hex}")
    return msgspec.structs.replace(base, task_type=task_type)


def signal(model: str, task_type: str, *, valid: bool, **fields: object) -> QualitySignal:
    """A quality signal about one answer."""
    values: dict[str, object] = {
        "request_id": uuid.uuid4().hex,
        "tenant": "t1",
        "agent": AGENT,
        "task_type": task_type,
        "model": model,
        "lever": Lever.ROUTED,
        "valid": valid,
    }
    values.update(fields)
    return msgspec.convert(values, QualitySignal)


async def publish(stack: Stack, subject: str, body: bytes) -> None:
    """Publish to the WORKFLOW stream, as agents and the feedback endpoint do."""
    js = stack.broker.connection.jetstream()
    await js.publish(subject, body, stream=subjects.STREAM_WORKFLOW)


async def observed(stack: Stack, model: str, task_type: str) -> float:
    """Signal weight recorded for a model on a task type."""
    estimate = (await quality_estimates(stack.redis)).get((model, task_type))
    return estimate.n if estimate is not None else 0.0


async def test_feedback_changes_a_later_routing_decision(stack: Stack) -> None:
    task = "text_generation"
    client = LlmClient(stack.broker)
    first = await client.request(request("fb", task), timeout_s=20)
    assert first.ok and first.model == "gpt-4o-mini", first.reason

    bad = signal(first.model, task, valid=False, request_id=first.request_id, tenant="fb")
    for _ in range(2):  # two people flag the answer: two feedback messages, 3 each
        await publish_feedback(stack.broker.connection.jetstream(), bad)

    async def folded() -> bool:  # 3, then 3 more on top of 3 discounted by 0.98
        return await observed(stack, "gpt-4o-mini", task) == pytest.approx(5.94)

    await eventually(folded)
    estimate = (await quality_estimates(stack.redis))[("gpt-4o-mini", task)]
    assert estimate.mean == pytest.approx(7.4 / 15.94)  # prior 0.74 x 10, then 5.94 bad

    later = await client.request(request("fb", task), timeout_s=20)
    assert later.ok and later.model != "gpt-4o-mini"
    assert "gpt-4o-mini" not in later.reason  # nor is it a rung of a cascade any more
    assert stack.catalog.get(later.model).quality >= 0.7


async def test_agent_signals_count_once_and_only_for_paid_answers(stack: Stack) -> None:
    task = "translation"
    counted = signal("gpt-4.1-nano", task, valid=False)
    await publish(stack, subjects.quality("t1"), encode(counted))
    await publish(stack, subjects.quality("t1"), encode(counted))  # a duplicate
    cached = signal("gpt-4.1-nano", task, valid=False, lever=Lever.EXACT_CACHE)
    await publish(stack, subjects.quality("t1"), encode(cached))  # a repeat of an answer
    sentinel = signal("gpt-4.1", task, valid=True)
    await publish(stack, subjects.quality("t1"), encode(sentinel))

    async def sentinel_folded() -> bool:
        return await observed(stack, "gpt-4.1", task) == 1

    await eventually(sentinel_folded)
    assert await observed(stack, "gpt-4.1-nano", task) == 1  # a validator signal weighs 1
    estimate = (await quality_estimates(stack.redis))[("gpt-4.1-nano", task)]
    assert estimate.mean == pytest.approx(6.5 / 11)


async def test_an_unreadable_quality_message_is_dead_lettered(stack: Stack) -> None:
    nc = stack.broker.connection
    letters = await nc.subscribe(subjects.dead_letter("quality"))
    await publish(stack, subjects.quality("t1"), b"{not a signal")
    letter = decode((await letters.next_msg(timeout=10)).data, DeadLetter)
    await letters.unsubscribe()
    assert letter.payload == b"{not a signal"
    assert letter.source_subject == subjects.quality("t1")
