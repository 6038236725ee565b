"""The OpenAI-compatible endpoint, driven by the official openai client against the API service
of a real embedded stack: the same answers as the same request sent through NATS, streamed or
not, with the tenant taken from the API key and every lever applying."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import msgspec
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from api.app import create_app
from api.auth import ApiKeys
from api.openai_errors import OpenAIError
from api.openai_request import AUTO_MODEL, read_call
from api.server import ApiServer
from bus import subjects
from bus.codec import decode
from bus.llm_client import LlmClient
from bus.messages import (
    CachePolicy,
    ErrorCode,
    Lever,
    LlmRequest,
    LlmResult,
    Priority,
    error_result,
)
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack

TENANT = f"oa{uuid.uuid4().hex[:8]}"
KEY = "sk-test-" + uuid.uuid4().hex
SETTINGS = Settings(
    sim_latency_ms=0,
    pack_window_ms=50,
    api_port=0,
    api_keys={KEY: TENANT},
    extra_agents=frozenset({"support_bot"}),
)
PNG = "data:image/png;base64,AAAA"
SERVICES = [Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.API]
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "tags"],
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 80},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    },
}


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


async def through_nats(
    stack: Stack, body: dict[str, Any], headers: dict[str, str] | None = None
) -> LlmResult:
    """The same call published straight on NATS (with its own request id)."""
    call = read_call(body, headers or {}, tenant=TENANT, settings=SETTINGS)
    return await LlmClient(stack.broker).request(call.request, timeout_s=30)


def unique(text: str) -> list[ChatCompletionMessageParam]:
    """A user message no other test sends (so no other test's cache entry answers it)."""
    return [
        {"role": "system", "content": "You write short product copy."},
        {"role": "user", "content": f"{text} (case {uuid.uuid4().hex[:8]})"},
    ]


async def test_a_completion_equals_the_same_request_through_nats(
    stack: Stack, client: AsyncOpenAI
) -> None:
    messages = unique("Describe a teal stoneware mug in two sentences.")
    raw = await client.chat.completions.with_raw_response.create(
        model=AUTO_MODEL,
        messages=messages,
        max_tokens=120,
    )
    completion = raw.parse()
    answer = completion.choices[0].message.content
    assert answer and completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    extra = (completion.model_extra or {})["flipsync"]
    assert extra["lever"] == Lever.ROUTED and extra["simulated"] is True
    assert 0 < extra["cost_micro_usd"] < extra["baseline_micro_usd"]
    assert raw.headers["x-flipsync-lever"] == "routed"
    assert int(raw.headers["x-flipsync-cost-micro-usd"]) == extra["cost_micro_usd"]

    body = {"model": AUTO_MODEL, "messages": messages, "max_tokens": 120}
    direct = await through_nats(stack, body)
    assert direct.ok and direct.content == answer
    assert direct.lever is Lever.EXACT_CACHE  # the endpoint's call filled the tenant's cache
    fresh = await through_nats(stack, body, {"x-flipsync-cache": "bypass"})
    assert fresh.lever is Lever.ROUTED and fresh.content == answer  # same answer, paid again
    assert completion.model == fresh.model  # routed to the same model both ways

    again = await client.chat.completions.create(
        model=AUTO_MODEL, messages=messages, max_tokens=120
    )
    assert again.choices[0].message.content == answer
    assert (again.model_extra or {})["flipsync"]["lever"] == Lever.EXACT_CACHE
    assert (again.model_extra or {})["flipsync"]["cost_micro_usd"] == 0


async def test_a_streamed_completion_equals_the_same_request_through_nats(
    stack: Stack, client: AsyncOpenAI
) -> None:
    messages = unique("Write a listing intro for a walnut cutting board.")
    stream = await client.chat.completions.create(
        model=AUTO_MODEL,
        messages=messages,
        max_completion_tokens=150,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str] = []
    usage = None
    ids = set()
    async for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert len(ids) == 1 and finish == ["stop"]
    assert len([p for p in pieces if p]) > 1  # really cut into several chunks
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0

    body = {"model": AUTO_MODEL, "messages": messages, "max_completion_tokens": 150}
    direct = await through_nats(stack, body, {"x-flipsync-cache": "bypass"})
    assert direct.ok and "".join(pieces) == direct.content
    assert usage.completion_tokens == direct.usage.output_tokens

    # Streamed again: the exact cache answers, and the text is still the same.
    again = await client.chat.completions.create(
        model=AUTO_MODEL,
        messages=messages,
        max_completion_tokens=150,
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in again if c.choices])
    assert text == direct.content


