"""One trace per upload, exported over real OTLP/HTTP: upload, agents, stages, provider call."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import pytest

from agents.upload import load_catalog, upload_product
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.settings import Settings
from flipsync.stack import Stack, start_stack
from tests.helpers import eventually
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

TENANT = "traced"
AGENTS = ("identify", "ebay_listing", "price")
STAGES = (
    "ids",
    "flags",
    "pattern",
    "trim",
    "cache",
    "dedup",
    "route",
    "budget",
    "batch",
    "dispatch",
)
UPLOAD_SPAN = "product.upload"
WORKFLOW_ID = "flipsync.workflow_id"


class SpanTree:
    """The spans of one trace as a tree built from parent ids, printable when a check fails."""

    def __init__(self, spans: list[ReceivedSpan]) -> None:
        self.spans = spans
        self.by_id = {span.span_id: span for span in spans}
        self.children: dict[str, list[ReceivedSpan]] = defaultdict(list)
        for span in spans:
            self.children[span.parent_span_id].append(span)

    @property
    def roots(self) -> list[ReceivedSpan]:
        """Spans without a parent, and orphans whose parent is not in the trace."""
        return [s for s in self.spans if s.parent_span_id not in self.by_id]

    def named(self, name: str) -> list[ReceivedSpan]:
        """Every span called name."""
        return [span for span in self.spans if span.name == name]

    def parent(self, span: ReceivedSpan) -> ReceivedSpan | None:
        """The span's parent, if it is in the trace."""
        return self.by_id.get(span.parent_span_id)

    def ancestors(self, span: ReceivedSpan) -> Iterator[ReceivedSpan]:
        """Parent, grandparent, ... up to the root."""
        seen = {span.span_id}
        current = self.parent(span)
        while current is not None and current.span_id not in seen:
            seen.add(current.span_id)
            yield current
            current = self.parent(current)

    def is_descendant(self, span: ReceivedSpan, ancestor: ReceivedSpan) -> bool:
        """Whether ancestor is on span's path to the root."""
        return any(a.span_id == ancestor.span_id for a in self.ancestors(span))

    def descendants(self, span: ReceivedSpan, name: str) -> list[ReceivedSpan]:
        """Spans called name anywhere below span."""
        return [s for s in self.named(name) if self.is_descendant(s, span)]

    def render(self, mark: ReceivedSpan | None = None) -> str:
        """Span names, indented by depth; orphans are listed as extra roots."""
        lines: list[str] = []

        def walk(span: ReceivedSpan, depth: int) -> None:
            pointer = "  <--" if mark is not None and span.span_id == mark.span_id else ""
            lines.append(f"{'  ' * depth}{span.name}{pointer}")
            for child in self.children[span.span_id]:
                walk(child, depth + 1)

        for root in self.roots:
            if root.parent_span_id:
                lines.append(f"(orphan: parent {root.parent_span_id} is not in the trace)")
            walk(root, 0)
        return "\n".join(lines)

    def explain(self, problem: str, mark: ReceivedSpan | None = None) -> str:
        """An assertion message: what is wrong, then the whole tree."""
        return f"{problem}\n{self.render(mark)}"


def trace_of(spans: list[ReceivedSpan], workflow_id: str) -> SpanTree | None:
    """The tree of the trace whose product.upload span is workflow_id's, once it arrived."""
    roots = [
        s for s in spans if s.name == UPLOAD_SPAN and s.attributes.get(WORKFLOW_ID) == workflow_id
    ]
    if len(roots) != 1:
        return None
    return SpanTree([s for s in spans if s.trace_id == roots[0].trace_id])


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    """An OTLP/HTTP collector in this process, standing in for Jaeger."""
    async with OtlpReceiver() as running:
        yield running


