"""Prompt trimming (pure), its attribution, and prompt-cache pricing through the real stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from bus.llm_client import LlmClient
from bus.messages import ChatMessage, Lever, LlmRequest, LlmResult, Status, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from flipsync.stack import Stack
from router.levers.served import with_trim_savings
from router.levers.trimming import (
    TrimPolicy,
    prompt_tokens,
    prune_history,
    static_first,
    tools_needed,
    trim,
    turns,
)
from simulator.cache import MIN_CACHED_TOKENS
from tests.helpers import eventually, router_stack

TOOLS: list[dict[str, object]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ')} for the seller's shop, by id or title.",
            "parameters": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "note": {"type": "string"}},
                "required": ["id"],
            },
        },
    }
    for name in ("track_order", "cancel_order", "lookup_listing", "refund_order")
]


def say(role: str, text: str) -> ChatMessage:
    """One chat message."""
    return ChatMessage(role=role, content=text)


def conversation(n_turns: int, words: int = 60) -> list[ChatMessage]:
    """A system prompt, then n_turns of user and assistant, then the current question."""
    messages = [say("system", "You help sellers run their shop. " * 10)]
    for i in range(n_turns):
        messages.append(say("user", f"Question {i}: " + "about my listing " * (words // 3)))
        messages.append(say("assistant", f"Answer {i}: " + "here is what to do " * (words // 4)))
    messages.append(say("user", "And what about shipping to Canada?"))
    return messages


def chat(messages: list[ChatMessage], **fields: object) -> LlmRequest:
    """A seller_chat request."""
    request = LlmRequest(
        id=uuid.uuid4().hex,
        tenant="t1",
        agent="listing",
        task_type="seller_chat",
        messages=messages,
        max_output_tokens=1000,
    )
    return msgspec.structs.replace(request, **fields)


def test_tools_are_sent_only_when_needed() -> None:
    plain = chat(conversation(1), tools=TOOLS)
    assert not tools_needed(plain)
    assert tools_needed(msgspec.structs.replace(plain, needs_tools=True))
    assert tools_needed(msgspec.structs.replace(plain, tool_choice="required"))
    assert tools_needed(msgspec.structs.replace(plain, tool_choice="track_order"))
    assert not tools_needed(msgspec.structs.replace(plain, tool_choice="none", needs_tools=True))
    call: dict[str, object] = {"id": "c1", "type": "function", "function": {"name": "track"}}
    in_exchange = [
        *conversation(1),
        ChatMessage(role="assistant", content="", tool_calls=[call]),
        ChatMessage(role="tool", content='{"status": "shipped"}', tool_call_id="c1"),
    ]
    assert tools_needed(chat(in_exchange, tools=TOOLS))


def test_dropping_tools_saves_their_tokens() -> None:
    request = chat(conversation(1), tools=TOOLS)
    trimmed = trim(request, TrimPolicy())
    assert trimmed.request.tools == []
    assert trimmed.saved_input_tokens == prompt_tokens(request) - prompt_tokens(trimmed.request)
    assert trimmed.saved_input_tokens > 100
    assert any("tools not sent" in change for change in trimmed.changes)
    needed = trim(msgspec.structs.replace(request, needs_tools=True), TrimPolicy())
    names = [str(t["function"]["name"]) for t in needed.request.tools]  # type: ignore[index]
    assert names == sorted(names) and len(names) == len(TOOLS)
    assert needed.saved_input_tokens == 0


def test_history_keeps_system_prompts_and_the_newest_turns_within_budget() -> None:
    messages = conversation(12)
    pruned = prune_history(messages, budget=600, step=1)
    assert pruned[0] == messages[0]  # the system prompt stays
    assert pruned[-1] == messages[-1]  # the current question stays
    assert pruned[1:] == messages[len(messages) - len(pruned) + 1 :]  # a suffix: newest turns
    kept = turns(pruned[1:])
    assert kept[0][0].role == "user"  # the cut falls on a turn boundary
    request = chat(messages)
    assert prompt_tokens(chat(pruned)) - prompt_tokens(chat(messages[:1])) <= 600 + 10
    assert prompt_tokens(chat(pruned)) < prompt_tokens(request)
    assert prune_history(messages, budget=0, step=1) is messages  # no budget: no pruning
    assert prune_history(messages, budget=100_000, step=1) is messages


def test_the_cut_moves_in_steps_so_consecutive_turns_share_a_prefix() -> None:
    step, budget = 4, 1200
    cuts = []
    for n in range(10, 30):
        messages = conversation(n)
        pruned = prune_history(messages, budget=budget, step=step)
        first_kept = next(m for m in pruned[1:])
        cuts.append(messages.index(first_kept))
    # The first kept message changes only every few turns, not at every turn.
    changes = sum(1 for a, b in zip(cuts, cuts[1:], strict=False) if a != b)
    assert changes <= len(cuts) // step + 1
    assert all(c > 1 for c in cuts)


def test_the_current_turn_is_kept_even_over_budget() -> None:
    messages = conversation(3)
    pruned = prune_history(messages, budget=1, step=1)
    assert pruned == [messages[0], messages[-1]]


def test_system_prompts_go_first_before_the_conversation_starts() -> None:
    messages = [
        say("user", "Product: teal mug, 350 ml."),
        say("system", "You write listings."),
        say("assistant", "Noted."),
        say("system", "Now be brief."),  # mid-conversation: it stays where it is
        say("user", "Title?"),
    ]
    ordered = static_first(messages)
    assert [m.role for m in ordered] == ["system", "user", "assistant", "system", "user"]
    assert ordered[3] == messages[3]
    assert static_first(ordered) is ordered


def test_output_is_capped_and_an_untouched_request_is_the_same_object() -> None:
    request = chat(conversation(1))
    assert trim(request, TrimPolicy()).request is request
    capped = trim(request, TrimPolicy(output_cap=300))
    assert capped.request.max_output_tokens == 300 and capped.saved_input_tokens == 0
    assert trim(request, TrimPolicy(output_cap=5000)).request is request


def test_savings_raise_the_baseline_and_name_the_lever() -> None:
    paid = LlmResult(
        request_id="r",
        tenant="t1",
        agent="a",
        status=Status.OK,
        usage=Usage(input_tokens=100, output_tokens=10),
        cost_micro_usd=20,
        baseline_micro_usd=350,
        lever=Lever.ROUTED,
        reason="default model",
    )
    trimmed = with_trim_savings(paid, 250, 100, ("3 tools not sent",))
    assert trimmed.lever is Lever.TRIMMED and trimmed.baseline_micro_usd == 600
    assert "trimmed 100 input tokens" in trimmed.reason
    cached = msgspec.structs.replace(paid, lever=Lever.EXACT_CACHE, cost_micro_usd=0)
    assert with_trim_savings(cached, 250, 100, ()).lever is Lever.EXACT_CACHE
    assert with_trim_savings(paid, 0, 0, ()) is paid


# --- through the embedded stack ---------------------------------------------------------


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the router and the ledger."""
    async with router_stack() as running:
        yield running


