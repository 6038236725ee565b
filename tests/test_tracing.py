"""One trace per upload, exported over real OTLP/HTTP, packing on: upload, agents, stages, and
every provider call the upload paid for (its share of a packed call included)."""

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
from router.batching.share_span import SHARE_ATTRIBUTE
from tests.helpers import eventually
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

TENANT = "traced"
AGENTS = ("identify", "ebay_listing", "price")
STAGES = ("ids", "flags", "pattern", "trim", "cache", "dedup", "route", "budget", "batch")
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
    settings = Settings(sim_latency_ms=0)
    assert settings.otlp_endpoint == receiver.endpoint
    assert settings.pack_max_items > 1, "packing is on by default: this test follows it"
    stack = await start_stack(settings)
    yield stack
    await stack.stop()


async def test_each_upload_is_one_trace_with_every_call_it_paid_for(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    stack = traced_stack
    tracer = stack.tracer_provider.get_tracer("flipsync.upload")
    # Three uploads at once, packing on: their requests share packed calls, and still no
    # upload may lend spans to another's trace, and each trace shows every call it paid for.
    products = load_catalog()[:3]
    async with WorkflowWatcher(stack.broker, TENANT) as watcher:
        uploads = await asyncio.gather(
            *(upload_product(stack.broker, p, tenant=TENANT, tracer=tracer) for p in products)
        )
        done = await watcher.wait((u.workflow_id for u in uploads), timeout_s=60)
    assert all(event.ok for event in done.values()), done
    workflow_ids = [u.workflow_id for u in uploads]

    async def exported() -> bool:
        # force_flush blocks until the exporter's thread has posted: keep it off the loop.
        await asyncio.to_thread(stack.tracer_provider.force_flush)
        try:
            check_all(receiver.spans, workflow_ids, stack.settings)
        except AssertionError:
            return False
        return True

    # A broken trace never completes: then go on, so the assertions print what did arrive.
    with contextlib.suppress(TimeoutError):
        await eventually(exported, timeout_s=15)
    check_all(receiver.spans, workflow_ids, stack.settings)


def check_all(spans: list[ReceivedSpan], workflow_ids: list[str], settings: Settings) -> None:
    """One trace per workflow, each complete; the only other traces are shared calls."""
    trees: dict[str, SpanTree] = {}
    for workflow_id in workflow_ids:
        tree = trace_of(spans, workflow_id)
        assert tree is not None, SpanTree(spans).explain(f"no root for {workflow_id}")
        check_upload_trace(tree, workflow_id, settings)
        trees[tree.spans[0].trace_id] = tree
        # Every span about this workflow's requests, wherever it was made, is in its trace.
        about = {
            s.trace_id
            for s in spans
            if str(s.attributes.get("flipsync.request_id", "")).startswith(workflow_id)
        }
        assert about == {tree.spans[0].trace_id}, f"{workflow_id}'s requests span {about}"
    assert len(trees) == len(workflow_ids), "two uploads share a trace"
    check_shared_calls(spans, trees)


def check_shared_calls(spans: list[ReceivedSpan], trees: dict[str, SpanTree]) -> None:
    """Each trace that is no workflow's is one shared call, whose every share is in the trace of
    the workflow it served: linked to the call, under that request's batch stage, and the
    shares' tokens and cost add up to the call's."""
    others: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        if span.trace_id not in trees:
            others[span.trace_id].append(span)
    shares = [s for tree in trees.values() for s in tree.spans if SHARE_ATTRIBUTE in s.attributes]
    packed_calls = 0
    for trace_id, members in others.items():
        roots = [s for s in members if not s.parent_span_id]
        assert len(roots) == 1, f"trace {trace_id} is no workflow's and has roots {roots}"
        call = roots[0]
        assert call.name.endswith(" packed") or call.name == "batch create", call
        if not call.name.endswith(" packed"):
            continue
        packed_calls += 1
        mine = [s for s in shares if (call.trace_id, call.span_id) in s.links]
        assert len(mine) == call.attributes["flipsync.pack_items"] == len(call.links), call
        for share in mine:
            tree = trees[share.trace_id]
            parent = tree.parent(share)
            assert parent is not None and parent.name == "stage batch", tree.explain("", share)
            assert (share.trace_id, parent.span_id) in call.links, tree.explain("unlinked", share)
        cost = sum(s.attributes["flipsync.cost_micro_usd"] for s in mine)
        assert cost == call.attributes["flipsync.cost_micro_usd"], (cost, call)
    assert packed_calls > 0, "no request was packed: this test no longer covers packing"
    linked = {link for s in shares for link in s.links}
    assert {(c.trace_id, c.span_id) for ms in others.values() for c in ms} >= linked, (
        "a share links to a call that was never exported"
    )


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
            check_router_spans(tree, consume, workflow_id)
    for consume in tree.spans:
        if consume.name.startswith("llm.request.") and consume.name.endswith(" process"):
            check_paid_calls(tree, consume)


def check_router_spans(tree: SpanTree, consume: ReceivedSpan, workflow_id: str) -> None:
    """Stages nest outermost first under the consume span; below the batch stage, the request's
    share of a packed call, or dispatch with the provider call (or both, for a retry alone)."""
    assert str(consume.attributes.get("flipsync.request_id", "")).startswith(workflow_id), (
        tree.explain("the consume span answers another workflow's request", consume)
    )
    parent = consume
    for stage in STAGES:
        below = [s for s in tree.children[parent.span_id] if s.name == f"stage {stage}"]
        assert len(below) == 1, tree.explain(f"expected one 'stage {stage}' here", parent)
        parent = below[0]
        if stage == "batch":
            break
    under_batch = tree.children[parent.span_id]
    shares = [s for s in under_batch if SHARE_ATTRIBUTE in s.attributes]
    dispatches = [s for s in under_batch if s.name == "stage dispatch"]
    assert shares or dispatches, tree.explain("neither a share nor a dispatch", parent)
    for dispatch in dispatches:
        chats = [s for s in tree.children[dispatch.span_id] if s.name.startswith("chat ")]
        assert len(chats) == 1, tree.explain("expected one provider call here", dispatch)
    for call in shares + [c for d in dispatches for c in tree.children[d.span_id]]:
        attrs = call.attributes
        assert str(attrs.get("gen_ai.request.model")), tree.explain(str(attrs), call)
        for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):
            assert isinstance(attrs.get(key), int) and attrs[key] > 0, tree.explain(key, call)
        cost = attrs.get("flipsync.cost_micro_usd")
        assert isinstance(cost, int) and cost > 0, tree.explain(f"cost {cost!r}", call)


def check_paid_calls(tree: SpanTree, consume: ReceivedSpan) -> None:
    """What the request paid (on its span) is the sum of the calls below it, shares included."""
    paid = consume.attributes.get("flipsync.cost_micro_usd", 0)
    calls = [s for s in tree.spans if s.name.startswith("chat ") and tree.is_descendant(s, consume)]
    below = sum(int(s.attributes.get("flipsync.cost_micro_usd", 0)) for s in calls)
    assert below == paid, tree.explain(f"paid {paid}, calls below say {below}", consume)
