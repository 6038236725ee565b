"""Real streaming on the OpenAI-compatible endpoint: the provider's text relayed chunk by
chunk while it is still generating, then the finish_reason and the usage the ledger booked.

Driven by the official openai client (stream=True) against the API of an embedded stack
with the simulated provider. The simulator's stream gate holds its answer after the first
text chunk, so a test reads that chunk while the provider's stream is provably open: no
timing is assumed, only order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import openai
import pytest
from nats.js.errors import NotFoundError
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from api.openai_stream import Written
from bus import subjects
from bus.codec import decode
from bus.messages import LedgerEvent, Lever, LlmResult, LlmStreamChunk
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from simulator.config import FaultKind
from simulator.markers import marker

TENANT = f"st{uuid.uuid4().hex[:8]}"
KEY = "sk-test-" + uuid.uuid4().hex
SETTINGS = Settings(sim_latency_ms=0, api_port=0, api_keys={KEY: TENANT})
SERVICES = [Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.API]
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title"],
    "properties": {"title": {"type": "string"}},
}
WAIT_S = 20.0
"""Bound on any one wait: a relay that buffered the whole answer would hang on the gate."""


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router, ledger and the API service on an embedded NATS and Redis."""
    running = await start_stack(SETTINGS, SERVICES)
    yield running
    await running.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    """The official client, pointed at the API service with the tenant's key."""
    assert stack.api is not None
    async with AsyncOpenAI(base_url=f"{stack.api.url}/v1", api_key=KEY, max_retries=0) as oa:
        yield oa


def prompt() -> str:
    """A question no cache or pattern can answer (unique per call)."""
    return f"Write a product description for a vintage leather satchel, lot {uuid.uuid4().hex}."


async def ledger_event(stack: Stack, request_id: str) -> LedgerEvent:
    """The request's ledger event, once the ledger stream holds it."""
    js = stack.broker.connection.jetstream()
    async with asyncio.timeout(WAIT_S):
        while True:
            seq = 1
            while True:
                try:
                    raw = await js.get_msg(
                        subjects.STREAM_LEDGER, seq, subject=subjects.ledger(TENANT), next=True
                    )
                except NotFoundError:
                    break
                event = decode(raw.data, LedgerEvent) if raw.data else None
                if event is not None and event.request_id == request_id:
                    return event
                assert raw.seq is not None
                seq = raw.seq + 1
            await asyncio.sleep(0.05)


async def stored_result(stack: Stack, request_id: str) -> LlmResult | None:
    """The request's terminal result in the results stream, or None when there is none yet."""
    js = stack.broker.connection.jetstream()
    subject = subjects.llm_result(TENANT, SETTINGS.openai_agent, request_id)
    try:
        raw = await js.get_last_msg(subjects.STREAM_RESULTS, subject, direct=True)
    except NotFoundError:
        return None
    return decode(raw.data, LlmResult) if raw.data else None


async def test_text_arrives_while_the_provider_is_still_streaming(
    stack: Stack, client: AsyncOpenAI
) -> None:
    """The first text chunk is read while the simulator holds its stream open; then the rest,
    the finish_reason and usage equal to the ledger event's, and the cost settled from it."""
    assert stack.sim is not None
    gate = asyncio.Event()
    stack.sim.state.stream_gate = gate
    try:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt()}],
            max_tokens=400,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks: list[ChatCompletionChunk] = []
        async with asyncio.timeout(WAIT_S):
            async for chunk in stream:
                chunks.append(chunk)
                if chunk.choices and chunk.choices[0].delta.content:
                    break
        request_id = chunks[0].id.removeprefix("chatcmpl-")
        # The provider has sent only its first text and waits on the gate: nothing settled.
        assert (await stack.sim.stats()).streams_open == 1
        assert await stored_result(stack, request_id) is None
        gate.set()
        async with asyncio.timeout(WAIT_S):
            chunks += [chunk async for chunk in stream]
    finally:
        stack.sim.state.stream_gate = None
        gate.set()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 2  # relayed piece by piece, not one block
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    event = await ledger_event(stack, request_id)
    result = await stored_result(stack, request_id)
    assert result is not None and result.content == text
    assert last.usage.prompt_tokens == event.usage.input_tokens > 0
    assert last.usage.completion_tokens == event.usage.output_tokens > 0
    assert event.cost_micro_usd == result.cost_micro_usd > 0
    finish = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    facts = (finish.model_extra or {})["flipsync"]
    assert (facts["cost_micro_usd"], facts["lever"]) == (event.cost_micro_usd, "routed")
    assert (await stack.sim.stats()).streams_open == 0