@pytest.mark.parametrize("model", [AUTO_MODEL, "gpt-4o-mini"])
async def test_a_pattern_reply_names_flipsync_auto_not_an_empty_model(
    client: AsyncOpenAI, model: str
) -> None:
    """Found by review: a template answer (no model wrote it) said "model": "", which
    OpenAI clients take for a model id. It names flipsync-auto (FlipSync's own entry of
    /v1/models), whatever the call asked for: no provider model wrote it, and a client
    pricing by the model would book a call that cost nothing."""
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "thanks!"}]
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=messages)
    completion = raw.parse()
    assert (completion.model_extra or {})["flipsync"]["lever"] == Lever.PATTERN
    assert completion.model == AUTO_MODEL
    assert raw.headers["x-flipsync-model"] == ""  # FlipSync's own fact: no model answered
    stream = await client.chat.completions.create(model=model, messages=messages, stream=True)
    assert {chunk.model async for chunk in stream} == {AUTO_MODEL}


async def test_structured_output_and_a_model_hint_go_through(
    stack: Stack, client: AsyncOpenAI
) -> None:
    messages = unique("Title and tags for a brass desk lamp.")
    response_format: ResponseFormatJSONSchema = {
        "type": "json_schema",
        "json_schema": {"name": "listing", "schema": SCHEMA, "strict": True},
    }
    completion = await client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        response_format=response_format,
        temperature=0.2,
    )
    content = completion.choices[0].message.content or ""
    jsonschema.validate(json.loads(content), SCHEMA)
    assert completion.model == "gpt-4o"  # the model hint was honoured
    body = {"model": "gpt-4o", "messages": messages, "response_format": response_format,
            "temperature": 0.2}  # fmt: skip
    direct = await through_nats(stack, body, {"x-flipsync-cache": "bypass"})
    assert direct.content == content and direct.parsed == json.loads(content)


async def test_models_are_listed(client: AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert models[0] == AUTO_MODEL and "gpt-4o-mini" in models and "gpt-4o" in models
    assert (await client.models.retrieve("gpt-4o")).owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")


async def test_bad_requests_get_openai_errors(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as empty:
        await client.chat.completions.create(model=AUTO_MODEL, messages=[])
    assert "messages" in str(empty.value)
    with pytest.raises(openai.BadRequestError) as agent:
        await client.chat.completions.create(
            model=AUTO_MODEL,
            messages=[{"role": "user", "content": "hello there"}],
            extra_headers={"X-FlipSync-Agent": "ebay_listing"},
        )
    assert agent.value.code == "unknown_agent"
    with pytest.raises(openai.BadRequestError) as n:
        await client.chat.completions.create(
            model=AUTO_MODEL, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert n.value.param == "n"


async def test_an_extra_agent_and_end_user_are_recorded(stack: Stack, client: AsyncOpenAI) -> None:
    messages = unique("Reply to a buyer asking about shipping times.")
    completion = await client.chat.completions.create(
        model=AUTO_MODEL,
        messages=messages,
        user="buyer-42",
        extra_headers={
            "X-FlipSync-Agent": "support_bot",
            "X-FlipSync-Task-Type": "customer_support",
        },
    )
    request_id = (completion.model_extra or {})["flipsync"]["request_id"]
    assert completion.id == f"chatcmpl-{request_id}"
    js = stack.broker.connection.jetstream()
    raw = await js.get_last_msg(
        subjects.STREAM_REQUESTS, subjects.llm_request(TENANT, "support_bot")
    )
    sent = decode(raw.data or b"", LlmRequest)
    assert sent.id == request_id and sent.task_type == "customer_support"
    assert sent.tags["user"] == "buyer-42" and sent.priority is Priority.INTERACTIVE


def test_request_mapping_of_tools_formats_and_headers() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in the photo?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"sku\": 1}"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "response_format": {"type": "json_object"},
        "max_tokens": 64,
        "temperature": 0.7,
    }  # fmt: skip
    headers = {
        "x-flipsync-priority": "bulk",
        "x-flipsync-cache": "refresh",
        "idempotency-key": "k1",
    }
    call = read_call(body, headers, tenant="t1", settings=SETTINGS)
    request = call.request
    assert request.model_hint == "gpt-4o-mini" and request.max_output_tokens == 64
    assert request.temperature == 0.7 and request.agent == SETTINGS.openai_agent
    assert request.tool_choice == "lookup" and request.needs_tools and len(request.tools) == 1
    assert request.output_schema is not None and request.output_schema.strict is False
    assert request.priority is Priority.BULK and request.cache_policy is CachePolicy.REFRESH
    parts = msgspec.to_builtins(request.messages)
    assert parts[0]["content"][1]["url"].startswith("data:image/png")
    assert parts[1]["tool_calls"][0]["id"] == "c1" and parts[2]["tool_call_id"] == "c1"
    again = read_call(body, headers, tenant="t1", settings=SETTINGS)
    assert again.request.id == request.id  # the idempotency key makes the id stable
    other = read_call(body, headers, tenant="t2", settings=SETTINGS)
    assert other.request.id != request.id  # ...per tenant
    for bad in (
        {"max_tokens": 0},
        {"tool_choice": "sometimes"},
        {"response_format": {"type": "xml"}},
    ):
        with pytest.raises(OpenAIError) as refused:
            read_call(body | bad, {}, tenant="t1", settings=SETTINGS)
        assert refused.value.status == 400
    for header in ({"x-flipsync-priority": "urgent"}, {"x-flipsync-task-type": "a.b"}):
        with pytest.raises(OpenAIError):
            read_call(body, header, tenant="t1", settings=SETTINGS)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.MALFORMED, 400),
        (ErrorCode.OVER_BUDGET, 402),
        (ErrorCode.PROVIDER_RATE_LIMITED, 429),
        (ErrorCode.DEADLINE_EXCEEDED, 504),
        (ErrorCode.PROVIDER_ERROR, 502),
        (ErrorCode.INTERNAL, 500),
    ],
)
def test_error_results_map_to_http_statuses(code: ErrorCode, status: int) -> None:
    error = OpenAIError.of_result(error_result("r1", "t1", "a", code, "why"), {})
    assert error.status == status
    body = json.loads(bytes(error.response().body))
    assert body["error"]["code"] == code.value and body["error"]["message"] == "why"


