"""Composition, done once: servers (embedded or external), then the services on one broker.

The servers are started by flipsync.servers, the router's pipeline is composed by
flipsync.router_service; this module wires every service onto one connection and stops them.
"""

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
from agents.specs import WORKFLOW_SPECS
from agents.workflow import WorkflowService
from api.app import create_app as create_api_app
from api.server import ApiServer, connection_limits
from bus.broker import make_broker, stop_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.liveness import ThreadLiveness, thread_liveness
from bus.nats_auth import EmbeddedAuth
from bus.pull_loop import LiveConsumer
from bus.reachable import reach_nats, reach_redis, redact_url
from bus.redis_client import make_redis
from bus.redis_memory import MemoryWatch, refuse_evicting
from bus.settings import Settings
from bus.stopping import Stopping
from bus.streams import ensure_streams
from bus.tracing import make_tracer_provider
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.runtime import BudgetRuntime
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.consumer import LedgerConsumer
from flipsync.native_threads import one_native_thread
from flipsync.providers import start_providers
from flipsync.router_service import compose_router
from flipsync.servers import start_servers
from notifier import NotifierService
from optimizer.arm_stats import experiment_router
from optimizer.models import load_registered
from router.providers.registry import ProviderRegistry
from router.semantic.store import SemanticCache
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
        with contextlib.suppress(Exception):  # the rest is stopped either way
            await stop_broker(self.broker)  # closes the connection when the stop fails
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
    servers = await start_servers(settings)
    embedded, nats_url, redis_url = servers.embedded, servers.nats_url, servers.redis_url

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
            **servers.nats_options,
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
            router = compose_router(
                settings,
                registry,
                catalog,
                tracer_provider,
                broker,
                redis_client,
                budgets.store,
                liveness,
            )
            live.extend(router.consumers)
            semantic = router.semantic
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
            nats_auth=servers.nats_auth,
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
