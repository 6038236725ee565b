"""The pattern responder: trivial turns answered from templates, everything else to the model."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from opentelemetry import trace

from bus.llm_client import LlmClient
from bus.messages import (
    CachePolicy,
    ChatMessage,
    ImagePart,
    Lever,
    LlmRequest,
    LlmResult,
    Status,
    TextPart,
)
from cost_ledger.catalog import PriceCatalog
from cost_ledger.keys import Dimension
from flipsync.stack import Stack
from router.context import RequestContext
from router.levers.patterns import TEMPLATES, Intent, intents_of, template_for, trivial_reply
from router.pipeline import compose
from router.stages.pattern import PatternStage
from tests.helpers import TITLE_SCHEMA, eventually, router_stack

CHAT = frozenset({"seller_chat"})


def chat(*turns: tuple[str, str], **fields: object) -> LlmRequest:
    """A seller_chat request of (role, text) turns."""
    request = LlmRequest(
        id=uuid.uuid4().hex,
        tenant="t1",
        agent="listing",
        task_type="seller_chat",
        messages=[ChatMessage(role="system", content="You help sellers.")]
        + [ChatMessage(role=role, content=text) for role, text in turns],
    )
    return msgspec.structs.replace(request, **fields)


@pytest.mark.parametrize(
    ("text", "intents"),
    [
        ("hi", {Intent.GREETING}),
        ("Hello there!", {Intent.GREETING}),
        ("Good morning", {Intent.GREETING}),
        ("thanks", {Intent.THANKS}),
        ("Thank you so much!!", {Intent.THANKS}),
        ("ok, done", {Intent.ACK}),
        ("Got it.", {Intent.ACK}),
        ("Ok thanks!", {Intent.ACK, Intent.THANKS}),
        ("bye", {Intent.GOODBYE}),
        ("Thanks, bye!", {Intent.THANKS, Intent.GOODBYE}),
    ],
)
def test_trivial_turns_are_recognised(text: str, intents: set[Intent]) -> None:
    assert intents_of(text) == frozenset(intents)


@pytest.mark.parametrize(
    "text",
    [
        "hi?",  # a question
        "ok?",
        "thanks, order 113542617735902",  # a digit, an entity
        "thanks John",  # a name
        "ok, list it on etsy",  # an instruction
        "yes",  # an answer: never trivial
        "no thanks",
        "done with the photos",
        "hi :)",
        "thanks 👍",
        "",
        "thanks " * 20,  # too long
    ],
)
def test_anything_non_trivial_goes_to_the_model(text: str) -> None:
    assert intents_of(text) is None
    assert trivial_reply(chat(("user", text)), CHAT) is None


def test_only_conversational_task_types_without_schema_or_tools() -> None:
    assert trivial_reply(chat(("user", "thanks")), CHAT) == (Intent.THANKS,)
    assert trivial_reply(chat(("user", "thanks"), task_type="pricing"), CHAT) is None
    assert trivial_reply(chat(("user", "thanks"), output_schema=TITLE_SCHEMA), CHAT) is None
    assert trivial_reply(chat(("user", "thanks"), needs_tools=True), CHAT) is None
    assert trivial_reply(chat(("user", "thanks"), tool_choice="required"), CHAT) is None
    bypass = chat(("user", "thanks"), cache_policy=CachePolicy.BYPASS)
    assert trivial_reply(bypass, CHAT) is None


def test_an_answer_to_the_assistants_question_goes_to_the_model() -> None:
    asked = chat(("user", "List my mug"), ("assistant", "Shall I publish it now?"), ("user", "ok"))
    told = chat(("user", "List my mug"), ("assistant", "It is listed."), ("user", "ok, thanks"))
    assert trivial_reply(asked, CHAT) is None
    assert trivial_reply(told, CHAT) == (Intent.THANKS,)


def test_mixed_or_odd_turns_go_to_the_model() -> None:
    assert trivial_reply(chat(("user", "hi, bye")), CHAT) is None
    assert trivial_reply(chat(("user", "thanks"), ("assistant", "Welcome!")), CHAT) is None
    image = ChatMessage(
        role="user", content=[TextPart(text="thanks"), ImagePart(url="https://x/y.png")]
    )
    with_image = chat(("user", "x"))
    with_image = msgspec.structs.replace(with_image, messages=[*with_image.messages[:-1], image])
    assert trivial_reply(with_image, CHAT) is None


def test_the_template_matches_the_intent() -> None:
    assert "welcome" in template_for((Intent.THANKS,)).lower()
    assert "goodbye" in template_for((Intent.GOODBYE, Intent.THANKS)).lower()


def test_no_template_assumes_what_the_caller_does() -> None:
    """Any /v1 client gets these, not only seller chat: no listings, no products."""
    for intents in TEMPLATES:
        text = template_for(tuple(sorted(intents))).lower()
        words = set(re.findall(r"[a-z]+", text))
        assert not {"listing", "listings", "product", "products", "sell"} & words, text


async def test_the_stage_answers_without_calling_the_rest() -> None:
    calls = 0

    async def upstream(ctx: RequestContext) -> LlmResult:
        nonlocal calls
        calls += 1
        return LlmResult(
            request_id=ctx.request.id,
            tenant=ctx.request.tenant,
            agent=ctx.request.agent,
            status=Status.OK,
            lever=Lever.ROUTED,
        )

    stage = PatternStage(CHAT, PriceCatalog.load(), "gpt-4o")
    handler = compose([stage], upstream, trace.get_tracer("test"))
    request = chat(("user", "Thanks!"))
    result = await handler(RequestContext(request=request))
    assert calls == 0
    assert result.lever is Lever.PATTERN and result.request_id == request.id
    assert result.cost_micro_usd == 0 and result.baseline_micro_usd > 0
    assert result.content == template_for((Intent.THANKS,))
    await handler(RequestContext(request=chat(("user", "Thanks, what is my fee?"))))
    assert calls == 1


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the router and the ledger."""
    async with router_stack() as running:
        yield running


async def test_a_trivial_turn_costs_nothing_and_is_in_the_ledger(stack: Stack) -> None:
    assert stack.sim is not None
    tenant = f"p{uuid.uuid4().hex[:8]}"
    calls = (await stack.sim.stats()).calls
    client = LlmClient(stack.broker)
    thanks = await client.request(chat(("user", "ok, thanks!"), tenant=tenant), timeout_s=10)
    question = await client.request(chat(("user", "thanks, and my fee?"), tenant=tenant), 10)
    assert thanks.lever is Lever.PATTERN and thanks.cost_micro_usd == 0
    assert question.lever is not Lever.PATTERN and question.cost_micro_usd > 0
    assert (await stack.sim.stats()).calls == calls + 1

    async def ledgered() -> bool:
        return (await stack.aggregates.totals(tenant)).calls == 2

    await eventually(ledgered)
    pattern = (await stack.aggregates.breakdown(Dimension.LEVER, tenant))[Lever.PATTERN.value]
    assert pattern.calls == 1 and pattern.paid_calls == 0 and pattern.spend_micro_usd == 0
    assert pattern.baseline_micro_usd == thanks.baseline_micro_usd > 0