@pytest.fixture
async def traced_stack(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    """An embedded stack exporting its spans with the real OTLPSpanExporter to receiver."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    # Packing off: a packed call serves several requests (several traces) at once and is
    # linked to them rather than nested under each; this test follows the direct path.
    settings = Settings(sim_latency_ms=0, pack_max_items=1)
    assert settings.otlp_endpoint == receiver.endpoint
    stack = await start_stack(settings)
    yield stack
    await stack.stop()


async def test_each_upload_is_one_trace_down_to_the_provider_call(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    stack = traced_stack
    tracer = stack.tracer_provider.get_tracer("flipsync.upload")
    # Two uploads at once: neither may lend spans to the other's trace.
    products = load_catalog()[:2]
    async with WorkflowWatcher(stack.broker, TENANT) as watcher:
        uploads = await asyncio.gather(
            *(upload_product(stack.broker, p, tenant=TENANT, tracer=tracer) for p in products)
        )
        done = await watcher.wait((u.workflow_id for u in uploads), timeout_s=30)
    assert all(event.ok for event in done.values()), done

    async def exported() -> bool:
        # force_flush blocks until the exporter's thread has posted: keep it off the loop.
        await asyncio.to_thread(stack.tracer_provider.force_flush)
        spans = receiver.spans
        for upload in uploads:
            tree = trace_of(spans, upload.workflow_id)
            # Complete once every agent's provider call and every parent has arrived.
            if tree is None or len(tree.roots) != 1 or len(tree.named("stage dispatch")) < 3:
                return False
        return True

    # A broken trace never completes: then go on, so the assertions print what did arrive.
    with contextlib.suppress(TimeoutError):
        await eventually(exported, timeout_s=10)
    spans = receiver.spans
    trace_ids = set()
    for upload in uploads:
        tree = trace_of(spans, upload.workflow_id)
        assert tree is not None, SpanTree(spans).explain(f"no root for {upload.workflow_id}")
        check_upload_trace(tree, upload.workflow_id, stack.settings)
        trace_ids.add(tree.spans[0].trace_id)
    assert len(trace_ids) == len(uploads), "two uploads share a trace"


def check_upload_trace(tree: SpanTree, workflow_id: str, settings: Settings) -> None:
    """The upload is the one root; agents, router stages and the provider call hang below it."""
    uploads = tree.named(UPLOAD_SPAN)
    assert len(uploads) == 1, tree.explain("expected one upload span in the trace")
    root = uploads[0]
    assert tree.roots == [root] and not root.parent_span_id, tree.explain("not a single root")
    assert root.service_name == settings.service_name
    foreign = {s.attributes[WORKFLOW_ID] for s in tree.spans if WORKFLOW_ID in s.attributes}
    assert foreign == {workflow_id}, tree.explain(f"spans of other workflows: {foreign}")

    for agent in AGENTS:
        agent_spans = tree.named(f"agent {agent}")
        assert len(agent_spans) == 1, tree.explain(f"expected one 'agent {agent}' span")
        agent_span = agent_spans[0]
        assert tree.is_descendant(agent_span, root), tree.explain("agent outside", agent_span)

        # FastStream names the router's consume span "<subject> process".
        consume_name = f"{subjects.llm_request(TENANT, agent)} process"
        consumes = tree.descendants(agent_span, consume_name)
        assert consumes, tree.explain(f"no {consume_name!r} under 'agent {agent}'", agent_span)
        assert len(consumes) == len(tree.named(consume_name)), tree.explain(
            f"a {consume_name!r} span is not under 'agent {agent}'"
        )
        for consume in consumes:
            check_router_spans(tree, consume, workflow_id, settings.default_model)


def check_router_spans(tree: SpanTree, consume: ReceivedSpan, workflow_id: str, model: str) -> None:
    """Stages nest outermost first under the consume span; the provider call is under dispatch."""
    assert str(consume.attributes.get("flipsync.request_id", "")).startswith(workflow_id), (
        tree.explain("the consume span answers another workflow's request", consume)
    )
    parent = consume
    for stage in STAGES:
        below = [s for s in tree.children[parent.span_id] if s.name == f"stage {stage}"]
        assert len(below) == 1, tree.explain(f"expected one 'stage {stage}' here", parent)
        parent = below[0]
    chats = [s for s in tree.children[parent.span_id] if s.name == f"chat {model}"]
    assert len(chats) == 1, tree.explain(f"expected one 'chat {model}' here", parent)
    attrs = chats[0].attributes
    assert attrs.get("gen_ai.request.model") == model, tree.explain(str(attrs), chats[0])
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
        assert isinstance(attrs.get(key), int) and attrs[key] > 0, tree.explain(key, chats[0])
    cost = attrs.get("flipsync.cost_micro_usd")
    assert isinstance(cost, int) and cost > 0, tree.explain(f"cost {cost!r}", chats[0])
