"""The pipeline as an onion of stages: each stage wraps the rest and may answer by itself.

Reserve-before/settle-after (budget), store-after (cache) and wait-for-the-leader (dedup)
all need the answer of the stages after them, so a stage is a middleware around the rest
rather than a hop that forwards and forgets. Each stage runs in its own span, built only
when the request's span is recorded: an unsampled request walks a chain with no span at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from opentelemetry import trace

from bus.messages import LlmResult
from bus.tracing import samples_roots
from router.context import RequestContext

Handler = Callable[[RequestContext], Awaitable[LlmResult]]


class Stage(Protocol):
    """One pipeline stage: do its job, then call the rest (or answer without calling it)."""

    name: str

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Handle ctx, usually by awaiting call_next(ctx)."""
        ...


@runtime_checkable
class Closes(Protocol):
    """A stage (or terminal) with work or tasks of its own beyond a request's answer:
    shadow checks, judgements, packing windows, batch polling, a lost-call reaper."""

    async def close(self) -> None:
        """Finish the work it started and stop its own tasks (the service is stopping)."""
        ...


async def close_stages(stages: Sequence[object], timeout_s: float) -> bool:
    """Close the stages that have something to close, outermost first (an off-path call of
    an outer stage still goes through the inner ones), within timeout_s in all; False if
    that was not enough (what is left runs on: a paid call in it stays under its lease)."""
    closing = [stage for stage in stages if isinstance(stage, Closes)]

    async def in_order() -> None:
        for stage in closing:
            await stage.close()

    if not closing:
        return True
    task = asyncio.ensure_future(in_order())
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if done:
        task.result()  # a close that failed is the caller's to log
    return bool(done)


def compose(stages: Sequence[Stage], terminal: Handler, tracer: trace.Tracer) -> Handler:
    """Chain stages around a terminal handler, outermost first; a span per stage only when
    the sampler will record it (see will_record)."""
    traced = _traced(terminal, "dispatch", tracer)
    plain = terminal
    for stage in reversed(stages):
        traced = _traced(_bind(stage, traced), stage.name, tracer)
        plain = _bind(stage, plain)

    roots = samples_roots(tracer)

    async def run(ctx: RequestContext) -> LlmResult:
        return await (traced(ctx) if will_record(roots) else plain(ctx))

    return run


def will_record(roots: bool = True) -> bool:
    """Whether spans started now may be recorded: the current span is recorded, or there is
    none and a new root is up to the sampler (roots: whether it may ever record one).
    FlipSync's samplers follow the parent (bus.tracing), so the child of an unsampled span is
    never recorded."""
    span = trace.get_current_span()
    return span.is_recording() or (roots and not span.get_span_context().is_valid)


def _bind(stage: Stage, call_next: Handler) -> Handler:
    async def run(ctx: RequestContext) -> LlmResult:
        return await stage(ctx, call_next)

    return run


def _traced(handler: Handler, name: str, tracer: trace.Tracer) -> Handler:
    async def run(ctx: RequestContext) -> LlmResult:
        with tracer.start_as_current_span(f"stage {name}") as span:
            span.set_attribute("flipsync.stage", name)
            result = await handler(ctx)
            span.set_attribute("flipsync.lever", str(result.lever))
            span.set_attribute("flipsync.status", str(result.status))
            return result

    return run


class PassThrough:
    """A stage whose lever is not built yet: it hands every request to the rest unchanged."""

    name = "pass"

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Call the rest of the pipeline."""
        return await call_next(ctx)
