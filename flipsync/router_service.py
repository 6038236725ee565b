"""The router service as the stack composes it: its pipeline of stages (request ids, flags,
the levers, routing, budget, batching, dispatch), and the semantic cache, outcome memory,
grades and quality feedback around it, on the stack's broker and Redis."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from opentelemetry.sdk.trace import TracerProvider

from agents.specs import ALL_SPECS
from bus.liveness import Liveness
from bus.pull_loop import LiveConsumer
from bus.settings import Settings
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from flipsync.providers import dispatch_health
from optimizer.models import load_registered
from router.flags.live import LiveFlags
from router.paid_answers import PaidAnswers
from router.pipeline import Stage
from router.providers.registry import ProviderRegistry
from router.providers.streaming import ChunkRelays
from router.routing.feedback import quality_router
from router.routing.grade_alerts import JetStreamGradeAlerts
from router.routing.grades import GradeStore
from router.routing.neighbour_share import SharedOutcomes
from router.routing.neighbours import OutcomeMemory
from router.routing.quality_store import QualityStore
from router.semantic.batching import BatchEmbedder
from router.semantic.build import build_embedder, build_semantic_cache
from router.semantic.shadow import ledger_booking, shadow_checks
from router.semantic.store import SemanticCache
from router.semantic.verdicts import verdicts_of
from router.service import RouterService
from router.stages.batch import batch_stage
from router.stages.budget import BudgetStage, offered_by
from router.stages.dispatch import Dispatcher
from router.stages.flags import FlagsStage
from router.stages.ids import RequestIdStage
from router.stages.levers import lever_stages
from router.stages.route_setup import routing_stages


@dataclass(frozen=True, kw_only=True)
class ComposedRouter:
    """What the stack starts (and stops) of a composed router."""

    consumers: list[LiveConsumer]
    """Its consumers on nats-py directly, in start order: shared outcomes (when on), the router."""
    semantic: SemanticCache | None
    """The semantic cache, its index rebuilt from Redis before the broker starts."""


def compose_router(
    settings: Settings,
    registry: ProviderRegistry,
    catalog: PriceCatalog,
    tracer_provider: TracerProvider,
    broker: NatsBroker,
    redis: aioredis.Redis,
    budgets: BudgetStore,
    liveness: Liveness | None,
) -> ComposedRouter:
    """The router service and what feeds it; its control and feedback routers are included
    in broker, the rest is the stack's to start."""
    consumers: list[LiveConsumer] = []
    # One MiniLM embedder per process for the semantic cache, batching its lookups
    # (routing's per-prompt vectors are static: router.routing.static_embedder).
    embedder = None
    if settings.enable_semantic_cache:
        embedder = BatchEmbedder(build_embedder(settings.semantic))
    semantic = build_semantic_cache(settings, redis, embedder=embedder)
    # In process: the route stage reads it; verdicts on what this replica routed,
    # and what the other replicas filed (through Redis), feed it.
    neighbours = OutcomeMemory() if settings.routing.neighbours else None
    if neighbours is not None:
        consumers.append(SharedOutcomes(neighbours, redis, keep=settings.routing.neighbours_shared))
    # Agents' verdicts and judges' scores graded in one place, which publishes the
    # grade alerts (router.routing.grade_alerts).
    grades = GradeStore(
        redis,
        alerts=JetStreamGradeAlerts(broker),
        default=settings.routing.grade,
        by_agent=settings.routing.grade_by_agent,
    )
    service = _router_service(
        settings,
        registry,
        catalog,
        tracer_provider,
        broker,
        redis,
        budgets,
        semantic,
        neighbours,
        grades,
        liveness,
    )
    consumers.append(service)
    signals = QualityStore(redis, discount=settings.routing.quality_discount)
    verdicts = verdicts_of(semantic) if semantic is not None else None
    broker.include_router(
        quality_router(
            signals,
            settings=settings,
            grades=grades,
            verdicts=verdicts,
        )  # fmt: skip
    )
    return ComposedRouter(consumers=consumers, semantic=semantic)


def _router_service(
    settings: Settings,
    registry: ProviderRegistry,
    catalog: PriceCatalog,
    tracer_provider: TracerProvider,
    broker: NatsBroker,
    redis: aioredis.Redis,
    budgets: BudgetStore,
    semantic: SemanticCache | None,
    neighbours: OutcomeMemory | None = None,
    grades: GradeStore | None = None,
    liveness: Liveness | None = None,
) -> RouterService:
    """The router service: its stages in order, then the dispatcher that calls providers."""
    tracer = tracer_provider.get_tracer("flipsync.router")
    health = dispatch_health(settings, redis)  # dispatch's calls and the packer's, counted
    paid = PaidAnswers(
        redis,
        broker,
        catalog,
        lambda: catalog.version,
        # Well under ack_wait (a redelivery finds the lost call booked) and under the budget
        # reservation's TTL (a lost call is settled into the budgets, within what the dead
        # request reserved, before that reservation is released).
        lease_s=min(settings.ack_wait_s, budgets.engine.reservation_ttl_s) / 4,
        # A kept answer serves only the redelivery after its replica died (ack_wait later);
        # once the result is stored, redeliveries find that instead. Bounded: rate x TTL.
        answer_ttl_s=settings.ack_wait_s * 3,
        budgets=budgets,
        liveness=liveness,
    )
    route, cascade = routing_stages(
        settings,
        registry,
        catalog,
        redis,
        budgets,
        book=ledger_booking(broker),  # routing's own calls, booked as its lever cost
        catalog_version=lambda: catalog.version,
        neighbours=neighbours,
        grades=grades,
    )
    # Each reload of the flags also loads fine-tuned models registered at run time.
    flags = LiveFlags(redis, on_reload=lambda: load_registered(redis, catalog, registry))
    broker.include_router(flags.control_router())  # flags.control: reload without a restart
    stages: list[Stage] = [
        RequestIdStage(redis),  # an id another tenant owns is refused before anything else
        FlagsStage(flags),
        *lever_stages(
            settings,
            catalog=catalog,
            redis=redis,
            broker=broker,
            semantic=semantic,
            near_duplicates=semantic,
            liveness=liveness,
            shadow=shadow_checks(settings, semantic, broker, lambda: catalog.version),
        ),
        route,
        cascade.around(
            BudgetStage(
                budgets,
                catalog,
                offered_by(registry),
                overrun_alerts=JetStreamAlerts(broker),
                book_lost_calls=paid.reap,
            ),
            lambda: catalog.version,
        ),
        batch_stage(
            settings,
            registry=registry,
            catalog=catalog,
            redis=redis,
            tracer=tracer,
            leases=paid,
            health=health.store,
        ),
    ]
    return RouterService(
        settings=settings,
        stages=stages,
        terminal=Dispatcher(
            registry,
            catalog,
            settings.baseline_model,
            tracer,
            health=health,
            provider_timeout_s=settings.provider_timeout_s,
            paid=paid,
            relays=ChunkRelays(broker),  # a streamed /v1 call's text, as it arrives
        ),
        catalog_version=lambda: catalog.version,  # fine-tuned models change it at run time
        known_agents=frozenset(spec.name for spec in ALL_SPECS)
        | settings.extra_agents
        | {settings.openai_agent},  # the OpenAI-compatible endpoint's calls (api/)
        broker=broker,
        tracer=tracer,
    )
