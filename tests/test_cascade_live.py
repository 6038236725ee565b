"""The cascade in the real pipeline: the cheap model's schema-invalid answer escalates to the
next rung; the budget settles both calls, the failed one is booked as routing's lever cost
(overhead_of="routing"), and the result, the ledger and the trace say why; the failure
teaches the quality book."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import subjects
from bus.codec import decode
from bus.llm_client import LlmClient
from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    CachePolicy,
    ErrorCode,
    LedgerEvent,
    Lever,
    LlmRequest,
    LlmResult,
)
from bus.settings import Settings
from bus.settings_sections import RoutingSettings
from cost_ledger.pricing import cost_micro_usd, max_cost_micro_usd
from flipsync.stack import Service, Stack, start_stack
from router.routing.quality_store import quality_estimates
from router.stages.budget import estimate_input_tokens
from simulator.config import FaultKind
from simulator.markers import marker
from tests.helpers import eventually, make_request, put_budgets

CHEAP = "gpt-4o-mini"
AGENT = "ebay_listing"


@pytest.fixture(scope="module")
async def exporter() -> InMemorySpanExporter:
    """Keeps every finished span of the module's stack."""
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def stack(exporter: InMemorySpanExporter) -> AsyncIterator[Stack]:
    """Router, ledger and simulated provider; text_generation cascades; no packing."""
    settings = Settings(
        sim_latency_ms=0,
        pack_max_items=1,
        routing=RoutingSettings(
            # Given here, these replace the environment's (conftest): exploring a cheaper
            # model for 3% of the random request ids would dodge the fault markers.
            cascade_task_types=frozenset({"text_generation"}),
            shadow_share=0.0,
            explore_share=0.0,
        ),
    )
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
    running = await start_stack(settings, services, span_exporter=exporter)
    yield running
    await running.stop()


def request(tenant: str, *markers: str) -> LlmRequest:
    """A unique title request (text_generation, with a schema), carrying fault markers."""
    text = f"Write a title for stoneware mug {uuid.uuid4().hex[:8]}. {' '.join(markers)}"
    return make_request(tenant=tenant, agent=AGENT, text=text)


async def calls(stack: Stack) -> int:
    """Completions the simulated provider produced so far."""
    assert stack.sim is not None
    return (await stack.sim.stats()).calls


async def ledger_event(stack: Stack, tenant: str, request_id: str) -> LedgerEvent:
    """The tenant's ledger event of one request."""
    js = stack.broker.connection.jetstream()
    sub = await js.subscribe(subjects.ledger(tenant), ordered_consumer=True)
    try:
        while True:
            event = decode((await sub.next_msg(timeout=5)).data, LedgerEvent)
            if event.request_id == request_id:
                return event
    finally:
        await sub.unsubscribe()


async def spans_of(
    stack: Stack, exporter: InMemorySpanExporter, request_id: str
) -> list[ReadableSpan]:
    """Every exported span of the trace in which the router answered request_id."""

    def consume() -> ReadableSpan | None:
        for span in exporter.get_finished_spans():
            if span.attributes and span.attributes.get("flipsync.request_id") == request_id:
                return span
        return None

    async def exported() -> bool:
        await asyncio.to_thread(stack.tracer_provider.force_flush)
        return consume() is not None

    await eventually(exported)
    root = consume()
    assert root is not None and root.context is not None
    trace_id = root.context.trace_id
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    ]


