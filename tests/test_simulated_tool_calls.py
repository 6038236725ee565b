"""With tools offered or a call forced, the simulated provider calls a tool as a model does:
the right function, arguments valid for its parameters, streamed in pieces; after the
tool's result it answers in words. An agent framework can be tried offline."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from simulator import SimConfig, SimulatedProvider
from tests.sim_schemas import schema_errors

MODEL = "gpt-4o-mini"
TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The weather forecast for a city",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                       "properties": {"city": {"type": "string"},
                                      "unit": {"type": "string", "enum": ["c", "f"]}}}}},
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Find a customer's order by its number",
        "parameters": {"type": "object", "required": ["order_id"],
                       "properties": {"order_id": {"type": "string"}}}}},
]  # fmt: skip


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[SimulatedProvider]:
    async with SimulatedProvider(SimConfig(latency_ms=0)) as sim:
        yield sim


@pytest.fixture
async def client(provider: SimulatedProvider) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=provider.base_url, api_key="sim", max_retries=0) as client:
        yield client


def ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def test_offered_tools_are_called_with_valid_arguments(client: AsyncOpenAI) -> None:
    done = await client.chat.completions.create(
        model=MODEL, messages=ask("Where is my order 1234? Find the order please."), tools=TOOLS
    )
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.type == "function" and call.function.name == "lookup_order"
    parameters = TOOLS[1]["function"]["parameters"]
    arguments = json.loads(call.function.arguments)
    assert schema_errors(arguments, parameters, dict(parameters)) == []
    assert done.usage is not None and done.usage.completion_tokens > 0


async def test_a_forced_tool_is_called_and_none_means_words(client: AsyncOpenAI) -> None:
    forced = await client.chat.completions.create(
        model=MODEL, messages=ask("Hello there, how are you today?"), tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    (call,) = forced.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    words = await client.chat.completions.create(
        model=MODEL, messages=ask("What is the weather?"), tools=TOOLS, tool_choice="none"
    )
    assert words.choices[0].message.tool_calls is None and words.choices[0].message.content


async def test_after_the_tools_result_the_answer_is_words(client: AsyncOpenAI) -> None:
    first = await client.chat.completions.create(
        model=MODEL, messages=ask("Weather forecast in Lisbon?"), tools=TOOLS
    )
    (call,) = first.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    messages: list[ChatCompletionMessageParam] = [
        *ask("Weather forecast in Lisbon?"),
        {"role": "assistant", "tool_calls": [{"id": call.id, "type": "function", "function": {
            "name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"forecast": "sunny, 24 C"}'},
    ]  # fmt: skip
    answer = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content


async def test_a_streamed_tool_call_arrives_in_pieces(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL, messages=ask("Weather forecast in Lisbon?"), tools=TOOLS,
        tool_choice="required", stream=True,
    )  # fmt: skip
    names, pieces, finish = [], [], None
    async for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                if delta.function and delta.function.arguments:
                    pieces.append(delta.function.arguments)
            finish = choice.finish_reason or finish
    assert names == ["get_weather"] and len(pieces) > 1 and finish == "tool_calls"
    assert "city" in json.loads("".join(pieces))


async def test_text_streams_a_word_per_chunk_as_openai_does(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL, messages=ask("Describe a teal stoneware mug for a listing."), stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, completion_tokens = [], 0
    async for chunk in stream:
        pieces += [c.delta.content for c in chunk.choices if c.delta.content]
        if chunk.usage is not None:
            completion_tokens = chunk.usage.completion_tokens
    # A chunk per token piece (a word, or its punctuation): never several words at once.
    assert completion_tokens >= len(pieces) > completion_tokens // 2 > 2
    assert all(len(piece.split()) <= 1 for piece in pieces)
