"""A request's share of a shared call (a packed call or a Batch API batch), in its own trace.

The shared call serves several workflows, so it lives in a trace of its own. Each request it
served gets a span in its own workflow's trace, under the request's batch stage, linked to
the shared call and carrying the request's share of tokens and cost: a product's trace shows
every call it paid for, and the shares of one call add up to the call.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Status, StatusCode

from bus.messages import Usage

SHARE_ATTRIBUTE = "flipsync.shared_call"
"""On a share span: the kind of call it is a share of, "packed" or "batch_api"."""
SHARED_ID_ATTRIBUTE = "flipsync.shared_call_id"
"""On a share span: the pack id or batch id of the shared call."""


def record_share(
    tracer: trace.Tracer,
    parent: trace.SpanContext,
    *,
    shared: trace.SpanContext | None,
    kind: str,
    call_id: str,
    model: str,
    request_id: str,
    usage: Usage,
    cost_micro_usd: int,
    start_ns: int,
    problem: str = "",
) -> None:
    """One span under parent, from start_ns to now, linked to the shared call it is a share of."""
    if not parent.is_valid:
        return
    links = [trace.Link(shared)] if shared is not None and shared.is_valid else []
    span = tracer.start_span(
        f"chat {model} {kind} share",
        context=trace.set_span_in_context(NonRecordingSpan(parent)),
        kind=trace.SpanKind.CLIENT,
        links=links,
        start_time=start_ns,
    )
    if span.is_recording():
        span.set_attributes(
            {
                SHARE_ATTRIBUTE: kind,
                SHARED_ID_ATTRIBUTE: call_id,
                "flipsync.request_id": request_id,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "flipsync.cached_input_tokens": usage.cached_input_tokens,
                "flipsync.cost_micro_usd": cost_micro_usd,
            }
        )
        if problem:
            span.set_status(Status(StatusCode.ERROR, problem))
    span.end()
