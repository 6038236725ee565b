"""bench/overhead: what FlipSync's pipeline costs on top of NATS and of a direct provider call.

Every part runs in its own process, as in a deployment: this requester, `flipsync run router`
(1, 2 or 4 of them), `flipsync run ledger`, the simulated provider (latency 0), and the
embedded nats-server and redis-server. Each figure says what it measured:

- raw_nats_rps: nats-py request/reply against an echo responder, 200 in flight (the floor);
- throughput: unique standard-priority requests, 200 in flight (pipeline_rps, ratio to raw);
- cpu_us_per_request: CPU per request of each process, from its own CPU times over the
  throughput phase, the ledger's drain included; pipeline_cpu_us_per_request sums router,
  ledger, nats-server and redis-server;
- overhead at 500 req/s: unique interactive requests at a fixed 500 req/s, end-to-end latency
  through FlipSync minus that of the same calls posted straight to the provider, p50 and p99
  (and the same at half the interactive capacity, where queueing does not dominate);
- interactive_rps: unique interactive requests, 200 in flight (never packed: a provider
  call each), whose half sets the rate of that second latency phase;
- cache phase: texts the throughput phase sent before, so exact-cache hits (its own figures);
- router_scaling: unique standard requests per second with 1, 2 and 4 router processes;
- peers: LiteLLM's proxy and Portkey's gateway on the same provider when installed.
Each phase reports its cache-hit share and provider calls per request.

Run: `make bench` or `.venv/bin/python -m bench.overhead [--quick] [--profile]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import redis.asyncio as aioredis
import uvloop

from bench.cpu import CpuMeter, per_request_us
from bench.echo import SUBJECT
from bench.load import Call, closed_loop, open_loop
from bench.overhead_figures import IN_FLIGHT, Phase, by_rate, results, rows
from bench.peers import Peer, find_peers, scratch_dir
from bench.profiling import sampled, summarize
from bench.report import RESULTS, table, write
from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.embedded.process import free_port
from bus.llm_client import LlmClient
from bus.logs import configure
from bus.messages import Lever, Priority
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from flipsync.children import READY_LINE, ChildProcess, service_process
from flipsync.children import simulated_provider_process as provider_process
from tests.helpers import make_request

RATE = 500
RATES = (50, 100, 200)
"""Fixed open-loop rates of interactive requests whose overhead is reported too: the
half-capacity rate is half a closed-loop capacity at 200 in flight, which an open loop
(fewer in flight, less shared per request) does not always hold, so its latency read
26-534 ms across runs; rates fixed in advance compare across runs and versions."""
CACHE_LEVERS = (Lever.EXACT_CACHE, Lever.SEMANTIC_CACHE)
DRAIN_TIMEOUT_S = 120.0


@dataclass(kw_only=True)
class Rig:
    """The running processes and the requester's connections."""

    nats: EmbeddedNats
    redis: EmbeddedRedis
    sim: ChildProcess
    sim_url: str
    env: dict[str, str]
    ledger: ChildProcess | None = None
    routers: list[ChildProcess] = field(default_factory=list)
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def meter(self) -> CpuMeter:
        """A CPU meter over every process of the rig, by part."""

        def pids(children: list[ChildProcess]) -> list[int]:
            return [c.proc.pid for c in children if c.proc is not None]

        return CpuMeter(
            {
                "router": pids(self.routers),
                "ledger": pids([self.ledger] if self.ledger else []),
                "nats-server": [self.nats.pid or 0],
                "redis-server": [self.redis.pid or 0],
                "requester": [os.getpid()],
                "provider": pids([self.sim]),
            }
        )

    async def add_routers(self, count: int) -> None:
        """Start count more `flipsync run router` processes."""
        for _ in range(count):
            router = service_process(["router"], self.env)
            await router.start()
            self.routers.append(router)


class Requester:
    """Sends pipeline requests and counts what served them."""

    def __init__(self, client: LlmClient, nonce: str) -> None:
        self._client = client
        self._nonce = nonce
        self.levers: Counter[str] = Counter()
        self.ok = 0

    def call(self, priority: Priority = Priority.STANDARD) -> Call:
        """One request with text unique to its number (numbers repeat only to hit caches)."""

        async def call(i: int) -> None:
            request = make_request(tenant="bench", text=f"{self._nonce} item {i}")
            if priority is not Priority.STANDARD:
                request = msgspec.structs.replace(request, priority=priority)
            result = await self._client.request(request, 120)
            if not result.ok:
                raise RuntimeError(f"{result.error_code}: {result.reason}")
            self.ok += 1
            self.levers[result.lever.value] += 1

        return call

    def reset(self) -> None:
        """Zero the counters before a phase."""
        self.levers = Counter()
        self.ok = 0


