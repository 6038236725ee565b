"""Hostile provider answers: a 200 whose body cannot be used, an answer without usage. The
provider billed each of them, so each is booked (invariant 2) and the request still ends in
one result."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import web
from pydantic import SecretStr

from bus.embedded.process import free_port
from bus.llm_client import LlmClient
from flipsync.stack import Stack
from router.providers.client import Completion, ProviderClient
from router.providers.config import ProviderConfig
from router.providers.errors import ProviderCallError
from router.providers.streaming import bound_usage
from simulator.config import FaultKind, Faults
from simulator.markers import marker
from tests.helpers import make_request, pipeline_quiet, router_stack


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router and ledger, embedded; one retry on the same provider."""
    async with router_stack(provider_max_retries=1) as running:
        yield running


async def test_an_unreadable_200_is_booked(stack: Stack) -> None:
    assert stack.sim is not None
    tenant = f"garbled{uuid.uuid4().hex[:8]}"
    client = LlmClient(stack.broker)
    calls = (await stack.sim.stats()).calls
    await stack.sim.set_faults(Faults(malformed_json=1.0))
    try:
        result = await client.request(make_request(tenant=tenant, agent="listing"), timeout_s=30)
        paid = (await stack.sim.stats()).calls - calls
    finally:
        await stack.sim.set_faults(Faults())
    await pipeline_quiet(stack, timeout_s=30)
    totals = await stack.aggregates.totals(tenant)
    assert not result.ok and paid >= 1
    assert totals.paid_calls == paid and totals.spend_micro_usd > 0


async def test_a_stream_cut_after_it_began_is_booked(stack: Stack) -> None:
    assert stack.sim is not None
    tenant = f"cut{uuid.uuid4().hex[:8]}"
    text = f"Mug {marker(FaultKind.MALFORMED_JSON, 'gpt-4o-mini')}"  # the model routed to
    request = make_request(tenant=tenant, agent="listing", text=text)
    request.stream = True
    client = LlmClient(stack.broker)
    calls = (await stack.sim.stats()).calls
    result = await client.request(request, timeout_s=30)
    paid = (await stack.sim.stats()).calls - calls
    await pipeline_quiet(stack, timeout_s=30)
    totals = await stack.aggregates.totals(tenant)
    assert paid >= 1 and totals.paid_calls == paid, (result, paid, totals)


_ANSWER = {"model": "m", "choices": [{"message": {"content": "Teal mug"}, "finish_reason": "stop"}]}


async def _hostile_answer(body: bytes) -> ProviderCallError | tuple[int, int]:
    """What the client makes of a 200 with body: its error, or the usage it would book."""
    got = await _completion_of(body)
    if isinstance(got, ProviderCallError):
        return got
    return got.usage.input_tokens, got.usage.output_tokens


async def _completion_of(body: bytes) -> ProviderCallError | Completion:
    """What the client makes of a 200 with body: its error, or its completion."""
    port = free_port()

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = ProviderConfig(
        name="p", base_url=f"http://127.0.0.1:{port}/v1", api_key=SecretStr("k"), models=("m",)
    )
    client = ProviderClient(config, timeout_s=10)
    try:
        return await client.complete(make_request(), "m")
    except ProviderCallError as exc:
        return exc
    finally:
        await client.close()
        await runner.cleanup()


@pytest.mark.parametrize("reported", ["x" * 100_000, "gpt-4o\nmini", "gpt 4o", "\u00e9"])
async def test_a_reported_model_that_is_no_model_id_is_kept_as_the_asked(reported: str) -> None:
    # The served name goes into the result, the ledger's model rows and metric labels.
    got = await _completion_of(msgspec.json.encode(_ANSWER | {"model": reported}))
    assert not isinstance(got, ProviderCallError) and got.model == "m"
    plausible = await _completion_of(msgspec.json.encode(_ANSWER | {"model": "m-2024-08-06"}))
    assert not isinstance(plausible, ProviderCallError) and plausible.model == "m-2024-08-06"


@pytest.mark.parametrize(
    "usage",
    [
        None, {}, [], "lots", {"prompt_tokens": -5, "completion_tokens": -9}, {"total": 3},
        {"prompt_tokens": 10**30, "completion_tokens": 12},  # past 64 bits: dead-lettered
        {"prompt_tokens": 40, "completion_tokens": 200_000_001},  # no call bills that
        {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 10**18},
    ],
)  # fmt: skip
async def test_an_answer_without_usable_usage_is_booked_at_its_bound(usage: object) -> None:
    answer = dict(_ANSWER) if usage is None else _ANSWER | {"usage": usage}
    bound = bound_usage(make_request())
    got = await _hostile_answer(msgspec.json.encode(answer))
    assert got == (bound.input_tokens, bound.output_tokens)


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"choices": []}', b'{"choices": 7}', b"[]", b'"' + b"x" * 10_000]
)
async def test_an_unusable_200_is_a_billed_failure_not_retried(body: bytes) -> None:
    got = await _hostile_answer(body)
    assert isinstance(got, ProviderCallError)
    assert got.billed and not got.retryable and "unusable answer" in got.reason
