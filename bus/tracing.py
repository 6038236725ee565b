"""OpenTelemetry set-up: one TracerProvider per process, exporting OTLP/HTTP when configured."""

from __future__ import annotations

from opentelemetry import trace
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
