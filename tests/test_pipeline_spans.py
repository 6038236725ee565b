"""Stage spans are built only when a sampler will record them."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from bus.messages import LlmResult, Status
from bus.tracing import make_tracer_provider
from router.context import RequestContext
from router.pipeline import Handler, PassThrough, compose
from tests.helpers import make_request


class Counting(Sampler):
    """Follows the parent like FlipSync's samplers, and counts the spans it was asked about."""

    def __init__(self) -> None:
        self.asked = 0
        self._inner = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        """Count, then decide as ParentBased(ALWAYS_ON)."""
        self.asked += 1
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """The sampler's name."""
        return "counting"


async def answer(ctx: RequestContext) -> LlmResult:
    """A terminal that answers at once."""
    return LlmResult(
        request_id=ctx.request.id, tenant="t1", agent="a", status=Status.OK, content="ok"
    )


def pipeline(sampler: Counting) -> tuple[Handler, trace.Tracer]:
    """Three pass-through stages around the terminal, traced by a provider using sampler."""
    tracer = TracerProvider(sampler=sampler).get_tracer("test")
    return compose([PassThrough(), PassThrough(), PassThrough()], answer, tracer), tracer


async def test_an_unsampled_request_builds_no_stage_span() -> None:
    sampler = Counting()
    handler, _ = pipeline(sampler)
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(trace_id=1, span_id=2, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    with trace.use_span(unsampled):
        result = await handler(RequestContext(request=make_request()))
    assert result.content == "ok"
    assert sampler.asked == 0


async def test_a_sampled_request_gets_a_span_per_stage() -> None:
    sampler = Counting()
    handler, tracer = pipeline(sampler)
    with tracer.start_as_current_span("request"):
        await handler(RequestContext(request=make_request()))
    assert sampler.asked == 1 + 4  # the request's span, three stages and dispatch


async def test_a_request_without_a_trace_builds_no_span_where_nothing_is_exported() -> None:
    """make_tracer_provider with no exporter samples nothing (ALWAYS_OFF): a request that
    came with no trace context walks the plain chain, with no span even to decide on."""
    started: list[str] = []

    class Watching(PassThrough):
        """Notes the span that is current when it runs."""

        async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
            """Note the current span's name (or none), then call the rest."""
            span = trace.get_current_span()
            started.append("none" if span is trace.INVALID_SPAN else getattr(span, "name", "?"))
            return await call_next(ctx)

    quiet = make_tracer_provider("test").get_tracer("test")
    await compose([Watching()], answer, quiet)(RequestContext(request=make_request()))
    exporting = make_tracer_provider("test", exporter=InMemorySpanExporter()).get_tracer("t")
    await compose([Watching()], answer, exporting)(RequestContext(request=make_request()))
    assert started == ["none", "stage pass"]