async def provider_calls(http: aiohttp.ClientSession, sim_url: str) -> int:
    """Chat completion requests the simulated provider received so far."""
    async with http.get(sim_url.removesuffix("/v1") + "/_sim/stats") as response:
        stats = await response.json()
    return int(stats["requests"])


async def ledger_calls(store: AggregateStore) -> int:
    """Ledger events the ledger has applied so far."""
    return (await store.totals()).calls


async def measure(
    rig: Rig,
    requester: Requester,
    http: aiohttp.ClientSession,
    store: AggregateStore,
    run: Run,
) -> Phase:
    """Run one phase and read every counter around it, the ledger's drain included."""
    meter = rig.meter()
    requester.reset()
    calls_before = await provider_calls(http, rig.sim_url)
    events_before = await ledger_calls(store)
    cpu_before = meter.seconds()
    n, rps, latencies = await run()
    async with asyncio.timeout(DRAIN_TIMEOUT_S):  # the ledger's CPU for these events counts
        while await ledger_calls(store) < events_before + requester.ok:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    cpu_after = meter.seconds()
    calls = await provider_calls(http, rig.sim_url) - calls_before
    hits = sum(requester.levers[lever.value] for lever in CACHE_LEVERS)
    return Phase(
        requests=n,
        rps=rps,
        latencies_ms=latencies,
        cpu_us=per_request_us(cpu_before, cpu_after, n),
        cache_hit_share=hits / max(n, 1),
        provider_calls_per_request=calls / max(n, 1),
        levers=dict(requester.levers),
    )


Run = Callable[[], Awaitable[tuple[int, float, list[float]]]]
"""A phase's load: returns (requests, requests per second, latencies in ms if timed)."""


def closed(n: int, call: Call, first: int) -> Run:
    """A closed-loop phase of n calls from number first."""

    async def run() -> tuple[int, float, list[float]]:
        return n, await closed_loop(n, IN_FLIGHT, call, first), []

    return run


def opened(seconds: float, rate: float, call: Call, first: int) -> Run:
    """An open-loop phase at rate for seconds from number first."""

    async def run() -> tuple[int, float, list[float]]:
        started = time.perf_counter()
        latencies = await open_loop(seconds, rate, call, first)
        return len(latencies), len(latencies) / (time.perf_counter() - started), latencies

    return run


async def raw_nats_rps(url: str, n: int) -> float:
    """nats-py request/reply against an echo responder in another process."""
    responder = ChildProcess([sys.executable, "-m", "bench.echo", url], ready_line=READY_LINE)
    await responder.start()
    requester = await nats.connect(url)
    try:
        payload = b"x" * 512

        async def call(_: int) -> None:
            await requester.request(SUBJECT, payload, timeout=10)

        await closed_loop(min(n, 2000), IN_FLIGHT, call)  # warm-up
        return await closed_loop(n, IN_FLIGHT, call)
    finally:
        await requester.close()
        await responder.stop()


def direct_call(
    http: aiohttp.ClientSession, base_url: str, nonce: str, peer: Peer | None = None
) -> Call:
    """The same request posted straight to the provider (or through a peer gateway).

    A plain aiohttp POST, so that the load generator's own client library does not eat the
    CPU the provider needs; FlipSync's dispatcher pays for its openai client inside the
    pipeline, and that is counted in its overhead.
    """
    schema = make_request().output_schema
    assert schema is not None
    url = f"{base_url}/chat/completions"
    headers = {"Authorization": "Bearer none"}
    if peer is not None:
        url = base_url + peer.path
        headers.update(peer.headers)

    async def call(i: int) -> None:
        body = {
            "model": peer.model if peer else "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"{nonce} direct {i}"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.schema, "strict": True},
            },
            "max_completion_tokens": 100,
        }
        async with http.post(url, json=body, headers=headers) as response:
            response.raise_for_status()
            await response.read()

    return call


