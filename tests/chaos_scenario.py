"""Routers killed while calls are at the provider, under load: nothing lost, nothing unbooked.

Real nats-server and redis-server, the simulated provider in this process (slow: each call
takes 300-800 ms, so a kill surely catches calls in flight), and `flipsync run router
ledger` replicas as child processes. Requests are published in waves; meanwhile a replica is
SIGKILLed now and then and a fresh one started in its place. At the end:
- lost: requests with no result;
- provider_calls: completions the provider produced (and so billed);
- booked_calls: ledger events that paid a call (a lost call's included);
- ledger_minus_provider_micro_usd: the ledger's spend minus what the provider billed;
- kills_in_flight: calls whose replica died while the provider answered (booked as lost);
- paid_twice: provider calls beyond one per request: requests paid twice because a kill
  caught their first call at the provider (a caught call the provider never finished is
  booked but not billed: the ledger then overstates it).
Shared by tests/test_chaos_kill.py (small) and bench/chaos.py (large).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from bus import subjects
from bus.codec import decode, encode
from bus.messages import LedgerEvent, LlmRequest, LlmResult, Usage
from cost_ledger.aggregates import AggregateStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from flipsync.children import ChildProcess, service_process
from router.call_markers import LEASES
from router.lost_events import LOST_REASON
from simulator.config import SimConfig
from simulator.server import SimulatedProvider
from tests.helpers import make_request
from tests.replica_cluster import ReplicaCluster

AGENT = "listing"


@dataclass(kw_only=True)
class ChaosResult:
    """What one run measured; money in micro-dollars."""

    requests: int
    lost: int
    errors: int
    kills: int
    provider_calls: int
    booked_calls: int
    kills_in_flight: int
    paid_twice: int
    levers_own_calls: int = 0
    """Calls the levers made on their own account (a cascade's failed first attempt,
    routing's shadow calls: events with overhead_of), not a request paid twice."""
    ledger_micro_usd: int
    provider_billed_micro_usd: int
    seconds: float

    @property
    def ledger_minus_provider_micro_usd(self) -> int:
        """The ledger's spend minus the provider's bill: never negative is the promise."""
        return self.ledger_micro_usd - self.provider_billed_micro_usd

    @property
    def paid_twice_per_1000_kills_in_flight(self) -> float:
        """Calls paid again after a kill, per 1,000 calls a kill caught at the provider."""
        return 1000 * self.paid_twice / self.kills_in_flight if self.kills_in_flight else 0.0


class ChaosCluster(ReplicaCluster):
    """Servers, a slow simulated provider and router+ledger replicas as child processes."""

    def __init__(self, *, replicas: int = 3, ack_wait_s: float = 4.0) -> None:
        super().__init__(SimulatedProvider(SimConfig(latency_ms=550, latency_jitter_ms=250)))
        self.replicas = replicas
        self.ack_wait_s = ack_wait_s

    @property
    def env(self) -> dict[str, str]:
        """The environment of every replica."""
        return {
            **self.server_env(),
            "FLIPSYNC_ACK_WAIT_S": str(self.ack_wait_s),
            "FLIPSYNC_EXTRA_AGENTS": f'["{AGENT}"]',
            "FLIPSYNC_ROUTER_WORKERS": "64",
            # One call per request, so calls are counted exactly (a packed call's items share
            # it); lost packed calls are tests/test_packing_replicas.py's.
            "FLIPSYNC_PACK_MAX_ITEMS": "1",
        }

    def _replica(self) -> ChildProcess:
        return service_process(["router", "ledger"], self.env)

    async def start(self) -> None:
        """Start the servers, the provider and the replicas."""
        await self.start_servers()
        await self.start_replicas(self.env, self.replicas, ready_s=120)

    async def run(self, requests: int, kills: int, *, per_second: float = 20.0) -> ChaosResult:
        """requests at per_second, with `kills` SIGKILLs spread over them; then the figures."""
        tenant = f"chaos{uuid.uuid4().hex[:8]}"
        burst = [
            make_request(tenant=tenant, agent=AGENT, text=f"Write a title for item {i:05d}.")
            for i in range(requests)
        ]
        started = time.perf_counter()
        got: dict[str, LlmResult] = {}
        done = asyncio.Event()
        nc = self.broker.connection

        async def on_result(msg: Msg) -> None:
            result = decode(msg.data, LlmResult)
            got.setdefault(result.request_id, result)
            if len(got) == requests:
                done.set()

        sub = await nc.subscribe(f"llm.result.{tenant}.>", cb=on_result)
        published = [0]
        killer = asyncio.create_task(self._kill_now_and_then(kills, published, requests, done))
        js = nc.jetstream()
        try:
            for request in burst:
                await js.publish(
                    subjects.llm_request(tenant, AGENT),
                    encode(request),
                    headers={"Nats-Msg-Id": f"{tenant}.{AGENT}.{request.id}"},
                )
                published[0] += 1
                await asyncio.sleep(1 / per_second)
            try:
                async with asyncio.timeout(self.ack_wait_s * 12 + 180):
                    await done.wait()
            except TimeoutError:
                pass  # the missing ones are counted as lost
            await killer
        finally:
            killer.cancel()
            await sub.unsubscribe()
        seconds = time.perf_counter() - started
        await self._quiet()
        return await self._figures(tenant, burst, got, kills, seconds)

    async def _kill_now_and_then(
        self, kills: int, published: list[int], n: int, done: asyncio.Event
    ) -> None:
        """SIGKILL one replica while calls are at the provider, start a fresh one; repeat,
        spread over the publishing (a kill is skipped if nothing is in flight any more)."""
        assert self.redis is not None
        for k in range(kills):
            target = (k + 1) * n // (kills + 1)
            index = None
            while published[0] < target or index is None:
                if done.is_set():
                    return
                await asyncio.sleep(0.02)  # state held in other processes: polled
                index = await self._holding_calls()
            self.children[index].kill()
            await self.children[index].stop()
            self.children[index] = self._replica()
            await self.children[index].start(ready_within_s=120)

    async def _holding_calls(self) -> int | None:
        """The index of a replica with calls at the provider now (its pid leads each lease)."""
        assert self.redis is not None
        calls = await self.redis.zrange(LEASES, 0, -1)
        holders = {int(c.split(b"-")[0], 16) for c in calls if isinstance(c, bytes)}
        for index, child in enumerate(self.children):
            if child.proc is not None and child.proc.pid in holders:
                return index
        return None

    async def _quiet(self) -> None:
        """Wait for the consumers to finish and for every lost call's lease to be reaped."""
        js = self.broker.connection.jetstream()
        assert self.redis is not None
        deadline = time.monotonic() + self.ack_wait_s * 12 + 120
        while time.monotonic() < deadline:
            busy = False
            for stream, durable in (
                (subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER),
                (subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER),
            ):
                info = await js.consumer_info(stream, durable)
                busy = busy or bool(info.num_pending or info.num_ack_pending)
            leases = await self.redis.zcard(LEASES)
            if not busy and not leases:
                return
            if leases and not busy:  # nobody calls a provider now: a request's call reaps
                probe = make_request(tenant="chaosprobe", agent=AGENT, text=uuid.uuid4().hex)
                await js.publish(subjects.llm_request("chaosprobe", AGENT), encode(probe))
            await asyncio.sleep(1.0)

    async def _figures(
        self,
        tenant: str,
        burst: list[LlmRequest],
        got: dict[str, LlmResult],
        kills: int,
        seconds: float,
    ) -> ChaosResult:
        assert self.redis is not None
        stats = await self.sim.stats()
        events = await ledger_events(self.broker, tenant)
        paid = [e for e in events if e.paid_call]
        lost_calls = [e for e in paid if e.route_reason.startswith(LOST_REASON)]
        catalog = PriceCatalog.load()
        # The bill, model by model (routing spreads these requests over several: a bound at
        # the dearest model's price read 10,819 against a ledger of 5,491 in bench/chaos).
        billed = sum(
            cost_micro_usd(
                catalog.get(model),
                Usage(input_tokens=prompt, cached_input_tokens=cached, output_tokens=completion),
            )
            for model, (prompt, cached, completion) in stats.tokens_by_model.items()
        )
        probes = [e for e in await ledger_events(self.broker, "chaosprobe") if e.paid_call]
        probe_calls = len(probes)
        totals = await AggregateStore(self.redis).totals(tenant)
        # The probes (requests that reap leases at the end) are billed with the rest: their
        # ledger spend is counted with the rest too.
        ledger = totals.spend_micro_usd + sum(e.cost_micro_usd for e in probes)
        answered_once = sum(1 for r in burst if r.id in got)
        provider_calls = stats.calls - probe_calls
        own = sum(1 for e in paid if e.overhead_of)
        return ChaosResult(
            requests=len(burst),
            lost=len(burst) - answered_once,
            errors=sum(1 for r in got.values() if not r.ok),
            kills=kills,
            provider_calls=provider_calls,
            booked_calls=booked_calls(paid),
            kills_in_flight=len(lost_calls),
            # One call per request (packing is off), besides the levers' own: every call
            # beyond those paid again for a request whose call a kill caught at the provider.
            paid_twice=max(provider_calls - len(burst) - own, 0),
            levers_own_calls=own,
            ledger_micro_usd=ledger,
            provider_billed_micro_usd=billed,
            seconds=seconds,
        )


def booked_calls(paid: list[LedgerEvent]) -> int:
    """Provider calls the ledger books: an event each, except packed items, which share
    one call among pack_size events."""
    alone = sum(1 for e in paid if e.pack_size <= 1)
    packed = sum(Fraction(1, e.pack_size) for e in paid if e.pack_size > 1)
    return alone + round(packed)


async def ledger_events(broker: NatsBroker, tenant: str) -> list[LedgerEvent]:
    """Every ledger event of a tenant in the LEDGER stream, in order."""
    js = broker.connection.jetstream()
    subject = subjects.ledger(tenant)
    events: list[LedgerEvent] = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(subjects.STREAM_LEDGER, seq, subject=subject, next=True)
        except NotFoundError:
            return events
        if raw.data:
            events.append(decode(raw.data, LedgerEvent))
        assert raw.seq is not None
        seq = raw.seq + 1