async def test_a_call_past_its_deadline_gets_504(stack: Stack) -> None:
    hasty = SETTINGS.model_copy(update={"openai_timeout_s": 0.001})
    app = create_app(stack.broker, stack.redis, hasty, keys=ApiKeys({KEY: TENANT}))
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as late:
                await client.chat.completions.create(
                    model=AUTO_MODEL, messages=unique("Too slow for a millisecond.")
                )
        assert late.value.status_code == 504 and late.value.code == "deadline_exceeded"
    finally:
        await server.stop()


def test_an_idempotency_key_reused_for_another_call_is_another_request() -> None:
    body = {"model": AUTO_MODEL, "messages": [{"role": "user", "content": "Title a lamp."}]}
    key = {"idempotency-key": "k-reused"}
    first = read_call(body, key, tenant="t1", settings=SETTINGS).request.id
    assert (
        read_call(dict(reversed(body.items())), key, tenant="t1", settings=SETTINGS).request.id
        == first
    )
    changed = {**body, "messages": [{"role": "user", "content": "Title a chair."}]}
    assert read_call(changed, key, tenant="t1", settings=SETTINGS).request.id != first
    bulk = {**key, "x-flipsync-priority": "bulk"}
    assert read_call(body, bulk, tenant="t1", settings=SETTINGS).request.id != first


async def test_a_reused_idempotency_key_answers_each_body_its_own(client: AsyncOpenAI) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    lamp, chair = unique("Title a brass lamp."), unique("Title an oak chair.")

    async def ask(messages: list[ChatCompletionMessageParam]) -> tuple[str, str]:
        answer = await client.chat.completions.create(
            model=AUTO_MODEL, messages=messages, extra_headers=key
        )
        return (answer.model_extra or {})["flipsync"]["request_id"], str(
            answer.choices[0].message.content
        )

    first = await ask(lamp)
    assert await ask(lamp) == first  # a retry is answered once
    other = await ask(chair)
    assert other[0] != first[0]  # not the lamp's answer again


async def test_deeply_nested_json_gets_a_400_with_the_reason(stack: Stack) -> None:
    assert stack.api is not None
    depth = 100_000
    raw = '{"model": "flipsync-auto", "messages": ' + "[" * depth + "]" * depth + "}"
    async with (
        aiohttp.ClientSession(stack.api.url) as http,
        http.post(
            "/v1/chat/completions",
            data=raw,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 400
        error = (await response.json())["error"]
    assert "nested too deeply" in error["message"]
