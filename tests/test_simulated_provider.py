"""The simulated provider, driven by the official openai client over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionMessageParam,
)

from router.tokens import count_messages_tokens
from simulator import Faults, SimConfig, SimulatedProvider
from tests.sim_schemas import LISTING_SCHEMA, json_schema_format, schema_errors
from tests.test_tokens import png_data_url

MODEL = "gpt-4o-mini"


def user(text: str) -> list[ChatCompletionMessageParam]:
    """One user message."""
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[SimulatedProvider]:
    """One simulated provider for the module; a timeout fault holds requests for 5 s."""
    async with SimulatedProvider(SimConfig(faults=Faults(timeout_s=5.0))) as sim:
        yield sim


@pytest.fixture
async def client(provider: SimulatedProvider) -> AsyncIterator[AsyncOpenAI]:
    """The official client, without retries, against the simulator."""
    async with AsyncOpenAI(base_url=provider.base_url, api_key="sim", max_retries=0) as client:
        yield client


async def test_text_completion_has_openai_shape_and_usage(client: AsyncOpenAI) -> None:
    messages = user("Write a blurb for a vintage leather messenger bag, brown.")
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert raw.headers["x-flipsync-simulated"] == "true"
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.system_fingerprint == "simulated"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content or ""
    assert len(content.split(". ")) >= 2
    assert {"leather", "messenger"} & set(content.lower().replace(".", "").split())
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens == count_messages_tokens(messages)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0


async def test_same_request_gives_same_content(client: AsyncOpenAI) -> None:
    messages = user("Suggest a price for a ceramic coffee mug.")
    first = await client.chat.completions.create(model=MODEL, messages=messages)
    again = await client.chat.completions.create(model=MODEL, messages=messages)
    other = await client.chat.completions.create(model="gpt-4.1", messages=messages)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


async def test_max_tokens_truncates_with_finish_reason_length(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL, messages=user("Describe a wool scarf."), max_completion_tokens=5
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and 1 <= completion.usage.completion_tokens <= 5


async def test_json_schema_answers_validate(client: AsyncOpenAI) -> None:
    products = ["Vintage leather messenger bag", "Cordless drill 18V", "Linen duvet cover king"]
    for product in products:
        completion = await client.chat.completions.create(
            model=MODEL,
            messages=user(f"Create a marketplace listing for: {product}"),
            response_format=json_schema_format(LISTING_SCHEMA),
        )
        value = json.loads(completion.choices[0].message.content or "")
        assert schema_errors(value, LISTING_SCHEMA, LISTING_SCHEMA) == []
        assert set(value["title"].lower().split()) & set(product.lower().split())


async def test_json_object_mode_answers_an_object(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL, messages=user("Tags for a desk lamp"), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


@pytest.mark.parametrize(("detail", "image_tokens"), [("high", 765), ("low", 85)])
async def test_image_usage_follows_the_tile_rule(
    client: AsyncOpenAI, detail: Literal["high", "low"], image_tokens: int
) -> None:
    text: ChatCompletionContentPartTextParam = {"type": "text", "text": "Describe this photo."}
    image: ChatCompletionContentPartImageParam = {
        "type": "image_url",
        "image_url": {"url": png_data_url(1024, 1024), "detail": detail},
    }
    plain = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [text]}]
    )
    with_image = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [text, image]}]
    )
    assert plain.usage is not None and with_image.usage is not None
    assert with_image.usage.prompt_tokens == plain.usage.prompt_tokens + image_tokens


async def test_rate_limit_fault_carries_retry_after(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model=MODEL, messages=user("hi"), extra_headers={"x-sim-fault": "rate_limit"}
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"


async def test_server_error_fault(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(
            model=MODEL, messages=user("hi"), extra_headers={"x-sim-fault": "server_error"}
        )
    assert caught.value.status_code == 500


async def test_timeout_fault_times_the_client_out(client: AsyncOpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(
            model=MODEL, messages=user("hi"), extra_headers={"x-sim-fault": "timeout"}, timeout=0.3
        )
    assert time.monotonic() - started < 3


async def test_malformed_json_fault(client: AsyncOpenAI, provider: SimulatedProvider) -> None:
    with pytest.raises(json.JSONDecodeError):
        await client.chat.completions.create(
            model=MODEL, messages=user("hi"), extra_headers={"x-sim-fault": "malformed_json"}
        )
    body = {"model": MODEL, "messages": user("hi")}
    async with httpx2.AsyncClient(base_url=provider.base_url) as raw:
        response = await raw.post(
            "/chat/completions", json=body, headers={"x-sim-fault": "malformed_json"}
        )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


async def test_schema_invalid_fault_breaks_the_schema(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=user("Listing for a bamboo cutting board"),
        response_format=json_schema_format(LISTING_SCHEMA),
        extra_headers={"x-sim-fault": "schema_invalid"},
    )
    value = json.loads(completion.choices[0].message.content or "")
    assert schema_errors(value, LISTING_SCHEMA, LISTING_SCHEMA) != []


async def test_streaming_chunks_add_up_to_the_content(client: AsyncOpenAI) -> None:
    messages = user("Write a product description for a walnut bookshelf.")
    whole = await client.chat.completions.create(model=MODEL, messages=messages)
    stream = await client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    parts: list[str] = []
    finish, usage = None, None
    async with stream:
        async for chunk in stream:
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
    assert "".join(parts) == whole.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_repeated_long_prefix_is_cached(client: AsyncOpenAI) -> None:
    policy = f"Policy {uuid.uuid4()}. " + "Listings must be honest, clear and complete. " * 200
    first_messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": policy},
        *user("Title for a red kettle"),
    ]
    first = await client.chat.completions.create(model=MODEL, messages=first_messages)
    second_messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": policy},
        *user("Title for a blue lamp"),
    ]
    second = await client.chat.completions.create(model=MODEL, messages=second_messages)
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens >= 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert 1024 <= cached <= second.usage.prompt_tokens
    assert cached % 128 == 0
    assert second.usage.prompt_tokens - cached < 128 + 20  # all but the last block and the tail


async def test_short_prompts_are_never_cached(client: AsyncOpenAI) -> None:
    for _ in range(2):
        completion = await client.chat.completions.create(model=MODEL, messages=user("hi"))
        assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
        assert completion.usage.prompt_tokens_details.cached_tokens == 0


async def test_models_and_unknown_model(client: AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert {"gpt-4o", "gpt-4.1-nano", "claude-sonnet-4", "gemini-2.5-flash"} <= set(models)
    assert (await client.models.retrieve("o4-mini")).owned_by == "simulated"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-9", messages=user("hi"))
    assert caught.value.code == "model_not_found"


async def test_bad_requests_get_openai_errors(
    client: AsyncOpenAI, provider: SimulatedProvider
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODEL, messages=[])
    assert caught.value.param == "messages"
    async with httpx2.AsyncClient(base_url=provider.base_url) as raw:
        for body in (b"{not json", b"[]", b'{"model": "gpt-4o"}'):
            response = await raw.post("/chat/completions", content=body)
            assert response.status_code == 400
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            assert response.headers["x-flipsync-simulated"] == "true"
        bad_fault = await raw.post(
            "/chat/completions",
            json={"model": MODEL, "messages": user("hi")},
            headers={"x-sim-fault": "gremlins"},
        )
    assert bad_fault.status_code == 400


async def test_unusable_schema_is_a_bad_request(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=MODEL,
            messages=user("hi"),
            response_format=json_schema_format({"type": "object", "properties": []}),
        )
    assert caught.value.param == "response_format.json_schema.schema"


async def test_stats_count_calls_and_faults() -> None:
    async with SimulatedProvider() as sim, httpx2.AsyncClient(base_url=sim.url) as raw:
        async with AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as client:
            await client.chat.completions.create(model=MODEL, messages=user("hi"))
            await client.chat.completions.create(model="gpt-4o", messages=user("hello there"))
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(
                    model=MODEL, messages=user("hi"), extra_headers={"x-sim-fault": "rate_limit"}
                )
        stats = (await raw.get("/_sim/stats")).json()
        assert stats["calls"] == 2
        assert stats["by_model"] == {MODEL: 1, "gpt-4o": 1}
        assert stats["faults"]["rate_limit"] == 1
        assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
        assert (await sim.stats()).calls == 2
        await raw.post("/_sim/reset")
        assert (await raw.get("/_sim/stats")).json()["calls"] == 0


async def test_faults_switch_at_run_time_and_repeat_with_the_seed() -> None:
    config = SimConfig(seed=7, faults=Faults(server_error=0.4))

    async def outcomes(sim: SimulatedProvider) -> list[bool]:
        async with AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as client:
            results = []
            for i in range(12):
                try:
                    await client.chat.completions.create(model=MODEL, messages=user(f"n{i}"))
                    results.append(True)
                except openai.InternalServerError:
                    results.append(False)
            return results

    async with SimulatedProvider(config) as one, SimulatedProvider(config) as two:
        first = await outcomes(one)
        assert first == await outcomes(two)
        assert True in first and False in first
        async with httpx2.AsyncClient(base_url=one.url) as raw:
            response = await raw.put("/_sim/faults", json={"rate_limit": 1.0})
            assert response.status_code == 200
            async with AsyncOpenAI(base_url=one.base_url, api_key="sim", max_retries=0) as client:
                with pytest.raises(openai.RateLimitError):
                    await client.chat.completions.create(model=MODEL, messages=user("hi"))
                await raw.put("/_sim/faults", json={})
                await client.chat.completions.create(model=MODEL, messages=user("hi"))
            assert (await raw.put("/_sim/faults", json={"timeout": 2})).status_code == 400


async def test_latency_is_applied() -> None:
    async with (
        SimulatedProvider(SimConfig(latency_ms=150)) as sim,
        AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as client,
    ):
        started = time.monotonic()
        await client.chat.completions.create(model=MODEL, messages=user("hi"))
        assert time.monotonic() - started >= 0.15


async def test_a_stream_is_paced_like_a_real_provider() -> None:
    """Chunks arrive over time (stream_token_ms per token), not all at once after the latency;
    the bound is a lower one (sleeps never end early), so a loaded machine cannot break it."""
    pace_ms = 20.0
    async with (
        SimulatedProvider(SimConfig(stream_token_ms=pace_ms)) as sim,
        AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as client,
    ):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=user("Write a product description for a walnut bookshelf."),
            stream=True,
            stream_options={"include_usage": True},
        )
        arrivals: list[float] = []
        tokens = 0
        async with stream:
            async for chunk in stream:
                if any(choice.delta.content for choice in chunk.choices):
                    arrivals.append(time.monotonic())
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
    assert len(arrivals) >= 10 and tokens >= len(arrivals)
    # Every chunk after the first waited its tokens' pace: together at least half of that
    # (the first chunk's own wait may overlap the client's reading of the headers).
    spread = arrivals[-1] - arrivals[0]
    assert spread >= 0.5 * (len(arrivals) - 1) * pace_ms / 1000, spread
    assert len({round(t, 3) for t in arrivals}) > len(arrivals) // 2  # not one burst


async def test_a_whole_answer_is_not_slowed_by_the_stream_pace() -> None:
    async with (
        SimulatedProvider(SimConfig(stream_token_ms=1000.0)) as sim,
        AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as client,
    ):
        started = time.monotonic()
        await client.chat.completions.create(
            model=MODEL, messages=user("Write a product description for a walnut bookshelf.")
        )
        assert time.monotonic() - started < 10  # 1 s a token would take far longer


async def test_a_port_taken_before_the_bind_is_given_up_for_another() -> None:
    """A port the provider chose itself may be taken by the time it binds (another server,
    a Redis Cluster node's bus port): it starts on another, and its URL says which. A port
    the caller named is not replaced."""
    import socket

    from simulator.errors import StartError

    sim = SimulatedProvider()
    chosen = sim.port
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", chosen))
    blocker.listen()
    try:
        await sim.start()
        try:
            assert sim.port != chosen and sim.base_url.endswith(f":{sim.port}/v1")
        finally:
            await sim.stop()
        with pytest.raises(StartError, match=str(chosen)):
            await SimulatedProvider(port=chosen).start()
    finally:
        blocker.close()
