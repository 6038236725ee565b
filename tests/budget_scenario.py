"""The budget concurrency scenario, shared by tests/test_budget_concurrency.py and bench/budget.

Real nats-server and redis-server, the simulated provider in this process, and several
`flipsync run router ledger` replicas as child processes (BudgetCluster). A burst of
concurrent requests of one tenant meets a budget of about a third of what they would all cost
(measured on a calibration tenant first, then set at run time through the budget.control
subject). Optionally one replica is SIGKILLed in the middle of the burst.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from PIL import Image

from bus import subjects
from bus.codec import decode, encode
from bus.llm_client import LlmClient
from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    ChatMessage,
    ErrorCode,
    ImagePart,
    LlmRequest,
    LlmResult,
    TextPart,
    now_ms,
)
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets import keys
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.control import publish_change
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.store import BudgetStore
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import eventually, make_request
from tests.replica_cluster import ReplicaCluster

AGENT = "listing"
MSG_ID = "Nats-Msg-Id"


@dataclass(kw_only=True)
class ScenarioResult:
    """What one burst measured; money in micro-dollars."""

    tenant: str
    requests: int
    replicas: int
    limit_micro_usd: int
    """The tenant's budget: about a third of the burst's estimated total cost."""
    estimated_total_micro_usd: int
    spent_micro_usd: int
    """Settled spend in the budget's counter."""
    ledger_micro_usd: int
    """The tenant's spend in the ledger aggregates."""
    results_micro_usd: int
    """Sum of the cost of every result the requesters got."""
    ok: int
    refused: int
    """Results with code over_budget."""
    other_errors: list[str]
    reserved_left: int
    """Still reserved in the budget's counter at the end (must be 0)."""
    held_left: int
    """Reservation records left at the end (must be 0)."""
    seconds: float
    duplicates: int = 0
    """Results delivered twice for one request (redeliveries); informative."""
    killed_holding: list[str] = field(default_factory=list)
    """Request ids holding reservations when a replica was killed (empty if none was)."""

    @property
    def overspend_micro_usd(self) -> int:
        """How far settled spend went past the limit (0 is the promise)."""
        return max(self.spent_micro_usd - self.limit_micro_usd, 0)

    @property
    def utilization(self) -> Decimal:
        """Settled spend over the limit."""
        return Decimal(self.spent_micro_usd) / Decimal(self.limit_micro_usd)


def _request(tenant: str, i: int, photo: str = "") -> LlmRequest:
    text = f"Write a title for item {i:05d}: a teal stoneware mug."
    request = make_request(tenant=tenant, agent=AGENT, text=text)
    if not photo:
        return request
    parts: list[TextPart | ImagePart] = [TextPart(text=text), ImagePart(url=photo, detail="high")]
    return msgspec.structs.replace(request, messages=[ChatMessage(role="user", content=parts)])


