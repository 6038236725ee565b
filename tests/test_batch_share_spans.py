"""A request answered from a Batch API batch has a span in its own trace: its share of the
batch, linked to the batch's own span, with the request's tokens and cost."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus.messages import Lever, LlmResult
from bus.settings import Settings
from flipsync.providers import SIMULATED, provider_configs
from router.batching.batch_api import BatchApiClient
from router.batching.lane import BatchLane
from router.batching.policy import BatchPolicy
from router.batching.share_span import SHARE_ATTRIBUTE, SHARED_ID_ATTRIBUTE
from router.context import RequestContext
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.test_batch_api import CATALOG, contexts


def traced_lane(redis: aioredis.Redis, sim: SimulatedProvider, tracer: trace.Tracer) -> BatchLane:
    """A Batch API lane as one router replica has it, its spans going to tracer."""
    config = provider_configs(Settings(), CATALOG, sim.base_url)[0]
    return BatchLane(
        policy=BatchPolicy(window_ms=50, turnaround_s=30),
        clients={SIMULATED: BatchApiClient(config, timeout_s=10, max_retries=0)},
        catalog=CATALOG,
        baseline_model="gpt-4o",
        redis=redis,
        poll_s=0.05,
        tracer=tracer,
    )


async def test_each_batched_request_has_its_share_in_its_own_trace(
    redis_client: aioredis.Redis,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    async with SimulatedProvider(SimConfig(batch_completion_s=0.2)) as sim:
        batch_lane = traced_lane(redis_client, sim, tracer)

        async def submit(ctx: RequestContext) -> tuple[int, LlmResult]:
            # Each request in a trace of its own, as three workflows' requests would be.
            with tracer.start_as_current_span("stage batch") as span:
                outcome = await batch_lane.submit(ctx)
                assert isinstance(outcome, LlmResult), outcome
                return span.get_span_context().trace_id, outcome

        held = contexts(f"b{uuid.uuid4().hex[:8]}", 3)
        answered = await asyncio.gather(*(submit(ctx) for ctx in held))
        await batch_lane.close()

    spans = exporter.get_finished_spans()
    (create,) = [s for s in spans if s.name == "batch create"]
    shares = [s for s in spans if s.attributes and SHARE_ATTRIBUTE in s.attributes]
    assert len(shares) == 3
    by_trace = {s.context.trace_id: s for s in shares}
    for trace_id, result in answered:
        assert result.lever is Lever.BATCH_API and result.ok
        share = by_trace[trace_id]  # in the request's own trace, not the batch's
        assert share.context.trace_id != create.context.trace_id
        assert share.parent is not None and share.parent.trace_id == trace_id
        assert [link.context.span_id for link in share.links] == [create.context.span_id]
        attrs = share.attributes or {}
        assert attrs["flipsync.request_id"] == result.request_id
        assert attrs[SHARED_ID_ATTRIBUTE] == (create.attributes or {})["flipsync.batch_id"]
        assert attrs["flipsync.cost_micro_usd"] == result.cost_micro_usd > 0
        assert attrs["gen_ai.usage.input_tokens"] == result.usage.input_tokens > 0
        assert attrs["gen_ai.usage.output_tokens"] == result.usage.output_tokens > 0
