"""OpenTelemetry set-up: one TracerProvider per process, exporting OTLP/HTTP when configured."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased


def make_tracer_provider(
    service_name: str,
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """A TracerProvider that exports to exporter, else to OTLP/HTTP at otlp_endpoint, else nowhere.

    W3C trace context travels in NATS headers through FastStream's telemetry middleware
    (bus.broker), so spans of every process join the upload's one trace.
    """
    if exporter is None and otlp_endpoint:
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    # With nowhere to send spans, record none: context still propagates, at no cost.
    sampler = ParentBased(ALWAYS_ON) if exporter is not None else ALWAYS_OFF
    resource = Resource.create({SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def samples_roots(tracer: trace.Tracer) -> bool:
    """Whether a span with no parent, started with tracer, may be recorded: not by a tracer
    of a provider that exports nowhere (make_tracer_provider's ALWAYS_OFF sampler), so a
    request that came without a trace builds no spans at all there."""
    return getattr(tracer, "sampler", None) is not ALWAYS_OFF


@contextlib.contextmanager
def consumer_spans(tracer: trace.Tracer, msgs: Sequence[Msg]) -> Iterator[None]:
    """While messages consumed with nats-py are handled: a "<subject> process" consumer span
    per message whose headers carry a sampled trace (FastStream's name for it), the first of
    them current. With none sampled, a single message's context is still current, so its
    trace id travels on in what the handler publishes."""
    parents = [propagate.extract(m.headers) if m.headers else None for m in msgs]
    spans = [
        tracer.start_span(f"{m.subject} process", context=p, kind=trace.SpanKind.CONSUMER)
        for m, p in zip(msgs, parents, strict=True)
        if p is not None and trace.get_current_span(p).get_span_context().trace_flags.sampled
    ]
    current = spans[0] if spans else None
    if current is None and len(msgs) == 1 and parents[0] is not None:
        current = trace.get_current_span(parents[0])
    try:
        if current is None:
            yield
        else:
            with trace.use_span(current, end_on_exit=False):
                yield
    finally:
        for span in spans:
            span.end()
