"""Batching: pack compatible small requests into one call, send bulk ones to the Batch API.

The way each request goes is the pure ``router.batching.policy.decide``. A held request comes
back with its own result, or is told to go alone: then it is dispatched on its own (the rest
of the pipeline), carrying any share of an earlier paid call, so every share is recorded.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from opentelemetry import trace

from bus.messages import Lever, LlmResult
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from router.batching.batch_api import BatchApiClient
from router.batching.lane import BatchLane
from router.batching.outcome import retry_refused, with_share
from router.batching.packer import Packer
from router.batching.policy import BatchPolicy, PackPolicy, Path, decide
from router.batching.windows import now_ms
from router.context import RequestContext
from router.health.store import HealthStore
from router.paid_answers import PaidAnswers
from router.pipeline import Handler
from router.providers.registry import ProviderRegistry

SIM_TURNAROUND_MARGIN_S = 2.0
"""Added to the simulated provider's batch delay, window and poll for its turnaround."""


class BatchStage:
    """Send each request the way the batching policy says: packed, batched, or straight on."""

    name = "batch"

    def __init__(
        self,
        *,
        pack: PackPolicy,
        batch: BatchPolicy,
        packer: Packer | None = None,
        lane: BatchLane | None = None,
    ) -> None:
        self._pack = pack
        self._batch = batch if lane is not None else BatchPolicy(enabled=False)
        self._packer = packer
        self._lane = lane
        if packer is None:
            self._pack = PackPolicy(max_items=1)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Hold the request in a packing window or a batch, or call the rest."""
        route = ctx.route
        if route is None:
            return await call_next(ctx)
        decision = decide(
            ctx.request,
            model=route.model,
            provider=route.provider,
            now_ms=now_ms(),
            pack=self._pack,
            batch=self._batch,
            batch_held=self._lane.held if self._lane else 0,
        )
        span = trace.get_current_span()
        span.set_attribute("flipsync.batch_path", str(decision.path))
        span.set_attribute("flipsync.batch_reason", decision.reason)
        off = ctx.disabled_levers  # the levers a flag switched off for this request
        if decision.path is Path.BATCH_API and self._lane and Lever.BATCH_API not in off:
            outcome = await self._lane.submit(ctx)
        elif decision.path is Path.PACK and self._packer is not None and Lever.PACKED not in off:
            outcome = await self._packer.submit(decision.key, ctx)
        else:
            return await call_next(ctx)
        if isinstance(outcome, LlmResult):
            return outcome
        span.set_attribute("flipsync.batch_alone", outcome.reason)
        # The share already paid is spent on top of the retry's own maximum: reserve it too.
        if not await ctx.reserve_more(outcome.cost_micro_usd):
            return retry_refused(ctx, outcome)
        ctx.shared_micro_usd += outcome.cost_micro_usd  # committed: the retry needs room beside it
        return with_share(await call_next(ctx), outcome)

    async def close(self) -> None:
        """Send open packing windows and stop polling batches."""
        if self._packer is not None:
            await self._packer.close()
        if self._lane is not None:
            await self._lane.close()


def batch_stage(
    settings: Settings,
    *,
    registry: ProviderRegistry,
    catalog: PriceCatalog,
    redis: aioredis.Redis,
    tracer: trace.Tracer,
    leases: PaidAnswers | None = None,
    health: HealthStore | None = None,
) -> BatchStage:
    """The batch stage as Settings configure it (health: where packed calls are counted)."""
    pack = PackPolicy(
        max_items=settings.pack_max_items,
        window_ms=settings.pack_window_ms,
        max_input_tokens=settings.pack_max_input_tokens,
        max_output_tokens=settings.pack_max_output_tokens,
        deadline_slack_ms=settings.pack_deadline_slack_ms,
        bulk_window_ms=settings.pack_window_ms_bulk,
    )
    turnaround = settings.batch_turnaround_s
    if turnaround is None:  # a real provider promises 24 h; the simulator its own delay
        turnaround = 24 * 3600.0
        if registry.simulated:
            turnaround = (
                settings.sim_batch_delay_s
                + settings.batch_window_ms / 1000
                + settings.batch_poll_s
                + SIM_TURNAROUND_MARGIN_S
            )
    batch = BatchPolicy(
        enabled=settings.batch_api,
        max_items=settings.batch_max_items,
        window_ms=settings.batch_window_ms,
        turnaround_s=turnaround,
        max_held=max(settings.router_workers // 2, 1),
    )
    baseline = settings.baseline_model
    packer = (
        Packer(pack, registry, catalog, baseline, tracer, leases, health) if pack.enabled else None
    )
    lane = None
    if batch.enabled:
        clients = {
            name: BatchApiClient(
                registry.get(name).config,
                timeout_s=settings.provider_timeout_s,
                max_retries=settings.provider_max_retries,
            )
            for name in registry.names()
        }
        lane = BatchLane(
            policy=batch,
            clients=clients,
            catalog=catalog,
            baseline_model=baseline,
            redis=redis,
            poll_s=settings.batch_poll_s,
            tracer=tracer,
        )
    return BatchStage(pack=pack, batch=batch, packer=packer, lane=lane)