async def run_peers(rig: Rig, http: aiohttp.ClientSession, n: int) -> dict[str, Any]:
    """Each installed peer's throughput on unique requests, 200 in flight; skips explained."""
    results: dict[str, float] = {}
    with scratch_dir() as workdir:
        peers, skipped = find_peers(rig.sim_url, Path(workdir))
        for name, reason in skipped.items():
            print(f"peer {name} skipped: {reason}")
        for peer in peers:
            port = free_port()
            proc = peer.process(port)
            try:
                await proc.start(ready_within_s=60)
                call = direct_call(http, f"http://127.0.0.1:{port}", rig.nonce, peer)
                await closed_loop(min(n // 5, 200), IN_FLIGHT, call, first=10**8)  # warm-up
                rps = await closed_loop(n, IN_FLIGHT, call, first=2 * 10**8)
                results[peer.name] = round(rps, 1)
            except Exception as exc:  # a peer that fails is reported, not fatal
                print(f"peer {peer.name} failed: {type(exc).__name__}: {exc}")
                skipped[peer.name] = f"failed: {type(exc).__name__}: {exc}"
            finally:
                await proc.stop()
    return {"rps": results, "skipped": skipped}


@contextlib.asynccontextmanager
async def profiled(enabled: bool, rig: Rig, n: int) -> AsyncIterator[None]:
    """Sample the router and the ledger with py-spy while the block runs, if enabled."""
    if not enabled:
        yield
        return
    router, ledger = rig.routers[0].proc, rig.ledger.proc if rig.ledger else None
    assert router is not None and ledger is not None
    raw = {name: RESULTS / f"profile_{name}.raw" for name in ("router", "ledger")}
    async with sampled(router.pid, raw["router"]), sampled(ledger.pid, raw["ledger"]):
        yield
    for name, path in raw.items():
        out = RESULTS / f"profile_{name}.txt"
        out.write_text(summarize(path, f"{name} (py-spy, throughput phase)", n))
        path.unlink(missing_ok=True)
        print(f"profile of the {name} written to {out}")


async def main(quick: bool, profile: bool) -> None:
    """Run every phase and write bench/results/overhead.json."""
    n = 600 if quick else 2000
    seconds = 2.0 if quick else 3.0
    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}/v1"
    await nats_server.start()
    await redis_server.start()
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": redis_server.url,
        "FLIPSYNC_SIM_BASE_URL": sim_url,
    }
    sim = provider_process(sim_port)
    rig = Rig(nats=nats_server, redis=redis_server, sim=sim, sim_url=sim_url, env=env)
    broker = make_broker(nats_server.url)
    redis = aioredis.Redis.from_url(redis_server.url)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    store = AggregateStore(redis)
    phases: dict[str, Phase] = {}
    try:
        await rig.sim.start()
        raw = await raw_nats_rps(nats_server.url, 5 * n)
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), Settings())
        rig.ledger = service_process(["ledger"], env)
        await rig.ledger.start()
        await rig.add_routers(1)
        requester = Requester(LlmClient(broker), rig.nonce)
        phase = functools.partial(measure, rig, requester, http, store)
        standard = requester.call()
        interactive = requester.call(Priority.INTERACTIVE)
        await closed_loop(n // 6, IN_FLIGHT, standard, first=10**7)  # warm-up, unique texts
        async with profiled(profile, rig, n):
            phases["throughput"] = await phase(closed(n, standard, 0))
        phases["cache_hits"] = await phase(closed(n // 3, standard, 0))
        phases["interactive_at_500"] = await phase(opened(seconds, RATE, interactive, 10**6))
        # Interactive requests are never packed (a provider call each): their own capacity.
        phases["interactive_capacity"] = await phase(closed(n // 3, interactive, 8 * 10**6))
        easy = max(10.0, round(phases["interactive_capacity"].rps / 2))
        phases["interactive_at_half_capacity"] = await phase(
            opened(seconds, easy, interactive, 2 * 10**6)
        )
        for k, rate in enumerate(RATES):  # open-loop rates fixed in advance, under capacity
            phases[f"interactive_at_{rate}"] = await phase(
                opened(seconds, rate, interactive, (20 + k) * 10**6)
            )
        direct = direct_call(http, sim_url, rig.nonce)
        await closed_loop(n // 6, IN_FLIGHT, direct, first=10**7)  # warm-up
        straight = await open_loop(seconds, RATE, direct, first=3 * 10**6)
        straight_easy = await open_loop(seconds, easy, direct, first=4 * 10**6)
        straight_by_rate = {
            rate: await open_loop(seconds, rate, direct, first=(30 + k) * 10**6)
            for k, rate in enumerate(RATES)
        }
        scaling = {1: phases["throughput"]}
        for replicas, first in ((2, 5 * 10**6), (4, 6 * 10**6)):
            await rig.add_routers(replicas - len(rig.routers))
            await closed_loop(n // 6, IN_FLIGHT, standard, first=first + 10**5)  # warm-up
            scaling[replicas] = await phase(closed(n, standard, first))
        peers = await run_peers(rig, http, n)
    finally:
        await http.close()
        await redis.aclose()
        await broker.stop()
        for child in [*rig.routers, *([rig.ledger] if rig.ledger else []), rig.sim]:
            await child.stop()
        await redis_server.stop()
        await nats_server.stop()
    figures = results(raw, phases, scaling, straight, straight_easy, easy, peers, quick)
    figures["overhead_by_rate"] = by_rate(phases, straight_by_rate)
    path = write("overhead", figures)
    print(table(rows(figures), "bench/overhead (simulated provider, latency 0)"))
    print(f"written to {path}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the router and ledger with py-spy in the throughput phase "
        "(bench/results/profile_router.txt, profile_ledger.txt)",
    )
    args = parser.parse_args()
    uvloop.run(main(args.quick, args.profile))
