"""Composition, done once: servers (embedded or external), then the services on one broker."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from agents.chat import ChatService
from agents.dag import WorkflowDag
from agents.runtime import AgentRuntime
from agents.specs import ALL_SPECS, WORKFLOW_SPECS
from agents.workflow import WorkflowService
from api.app import create_app as create_api_app
from api.server import ApiServer, connection_limits
from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.liveness import Liveness, ThreadLiveness, thread_liveness
from bus.nats_auth import ADMIN as NATS_ADMIN
from bus.nats_auth import EmbeddedAuth, embedded_auth, settings_broker_options
from bus.pull_loop import LiveConsumer
from bus.reachable import reach_nats, reach_redis, redact_url
from bus.redis_client import make_redis
from bus.redis_memory import MemoryWatch, refuse_evicting
from bus.settings import Settings
from bus.stopping import Stopping
from bus.streams import ensure_streams
from bus.tracing import make_tracer_provider
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.runtime import BudgetRuntime
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.consumer import LedgerConsumer
from flipsync.native_threads import one_native_thread
from flipsync.providers import dispatch_health, start_providers
from notifier import NotifierService
from optimizer.arm_stats import experiment_router
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
from simulator.config import SimConfig
from simulator.server import SimulatedProvider


class Service(enum.StrEnum):
    """A service `flipsync run` can start; the embedded stack runs all of them."""

    PROVIDER = "provider"  # the simulated provider (only when no real one is configured)
    ROUTER = "router"
    LEDGER = "ledger"
    WORKFLOW = "workflow"
    AGENTS = "agents"
    API = "api"  # the HTTP API (api/) on settings.api_host:api_port
    NOTIFIER = "notifier"  # budget alerts to webhooks and email (notifier/)


ALL_SERVICES = frozenset(Service) - {Service.API}
"""The embedded stack's services: the HTTP API listens on a port, so it runs only when asked."""


@dataclass(kw_only=True)
class Stack:
    """A running set of FlipSync services and the servers they use."""

    settings: Settings
    broker: NatsBroker
    redis: aioredis.Redis
    catalog: PriceCatalog
    tracer_provider: TracerProvider
    nats_url: str
    redis_url: str
    simulated: bool
    sim: SimulatedProvider | None = None
    registry: ProviderRegistry | None = None
    embedded: list[EmbeddedNats | EmbeddedRedis] = field(default_factory=list)
    nats_auth: EmbeddedAuth | None = None
    """The embedded nats-server's users and passwords, when it runs with FLIPSYNC_NATS_AUTH."""
    budgets: BudgetStore | None = None
    """The budgets (reservations, counters, status), in a stack with a router or ledger."""
    api: ApiServer | None = None
    """The HTTP API server, in a stack running the api service."""
    notifier: NotifierService | None = None
    """The alert notifier, in a stack running the notifier service."""
    budget_runtime: BudgetRuntime | None = None
    """The budgets' runtime (its watch rebuilds counters a Redis restart lost)."""
    live_consumers: list[LiveConsumer] = field(default_factory=list)
    """Consumers on nats-py directly (bus.pull_loop): the hot path's, outside the broker."""
    stopping: Stopping = field(default_factory=Stopping)
    """Set when the stop begins: the agents give way at once (bus.stopping)."""
    liveness: ThreadLiveness | None = None
    """Renews the router's leases off the event loop (bus.liveness), in a stack with a router."""
    memory_watch: MemoryWatch | None = None
    """Logs when Redis nears its memory limit (bus.redis_memory), with a router or ledger."""

    @property
    def aggregates(self) -> AggregateStore:
        """The ledger's aggregate view in Redis."""
        return AggregateStore(self.redis)

    async def stop(self) -> None:
        """Stop services, then the servers this stack started; leaves no process behind.

        Handlers get settings.stop_grace_s; the servers are stopped even if this is
        cancelled half-way (a second Ctrl-C: flipsync.exit_status).
        """
        self.stopping.set()
        try:
            await self._stop_services()
        finally:
            for server in reversed(self.embedded):
                await server.stop()  # SIGTERM at once, so even a cancelled wait stops it

    async def _stop_services(self) -> None:
        if self.api is not None:
            await self.api.stop()
        if self.budget_runtime is not None:
            await self.budget_runtime.close()
        for consumer in self.live_consumers:
            await consumer.stop()
        if self.liveness is not None:
            await self.liveness.stop()
        if self.memory_watch is not None:
            await self.memory_watch.stop()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self.notifier is not None:
            await self.notifier.close()
        if self.registry is not None:
            await self.registry.close()
        await self.redis.aclose()
        if self.sim is not None:
            await self.sim.stop()
        self.tracer_provider.shutdown()


