"""One LLM request through the real pipeline: ok results, bad input, provider faults, redelivery."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest

from bus import subjects
from bus.codec import decode, encode
from bus.llm_client import LlmClient
from bus.messages import DeadLetter, ErrorCode, Lever, LlmResult, Status
from bus.settings import Settings
from flipsync.stack import Stack, start_stack
from simulator.config import Faults
from simulator.server import SimulatedProvider
from tests.helpers import eventually, make_request


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack of its own: nats-server, redis-server, simulated provider, services."""
    running = await start_stack(Settings(sim_latency_ms=0, provider_max_retries=0))
    yield running
    await running.stop()


@pytest.fixture
async def sim(stack: Stack) -> AsyncIterator[SimulatedProvider]:
    """The stack's simulated provider; faults set by a test are switched off afterwards."""
    assert stack.sim is not None
    yield stack.sim
    await stack.sim.set_faults(Faults())


async def test_request_gets_ok_result_priced_and_in_the_ledger(stack: Stack) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    result = await LlmClient(stack.broker).request(make_request(tenant=tenant), timeout_s=10)
    assert result.status is Status.OK, result.reason
    assert isinstance(result.parsed, dict) and 3 <= len(result.parsed["title"]) <= 80
    assert result.lever is Lever.ROUTED and result.simulated
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert 0 < result.cost_micro_usd < result.baseline_micro_usd  # gpt-4o-mini vs gpt-4o

    async def aggregated() -> bool:
        return (await stack.aggregates.totals(tenant)).calls == 1

    await eventually(aggregated)
    totals = await stack.aggregates.totals(tenant)
    assert totals.spend_micro_usd == result.cost_micro_usd
    assert totals.baseline_micro_usd == result.baseline_micro_usd


async def test_malformed_json_goes_to_dead_letters(stack: Stack) -> None:
    letter = await _publish_raw(stack, b"{not json", "t1", "listing")
    assert letter.error_code is ErrorCode.MALFORMED
    assert letter.payload == b"{not json"


async def test_invalid_request_gets_error_result_and_dead_letter(stack: Stack) -> None:
    request_id = uuid.uuid4().hex
    body = msgspec.json.encode({"id": request_id, "tenant": "t1", "agent": "listing"})
    result_sub = await stack.broker.connection.subscribe(
        subjects.llm_result("t1", "listing", request_id)
    )
    letter = await _publish_raw(stack, body, "t1", "listing")
    result = decode((await result_sub.next_msg(timeout=5)).data, LlmResult)
    await result_sub.unsubscribe()
    assert letter.error_code is ErrorCode.MALFORMED
    assert result.status is Status.ERROR and result.error_code is ErrorCode.MALFORMED
    assert "messages" in result.reason  # the reason names the missing field


async def test_oversized_request_gets_error_result(stack: Stack) -> None:
    big = make_request(text="x" * (stack.settings.max_request_bytes + 10))
    result = await LlmClient(stack.broker).request(big, timeout_s=10)
    assert result.error_code is ErrorCode.OVERSIZED
    assert "over the limit" in result.reason


async def test_unknown_agent_gets_error_result(stack: Stack) -> None:
    result = await LlmClient(stack.broker).request(make_request(agent="nobody"), timeout_s=10)
    assert result.error_code is ErrorCode.UNKNOWN_AGENT
    assert "nobody" in result.reason


async def test_schema_invalid_answer_is_an_error_that_was_paid(
    stack: Stack, sim: SimulatedProvider
) -> None:
    await sim.set_faults(Faults(schema_invalid=1.0))
    tenant = f"t{uuid.uuid4().hex[:8]}"
    result = await LlmClient(stack.broker).request(make_request(tenant=tenant), timeout_s=10)
    assert result.error_code is ErrorCode.SCHEMA_INVALID
    assert result.cost_micro_usd > 0  # the provider was paid for the bad answer
    # Nothing was delivered, so no naive call was saved: no saving is claimed for it.
    assert result.baseline_micro_usd == result.cost_micro_usd
    assert result.savings_by_lever == {}
    # The cascade (on for text_generation) climbed past failed attempts first: each was
    # paid too, and is booked as its own ledger event (routing's lever cost).
    climbed = result.reason.count("escalated from")
    assert (result.overhead_micro_usd > 0) == (climbed > 0)

    async def in_ledger() -> bool:
        totals = await stack.aggregates.totals(tenant)
        return totals.paid_calls == 1 + climbed and totals.spend_micro_usd == result.cost_micro_usd

    await eventually(in_ledger)
    totals = await stack.aggregates.totals(tenant)
    assert totals.baseline_micro_usd == totals.spend_micro_usd  # booked, and saved nothing


async def test_provider_error_gets_error_result(stack: Stack, sim: SimulatedProvider) -> None:
    await sim.set_faults(Faults(server_error=1.0))
    result = await LlmClient(stack.broker).request(make_request(), timeout_s=10)
    assert result.error_code is ErrorCode.PROVIDER_ERROR
    assert "HTTP 500" in result.reason


async def test_redelivered_request_is_answered_once_and_paid_once(stack: Stack) -> None:
    assert stack.sim is not None
    tenant = f"t{uuid.uuid4().hex[:8]}"
    request = make_request(tenant=tenant)
    calls_before = (await stack.sim.stats()).calls
    first = await LlmClient(stack.broker).request(request, timeout_s=10)
    # The same request again, under another message id, as a redelivery would bring it.
    js = stack.broker.connection.jetstream()
    await js.publish(
        subjects.llm_request(tenant, request.agent),
        encode(request),
        headers={"Nats-Msg-Id": uuid.uuid4().hex},
    )

    async def router_idle() -> bool:
        info = await js.consumer_info(subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(router_idle)
    second = await LlmClient(stack.broker).request(request, timeout_s=10)
    assert second == first
    assert (await stack.sim.stats()).calls == calls_before + 1

    async def booked() -> bool:  # the ledger applies events on its own time
        return (await stack.aggregates.totals(tenant)).calls >= 1

    await eventually(booked)
    assert (await stack.aggregates.totals(tenant)).calls == 1


async def _publish_raw(stack: Stack, body: bytes, tenant: str, agent: str) -> DeadLetter:
    nc = await nats.connect(stack.nats_url)
    try:
        dlq = await nc.subscribe(subjects.dead_letter("router"))
        await nc.jetstream().publish(subjects.llm_request(tenant, agent), body)
        letter = decode((await dlq.next_msg(timeout=5)).data, DeadLetter)
        await dlq.unsubscribe()
        return letter
    finally:
        await nc.close()