async def test_length_passes_through_a_stream(stack: Stack, client: AsyncOpenAI) -> None:
    """An answer cut at max_tokens ends its stream with "length", its usage the ledger's."""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt()}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with asyncio.timeout(WAIT_S):
        chunks = [chunk async for chunk in stream]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens <= 6
    event = await ledger_event(stack, chunks[0].id.removeprefix("chatcmpl-"))
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        event.usage.input_tokens,
        event.usage.output_tokens,
    )


async def test_an_answer_without_a_provider_call_streams_whole(
    stack: Stack, client: AsyncOpenAI
) -> None:
    """A cache hit has no provider stream: its whole answer comes as chunks, as before."""
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt()}]
    first = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, max_tokens=100
    )
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        max_tokens=100,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with asyncio.timeout(WAIT_S):
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert chunks[-1].usage is not None
    cached = await stored_result(stack, chunks[0].id.removeprefix("chatcmpl-"))
    assert cached is not None and cached.lever is Lever.EXACT_CACHE


def piece(call: int, seq: int, content: str) -> LlmStreamChunk:
    """A relayed piece of a request's text."""
    return LlmStreamChunk(request_id="r1", call=call, seq=seq, content=content)


def test_written_text_takes_pieces_in_order_and_the_result_says_the_rest() -> None:
    """A missed piece stops the relay; the result's text past what was written follows."""
    written = Written()
    assert [written.take(piece(1, i, t)) for i, t in enumerate(["Brass ", "desk "])] == [
        "Brass ",
        "desk ",
    ]
    assert written.take(piece(1, 3, "1950s")) == ""  # seq 2 was lost on core NATS
    assert written.take(piece(1, 4, ".")) == ""  # and nothing after it is written
    assert written.rest("Brass desk lamp, 1950s.") == "lamp, 1950s."


def test_a_retry_after_streamed_text_is_not_spliced_into_another_answer() -> None:
    """Pieces of a second call are not written; a result that does not start with the
    written text is refused (None), never spliced."""
    written = Written()
    assert written.take(piece(1, 0, "Brass ")) == "Brass "
    assert written.take(piece(2, 0, "A lamp")) == ""
    assert written.rest("A lamp of brass.") is None
    assert Written().rest("A lamp of brass.") == "A lamp of brass."


async def test_an_answer_failing_its_schema_after_streaming_ends_with_an_error_event(
    stack: Stack, client: AsyncOpenAI
) -> None:
    """Text already written cannot be withdrawn: the stream ends with the result's error
    (schema_invalid), which the openai client raises, and the call is still booked."""
    fault = marker(FaultKind.SCHEMA_INVALID, "gpt-4o-mini")
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"{prompt()} {fault}"}],
        max_tokens=200,
        stream=True,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "listing", "schema": SCHEMA, "strict": True},
        },
    )
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as raised:
        async with asyncio.timeout(WAIT_S):
            async for chunk in stream:
                chunks.append(chunk)
    assert getattr(raised.value, "code", None) == "schema_invalid"
    assert any(c.choices and c.choices[0].delta.content for c in chunks)  # it had streamed
    event = await ledger_event(stack, chunks[0].id.removeprefix("chatcmpl-"))
    assert event.cost_micro_usd > 0 and event.usage.output_tokens > 0