async def test_a_trimmed_call_is_attributed_with_the_untrimmed_baseline(stack: Stack) -> None:
    assert stack.sim is not None
    tenant = f"tr{uuid.uuid4().hex[:6]}"
    request = chat(conversation(30), tools=TOOLS, tenant=tenant)
    before = await stack.sim.stats()
    result = await LlmClient(stack.broker).request(request, timeout_s=10)
    after = await stack.sim.stats()
    assert result.ok and result.lever is Lever.TRIMMED, result.reason
    sent = after.prompt_tokens - before.prompt_tokens
    assert sent == result.usage.input_tokens < prompt_tokens(request)
    naive = Usage(input_tokens=prompt_tokens(request), output_tokens=result.usage.output_tokens)
    catalog = PriceCatalog.load()
    assert abs(result.baseline_micro_usd - baseline_micro_usd(catalog, "gpt-4o", naive)) <= 1

    async def ledgered() -> bool:
        return (await stack.aggregates.totals(tenant)).paid_calls == 1

    await eventually(ledgered)


async def test_a_repeated_static_prefix_is_priced_as_cached(stack: Stack) -> None:
    assert stack.sim is not None
    static = say("system", "Rules for every listing you write. " * 200)
    client = LlmClient(stack.broker)
    results = []
    session = f"rules-{uuid.uuid4().hex[:8]}"
    for product in ("teal mug", "oak stool"):
        # One session: routing keeps it on one model, whose prompt cache holds the prefix
        # (two prompts of different difficulty may otherwise go to different models).
        request = chat(
            [static, say("user", f"Describe the {product}.")],
            tenant="pc",
            tags={"session": session},
        )
        results.append(await client.request(request, timeout_s=10))
    first, second = results
    assert first.model == second.model
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens >= MIN_CACHED_TOKENS
    price = PriceCatalog.load().get(second.model)
    assert second.cost_micro_usd == cost_micro_usd(price, second.usage)
    uncached = Usage(
        input_tokens=second.usage.input_tokens, output_tokens=second.usage.output_tokens
    )
    assert second.cost_micro_usd < cost_micro_usd(price, uncached)


async def test_tools_sent_are_counted_as_prompt_tokens(stack: Stack) -> None:
    request = chat(conversation(1), tools=TOOLS, needs_tools=True, tenant="tools")
    result = await LlmClient(stack.broker).request(request, timeout_s=10)
    assert result.ok and result.lever is Lever.ROUTED  # nothing trimmed: it needs its tools
    assert result.usage.input_tokens == prompt_tokens(request)
    assert prompt_tokens(request) > prompt_tokens(msgspec.structs.replace(request, tools=[]))
