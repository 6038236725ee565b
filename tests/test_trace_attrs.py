"""The router's request span carries FlipSync's lever and money attributes, the provider call
span the OpenTelemetry GenAI ones; prompt text appears only when switched on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import subjects
from bus.llm_client import LlmClient
from bus.messages import Lever, LlmResult
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from router.request_span import COMPLETION_EVENT, PROMPT_EVENT
from tests.helpers import eventually, make_request

AGENT = "ebay_listing"
SECRET = "Write a title for the seller's private heirloom brooch"


async def traced_stack(exporter: InMemorySpanExporter, **settings: object) -> Stack:
    """A router (and provider) whose spans go to exporter."""
    config = Settings(sim_latency_ms=0, pack_max_items=1, **settings)  # type: ignore[arg-type]
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
    return await start_stack(config, services, span_exporter=exporter)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Keeps every finished span in memory."""
    return InMemorySpanExporter()


@pytest.fixture
async def quiet_stack(exporter: InMemorySpanExporter) -> AsyncIterator[Stack]:
    """Prompts left out of spans (the default)."""
    running = await traced_stack(exporter)
    assert running.settings.trace_prompts is False
    yield running
    await running.stop()


async def ask(
    stack: Stack, exporter: InMemorySpanExporter, tenant: str
) -> tuple[LlmResult, ReadableSpan, list[ReadableSpan]]:
    """Send one request; its result, the router's request span and every span of its trace."""
    result = await LlmClient(stack.broker).request(
        make_request(tenant=tenant, agent=AGENT, text=SECRET), timeout_s=20
    )
    assert result.ok, result.reason
    name = f"{subjects.llm_request(tenant, AGENT)} process"

    def request_spans() -> list[ReadableSpan]:
        return [s for s in exporter.get_finished_spans() if s.name == name]

    async def exported() -> bool:
        await asyncio.to_thread(stack.tracer_provider.force_flush)
        return len(request_spans()) == 1

    await eventually(exported)
    span = request_spans()[0]
    assert span.context is not None
    trace_id = span.context.trace_id
    same_trace = [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    ]
    return result, span, same_trace


def texts(spans: list[ReadableSpan]) -> list[str]:
    """Every string attribute value of the spans and of their events."""
    found: list[str] = []
    for span in spans:
        found += [v for v in (span.attributes or {}).values() if isinstance(v, str)]
        for event in span.events:
            found += [v for v in (event.attributes or {}).values() if isinstance(v, str)]
    return found


async def test_request_span_has_lever_money_tenant_agent_and_no_prompt(
    quiet_stack: Stack, exporter: InMemorySpanExporter
) -> None:
    tenant = f"a{uuid.uuid4().hex[:8]}"
    result, span, trace_spans = await ask(quiet_stack, exporter, tenant)
    attrs = dict(span.attributes or {})
    assert attrs["flipsync.tenant"] == tenant
    assert attrs["flipsync.agent"] == AGENT
    assert attrs["flipsync.lever"] == result.lever.value == Lever.ROUTED.value
    assert attrs["flipsync.cost_micro_usd"] == result.cost_micro_usd > 0
    assert attrs["flipsync.baseline_micro_usd"] == result.baseline_micro_usd
    assert result.baseline_micro_usd > result.cost_micro_usd
    assert attrs["gen_ai.response.model"] == result.model
    assert attrs["gen_ai.provider.name"] == result.provider
    assert attrs["gen_ai.usage.output_tokens"] == result.usage.output_tokens > 0

    chats = [s for s in trace_spans if s.name.startswith("chat ")]
    assert len(chats) == 1, [s.name for s in trace_spans]
    call = dict(chats[0].attributes or {})
    for key in (
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.provider.name",
        "gen_ai.operation.name",
    ):
        assert key in call, (key, call)
    assert call["gen_ai.response.model"] == result.model

    assert not any(SECRET in text for text in texts(trace_spans)), "prompt text in a span"
    assert not [e for s in trace_spans for e in s.events if e.name == PROMPT_EVENT]


async def test_prompts_switched_on_are_events_of_the_request_span(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIPSYNC_TRACE_PROMPTS", "true")
    running = await traced_stack(exporter)
    try:
        assert running.settings.trace_prompts is True
        tenant = f"p{uuid.uuid4().hex[:8]}"
        result, span, _ = await ask(running, exporter, tenant)
    finally:
        await running.stop()
    events = {event.name: dict(event.attributes or {}) for event in span.events}
    prompt = events[PROMPT_EVENT]["gen_ai.prompt"]
    assert isinstance(prompt, str) and SECRET in prompt and '"role": "user"' in prompt
    assert events[COMPLETION_EVENT]["gen_ai.completion"] == result.content != ""