async def start_stack(
    settings: Settings,
    services: Iterable[Service] = ALL_SERVICES,
    *,
    sim_config: SimConfig | None = None,
    span_exporter: SpanExporter | None = None,
) -> Stack:
    """Start the servers that are not configured, then the services, on one connection."""
    one_native_thread()  # numpy's products on one thread: the event loop is the concurrency
    wanted = frozenset(services)
    embedded: list[EmbeddedNats | EmbeddedRedis] = []
    try:
        nats_url = settings.nats_url
        nats_options = settings_broker_options(settings)
        nats_auth: EmbeddedAuth | None = None
        if nats_url is None:
            if settings.nats_auth:  # FlipSync's users and permissions, throwaway passwords
                nats_auth = embedded_auth(settings, [spec.name for spec in ALL_SPECS])
                nats_options = nats_auth.broker_options(settings.nats_user or NATS_ADMIN)
            nats = EmbeddedNats(
                settings.data_dir / "nats" if settings.data_dir else None,
                extra_config=nats_auth.config if nats_auth else "",
                env=nats_auth.environment if nats_auth else None,
            )
            await nats.start()
            embedded.append(nats)
            nats_url = nats.url
        redis_url = settings.redis_url
        if redis_url is None:
            redis = EmbeddedRedis(
                settings.data_dir / "redis" if settings.data_dir else None,
                persist=settings.data_dir is not None,
            )
            await redis.start()
            embedded.append(redis)
            redis_url = redis.url
    except BaseException:
        for server in reversed(embedded):
            await server.stop()
        raise

    sim: SimulatedProvider | None = None
    redis_client: aioredis.Redis | None = None
    registry: ProviderRegistry | None = None
    try:  # until the Stack owns them, a failure here must not leave servers running
        tracer_provider = make_tracer_provider(
            settings.service_name, settings.otlp_endpoint, span_exporter
        )
        catalog = PriceCatalog.load()
        if not settings.real_provider and Service.PROVIDER in wanted:
            sim = SimulatedProvider(
                sim_config
                or SimConfig(
                    latency_ms=settings.sim_latency_ms,
                    batch_completion_s=settings.sim_batch_delay_s,
                    stream_token_ms=settings.sim_stream_token_ms,
                )
            )
            await sim.start()
        simulated_url = sim.base_url if sim else settings.sim_base_url
        redis_client = make_redis(redis_url, cluster=settings.redis_cluster)
        broker = make_broker(
            nats_url,
            tracer_provider=tracer_provider,
            client_name="flipsync",
            graceful_timeout=settings.stop_grace_s,
            **nats_options,
        )
        stopping = Stopping()
        budgets: BudgetRuntime | None = None
        live: list[LiveConsumer] = []
        # A router's reservations, paid-call leases and dedup claims, renewed off the loop.
        liveness = (
            thread_liveness(redis_url, cluster=settings.redis_cluster)
            if Service.ROUTER in wanted and settings.lease_renewal == "thread"
            else None  # beats on the loop (bus.liveness.LoopLiveness)
        )
        if wanted & {Service.ROUTER, Service.LEDGER}:
            budgets = BudgetRuntime(settings, redis_client, broker, liveness=liveness)
            broker.include_router(budgets.control_router())
        semantic: SemanticCache | None = None
        if Service.ROUTER in wanted:
            registry = await start_providers(settings, catalog, simulated_url)
            assert budgets is not None
            # One MiniLM embedder per process for the semantic cache, batching its lookups
            # (routing's per-prompt vectors are static: router.routing.static_embedder).
            embedder = None
            if settings.enable_semantic_cache:
                embedder = BatchEmbedder(build_embedder(settings.semantic))
            semantic = build_semantic_cache(settings, redis_client, embedder=embedder)
            # In process: the route stage reads it; verdicts on what this replica routed,
            # and what the other replicas filed (through Redis), feed it.
            neighbours = OutcomeMemory() if settings.routing.neighbours else None
            if neighbours is not None:
                live.append(
                    SharedOutcomes(
                        neighbours, redis_client, keep=settings.routing.neighbours_shared
                    )
                )
            # Agents' verdicts and judges' scores graded in one place, which publishes the
            # grade alerts (router.routing.grade_alerts).
            grades = GradeStore(
                redis_client,
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
                redis_client,
                budgets.store,
                semantic,
                neighbours,
                grades,
                liveness,
            )
            live.append(service)
            signals = QualityStore(redis_client, discount=settings.routing.quality_discount)
            verdicts = verdicts_of(semantic) if semantic is not None else None
            broker.include_router(
                quality_router(
                    signals,
                    settings=settings,
                    grades=grades,
                    verdicts=verdicts,
                )  # fmt: skip
            )
        if Service.LEDGER in wanted:
            assert budgets is not None
            tracer = tracer_provider.get_tracer("flipsync.ledger")
            # After the router in `live`: the router's stop publishes its last events, then
            # the ledger's applies them. On an embedded server it is the only ledger there
            # will be before the server stops: it applies what the stream holds first.
            drain_s = settings.stop_grace_s if settings.nats_url is None else 0.0
            ledger = LedgerConsumer(
                budgets.ledger_view(), settings=settings, tracer=tracer, drain_s=drain_s
            )
            live.append(ledger)
            broker.include_router(experiment_router(redis_client, settings))  # per-arm sums
        notifier: NotifierService | None = None
        if Service.NOTIFIER in wanted:
            notifier = NotifierService(settings, redis_client)
            broker.include_router(notifier.router())
        if Service.WORKFLOW in wanted:
            dag = WorkflowDag(WORKFLOW_SPECS)
            workflow = WorkflowService(dag, settings, broker, catalog=catalog)
            broker.include_router(workflow.router())
        if Service.AGENTS in wanted:
            tracer = tracer_provider.get_tracer("flipsync.agents")
            runtime = AgentRuntime(
                WORKFLOW_SPECS,
                settings=settings,
                broker=broker,
                catalog=catalog,
                tracer=tracer,
                stopping=stopping,
            )
            broker.include_router(runtime.router())
            broker.include_router(ChatService(settings, broker).router())
        stack = Stack(
            settings=settings,
            broker=broker,
            redis=redis_client,
            catalog=catalog,
            tracer_provider=tracer_provider,
            nats_url=nats_url,
            redis_url=redis_url,
            simulated=not settings.real_provider,
            sim=sim,
            registry=registry,
            embedded=embedded,
            nats_auth=nats_auth,
            budgets=budgets.store if budgets is not None else None,
            notifier=notifier,
            live_consumers=live,
            stopping=stopping,
            liveness=liveness,
        )
    except BaseException:
        if registry is not None:  # its provider clients' connection pools
            await _quietly(registry.close())
        if redis_client is not None:  # owns its pool: this closes the pool too
            await _quietly(redis_client.aclose())
        if sim is not None:
            await sim.stop()
        for server in reversed(embedded):
            await server.stop()
        raise
    try:
        if settings.redis_url is not None:  # a configured Redis that is not there: say so now
            await reach_redis(redis_client, redis_url, settings.connect_timeout_s)
            if wanted & {Service.ROUTER, Service.LEDGER}:  # money is kept there
                await refuse_evicting(redis_client, redact_url(redis_url))
        if wanted & {Service.ROUTER, Service.LEDGER}:
            stack.memory_watch = MemoryWatch(redis_client, redact_url(redis_url))
            stack.memory_watch.start()
        if liveness is not None:
            liveness.start()
        await reach_nats(nats_url, broker.connect, settings.connect_timeout_s)
        await ensure_streams(broker.connection.jetstream(), settings)
        if budgets is not None:  # rules loaded, counters rebuilt if Redis lost them
            await budgets.start(broker.connection.jetstream())
            stack.budget_runtime = budgets
            if Service.LEDGER in wanted:  # the ledger's processes watch for a lost Redis
                budgets.watch(broker.connection.jetstream())
        if semantic is not None:  # its index rebuilt from what Redis holds
            await semantic.start()
        await broker.start()
        for consumer in live:
            await consumer.start(broker.connection)
        if notifier is not None:
            notifier.start()
        if Service.API in wanted:
            await load_registered(redis_client, catalog)  # fine-tuned models, for cost views
            app = create_api_app(broker, redis_client, settings, catalog=catalog)
            stack.api = ApiServer(
                app, settings.api_host, settings.api_port, limits=connection_limits(settings)
            )
            await stack.api.start()
    except BaseException:
        await stack.stop()
        raise
    return stack


async def _quietly(closing: Awaitable[object]) -> None:
    """Await a clean-up step of a failed start; its own failure must not hide the first."""
    with contextlib.suppress(Exception):
        await closing


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