async def test_invalid_cheap_answer_escalates_and_pays_for_both(
    stack: Stack, exporter: InMemorySpanExporter
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    before = await calls(stack)
    req = request(tenant, marker(FaultKind.SCHEMA_INVALID, CHEAP))
    result = await LlmClient(stack.broker).request(req, timeout_s=20)

    assert result.ok, result.reason
    assert result.lever is Lever.ESCALATED
    assert result.model != CHEAP
    assert await calls(stack) - before == 2
    assert result.reason.startswith(f"cascade {CHEAP} > {result.model} > ")
    assert f"escalated from {CHEAP} to {result.model} (standard)" in result.reason
    assert "answer does not match the schema" in result.reason
    assert isinstance(result.parsed, dict) and result.parsed["title"]

    # Both calls are paid: the result pays for the final model's call (the same prompt asked
    # of it directly) and the cheap model's, which is booked apart as routing's lever cost.
    direct = await LlmClient(stack.broker).request(
        msgspec.structs.replace(
            req, id=uuid.uuid4().hex, model_hint=result.model, cache_policy=CachePolicy.BYPASS
        ),
        timeout_s=20,
    )
    assert direct.ok and direct.model == result.model
    cheap_cost = result.overhead_micro_usd
    assert cheap_cost > 0 and result.cost_micro_usd == direct.cost_micro_usd + cheap_cost
    assert result.overhead_usage.input_tokens == direct.usage.input_tokens  # the same prompt
    assert cheap_cost == cost_micro_usd(stack.catalog.get(CHEAP), result.overhead_usage)

    async def in_ledger() -> bool:
        return (await stack.aggregates.totals(tenant)).paid_calls == 3

    await eventually(in_ledger)
    spent = result.cost_micro_usd + direct.cost_micro_usd
    totals = await stack.aggregates.totals(tenant)
    assert totals.spend_micro_usd == spent
    assert totals.input_tokens == result.usage.input_tokens + direct.usage.input_tokens
    failed = await ledger_event(stack, tenant, f"{req.id}-cascade-1")
    assert failed.overhead_of == "routing" and failed.model == CHEAP
    assert failed.cost_micro_usd == cheap_cost and failed.baseline_micro_usd == 0
    assert failed.usage == result.overhead_usage
    event = await ledger_event(stack, tenant, req.id)
    assert event.lever is Lever.ESCALATED and event.route_reason == result.reason
    assert event.cost_micro_usd == direct.cost_micro_usd and not event.overhead_of
    assert event.usage == direct.usage
    # The budget settled the whole cost (the reservation grew for the second rung).
    assert stack.budgets is not None
    statuses = await stack.budgets.status(tenant)
    daily = [s for s in statuses if s.scope == f"tenant:{tenant}"]
    assert daily and all(s.spent == spent and s.reserved == 0 for s in daily)

    # The failed rung taught the book; the trace shows the escalation and the route reason.
    estimates = await quality_estimates(stack.redis)
    assert estimates[(CHEAP, "text_generation")].n >= 1
    spans = await spans_of(stack, exporter, req.id)
    events = [e for s in spans for e in s.events if e.name == "escalation"]
    assert len(events) == 1
    attributes = events[0].attributes or {}
    assert attributes["flipsync.escalation.from"] == CHEAP
    assert attributes["flipsync.escalation.to"] == result.model
    assert "schema" in str(attributes["flipsync.escalation.problem"])
    routes = [s for s in spans if s.name == "stage route"]
    assert len(routes) == 1 and routes[0].attributes is not None
    assert str(routes[0].attributes["flipsync.route_reason"]).startswith(f"cascade {CHEAP} > ")


async def test_valid_cheap_answer_does_not_escalate(stack: Stack) -> None:
    before = await calls(stack)
    result = await LlmClient(stack.broker).request(request("t-ok"), timeout_s=20)
    assert result.ok and result.lever is Lever.ROUTED and result.model == CHEAP
    assert await calls(stack) - before == 1
    assert "escalated" not in result.reason


async def test_every_rung_invalid_ends_in_an_error_that_paid_them_all(stack: Stack) -> None:
    every = [marker(FaultKind.SCHEMA_INVALID, m.name) for m in stack.catalog.models()]
    before = await calls(stack)
    result: LlmResult = await LlmClient(stack.broker).request(
        request("t-bad", *every), timeout_s=20
    )
    assert result.error_code is ErrorCode.SCHEMA_INVALID
    assert result.lever is Lever.ESCALATED and result.cost_micro_usd > 0
    assert await calls(stack) - before == 3  # economy, standard, premium
    assert result.reason.count("escalated from") == 2


async def test_no_budget_room_for_the_next_rung_returns_the_failed_answer(stack: Stack) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    req = request(tenant, marker(FaultKind.SCHEMA_INVALID, CHEAP))
    tokens_in = estimate_input_tokens(req, Decimal("1.10"))

    def max_cost(model: str) -> int:
        return max_cost_micro_usd(stack.catalog.get(model), tokens_in, req.max_output_tokens)

    standard = min(max_cost(m.name) for m in stack.catalog.models() if m.tier.value == "standard")
    limit = max_cost(CHEAP) + standard - 1  # the cheap rung fits, no standard one on top
    spec = BudgetSpec(
        name=f"{tenant}-daily",
        scope=BudgetScope.TENANT,
        period=BudgetPeriod.DAY,
        limit_micro_usd=limit,
        policy=BudgetPolicy.REFUSE,
        tenant=tenant,
    )
    change = BudgetChange(change_id=uuid.uuid4().hex, set_budgets=[spec])
    await put_budgets(stack, change)
    before = await calls(stack)
    result = await LlmClient(stack.broker).request(req, timeout_s=20)
    assert result.error_code is ErrorCode.SCHEMA_INVALID
    assert f"no budget room to escalate from {CHEAP}" in result.reason
    assert await calls(stack) - before == 1 and result.model == CHEAP
    assert 0 < result.cost_micro_usd <= limit