def photo_data_url(width: int = 900, height: int = 700) -> str:
    """A real PNG of that size as a data: URL: both the router and the provider see its pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 128, 128)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class BudgetCluster(ReplicaCluster):
    """Servers, a simulated provider and router+ledger replicas as child processes."""

    def __init__(
        self,
        folder: Path,
        *,
        replicas: int = 3,
        sim_latency_ms: float = 20.0,
        reservation_ttl_s: float = 5.0,
        ack_wait_s: float = 15.0,
        billing: str = "estimate",
        photos: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        """billing "provider" makes the simulated provider bill with another tokenizer and each
        model's own image rule (simulator/billing.py); photos adds a real PNG to each request;
        env adds to the replicas' environment (settings of their own)."""
        super().__init__(SimulatedProvider(SimConfig(latency_ms=sim_latency_ms, billing=billing)))
        self.replicas = replicas
        self.folder = folder
        """Where the budgets file and each replica's log are written."""
        self.reservation_ttl_s = reservation_ttl_s
        self.photo = photo_data_url() if photos else ""
        self.budgets_file = folder / "budgets.toml"
        self.budgets_file.write_text(
            f"[settings]\nreservation_ttl_s = {reservation_ttl_s}\nmax_wait_s = 90\n"
        )
        self.ack_wait_s = ack_wait_s
        self.extra_env = env or {}
        self.mean_cost = Decimal(0)
        self.sample: list[LlmResult] = []
        """The calibration requests' results."""
        self.duplicates = 0
        """Results received more than once (a request answered again after a redelivery)."""

    async def start(self, calibration: int = 20) -> None:
        """Start everything and measure what one request costs."""
        await self.start_servers()
        env = {
            **self.server_env(),
            "FLIPSYNC_BUDGET_CONFIG": str(self.budgets_file),
            "FLIPSYNC_ACK_WAIT_S": str(self.ack_wait_s),
            "FLIPSYNC_EXTRA_AGENTS": f'["{AGENT}"]',
            # A request waiting for budget room holds a router worker. Requests a replica has
            # fetched but has no worker for get no in-progress acks, so past ack_wait they are
            # redelivered and answered twice (bus.consumers); enough workers for the burst.
            "FLIPSYNC_ROUTER_WORKERS": "1100",
            **self.extra_env,
        }
        await self.start_replicas(env, self.replicas, ready_s=90, logs=self.folder)
        client = LlmClient(self.broker)
        sample = await asyncio.gather(
            *(
                client.request(_request("calibration", i, self.photo), 60)
                for i in range(calibration)
            )
        )
        assert all(r.ok for r in sample), [r.reason for r in sample if not r.ok]
        self.sample = list(sample)
        self.mean_cost = Decimal(sum(r.cost_micro_usd for r in sample)) / len(sample)

    @property
    def store(self) -> BudgetStore:
        """A budget store on the cluster's Redis, for reading counters."""
        assert self.redis is not None
        return BudgetStore(
            self.redis, LiveBudgets(self.redis, BudgetConfig.load(self.budgets_file))
        )

    async def set_budget(self, tenant: str, limit: int) -> None:
        """A daily budget for one tenant, set at run time on budget.control."""
        change = BudgetChange(
            change_id=uuid.uuid4().hex,
            set_budgets=[
                BudgetSpec(
                    name=f"{tenant}-daily",
                    scope=BudgetScope.TENANT,
                    period=BudgetPeriod.DAY,
                    limit_micro_usd=limit,
                    tenant=tenant,
                )
            ],
        )
        await publish_change(self.broker.connection.jetstream(), change)
        live = self.store.live

        async def in_force() -> bool:
            return f"{tenant}-daily" in (await live.load()).budgets

        await eventually(in_force, timeout_s=10)

    async def burst(
        self,
        tenant: str,
        requests: int,
        *,
        budget_share: Decimal = Decimal(1) / 3,
        kill_one: bool = False,
    ) -> ScenarioResult:
        """requests concurrent requests of tenant against budget_share of their cost."""
        estimated = int(self.mean_cost * requests)
        limit = int(estimated * budget_share)
        await self.set_budget(tenant, limit)
        store = self.store
        started = time.perf_counter()
        self.duplicates = 0
        answers = asyncio.create_task(self._send(tenant, requests))
        killed_holding: list[str] = []
        if kill_one:

            async def busy() -> bool:
                return await store.held() >= 6

            await eventually(busy, timeout_s=60)
            self.children[0].kill()
            killed_holding = await self._held_ids()
        results = await answers
        seconds = time.perf_counter() - started

        assert self.redis is not None
        aggregates = AggregateStore(self.redis)
        js = self.broker.connection.jetstream()

        async def quiet(stream: str, durable: str) -> None:
            """Wait until a consumer has every message of its stream acked (redeliveries of a
            killed replica's requests included)."""

            async def done() -> bool:
                info = await js.consumer_info(stream, durable)
                return bool(info.num_pending == 0 and info.num_ack_pending == 0)

            await eventually(done, timeout_s=self.ack_wait_s + 90)

        await quiet(subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)
        await quiet(subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER)

        async def all_released() -> bool:  # expired reservations go on the next script call
            await store.sweep()
            return await store.held() == 0

        await eventually(all_released, timeout_s=self.reservation_ttl_s + 30)
        spent, reserved = await store.counter(
            f"tenant:{tenant}:{period_key(BudgetPeriod.DAY, now_ms())}"
        )
        errors = [r for r in results if not r.ok]
        refused = [r for r in errors if r.error_code is ErrorCode.OVER_BUDGET]
        return ScenarioResult(
            tenant=tenant,
            requests=requests,
            replicas=self.replicas,
            limit_micro_usd=limit,
            estimated_total_micro_usd=estimated,
            spent_micro_usd=spent,
            ledger_micro_usd=(await aggregates.totals(tenant)).spend_micro_usd,
            results_micro_usd=sum(r.cost_micro_usd for r in results),
            ok=sum(1 for r in results if r.ok),
            refused=len(refused),
            other_errors=[f"{r.error_code}: {r.reason}" for r in errors if r not in refused],
            reserved_left=reserved,
            held_left=await store.held(),
            seconds=seconds,
            killed_holding=killed_holding,
            duplicates=self.duplicates,
        )

    async def _held_ids(self) -> list[str]:
        assert self.redis is not None
        ids: set[str] = set()
        for group in await self.redis.smembers(keys.GROUPS):
            name = group.decode() if isinstance(group, bytes) else str(group)
            raw = await self.redis.zrange(keys.reservations(name), 0, -1)
            ids.update(r.decode() if isinstance(r, bytes) else str(r) for r in raw)
        return sorted(ids)

    async def _send(self, tenant: str, requests: int) -> list[LlmResult]:
        """Publish every request at once (all in flight together), then one result each.

        One subscription and sequential publishes: a thousand concurrent publishes would only
        measure how long JetStream takes to ack them on a loaded two-core machine.
        """
        nc = self.broker.connection
        js = nc.jetstream()
        got: dict[str, LlmResult] = {}
        done = asyncio.Event()

        async def on_result(msg: Msg) -> None:
            result = decode(msg.data, LlmResult)
            if result.request_id in got:  # a redelivered request republishes its result
                self.duplicates += 1
            got.setdefault(result.request_id, result)
            if len(got) == requests:
                done.set()

        sub = await nc.subscribe(f"llm.result.{subjects.token(tenant)}.>", cb=on_result)
        try:
            burst = [_request(tenant, i, self.photo) for i in range(requests)]
            for request in burst:
                await js.publish(
                    subjects.llm_request(request.tenant, request.agent),
                    encode(request),
                    headers={MSG_ID: request.id},
                )
            async with asyncio.timeout(240):
                await done.wait()
        finally:
            await sub.unsubscribe()
        return [got[r.id] for r in burst]
