"""bench/paired_router: Redis commands and router CPU per unique standard request, two trees.

Two modes, each naming what it measured:

- ``count``: the router, the ledger and the simulated provider (latency 0) in this process
  (``flipsync.stack``), a warm-up then ``--requests`` unique standard requests, 200 in flight.
  Every command this process sends through its Redis client
  (``AutoPipelinedRedis.execute_command``; a script is one EVALSHA) is counted by the
  FlipSync function that sent it, and as the router's when a router frame is on the stack.
  With ``--profile``, the process's Python function calls per request (cProfile), and the
  profile in the temporary directory: compare the functions of one path between trees, as
  the whole total moves with the machine's pace (the dedup claim's keep-alives, how full the
  packing windows get). Run it once per tree, the tree first on the path::

      PYTHONSAFEPATH=1 PYTHONPATH=<tree> .venv/bin/python bench/paired_router.py count

- ``cpu``: nats-server, redis-server, the simulated provider and a ledger in their own
  processes, and a router process started from each tree in turn (``PYTHONPATH=<tree>``),
  ``--pairs`` times old then new: after a warm-up, ``--requests`` unique standard requests,
  200 in flight; the router process's own CPU time (user plus system) per request, and
  redis-server's EVALSHA calls and commands per request (INFO commandstats, every client,
  the ledger's included, commands run inside scripts counted apart)::

      .venv/bin/python bench/paired_router.py cpu --old <old tree> --new <new tree>
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

IN_FLIGHT = 200
WARM_UP = 200


def _site(frame: Any) -> tuple[bool, str]:
    """(a router frame is on the stack, the first FlipSync function outside the client)."""
    site, router = "", False
    while frame is not None:
        name = frame.f_code.co_filename
        flipsync = "/site-packages/" not in name and "/lib/python" not in name
        if flipsync and not name.endswith("redis_pipelining.py") and not site:
            site = f"{Path(name).parent.name}/{Path(name).name}:{frame.f_code.co_name}"
        router = router or "/router/" in name
        frame = frame.f_back
    return router, site


async def _count(requests: int, profiled: bool) -> None:
    from bench.load import closed_loop
    from bus.llm_client import LlmClient
    from bus.redis_pipelining import AutoPipelinedRedis
    from bus.settings import Settings
    from flipsync.stack import Service, start_stack
    from tests.helpers import make_request

    counts: Counter[tuple[bool, str, str]] = Counter()
    counting = False
    execute = AutoPipelinedRedis.execute_command

    async def counted(self: AutoPipelinedRedis, *args: Any, **options: Any) -> Any:
        if counting:
            router, site = _site(sys._getframe(1))
            counts[(router, site, str(args[0]).upper())] += 1
        return await execute(self, *args, **options)

    AutoPipelinedRedis.execute_command = counted  # type: ignore[method-assign]
    services = [Service.PROVIDER, Service.ROUTER, Service.LEDGER]
    stack = await start_stack(Settings(sim_latency_ms=0), services)
    nonce = uuid.uuid4().hex[:12]
    try:
        client = LlmClient(stack.broker)
        levers: Counter[str] = Counter()

        async def call(i: int) -> None:
            request = make_request(tenant="bench", text=f"{nonce} item {i}")
            result = await client.request(request, 120)
            if not result.ok:
                raise RuntimeError(f"{result.error_code}: {result.reason}")
            levers[result.lever.value] += 1

        await closed_loop(WARM_UP, IN_FLIGHT, call, first=10**7)
        levers.clear()
        counting = True
        profile = cProfile.Profile() if profiled else None
        cpu = time.process_time()
        if profile is not None:
            profile.enable()
        await closed_loop(requests, IN_FLIGHT, call)
        if profile is not None:
            profile.disable()
        cpu = time.process_time() - cpu
        counting = False
    finally:
        await stack.stop()
    router = sum(n for (r, _, _), n in counts.items() if r)
    tree = Path(sys.modules["router"].__file__ or "").parent.parent
    print(f"tree {tree}")
    print(f"{requests} unique standard requests, levers {dict(levers)}")
    print(f"process CPU (router, ledger, provider, requester): {cpu * 1e6 / requests:,.0f} µs")
    if profile is not None:
        out = Path(tempfile.gettempdir()) / f"paired_router_{tree.name}.prof"
        profile.dump_stats(out)
        calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
        print(f"Python function calls per request (cProfile, whole process): "
              f"{calls / requests:,.0f}; profile in {out}")  # fmt: skip
    print(f"Redis commands per request: {sum(counts.values()) / requests:.2f} "
          f"(from a router frame: {router / requests:.2f})")  # fmt: skip
    for (r, site, command), n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n >= requests / 1000:  # "*": a router frame on the stack (a gathered task has none)
            print(f"  {n / requests:6.3f} {'*' if r else ' '} {command:<8} {site}")


async def _commandstats(redis: Any) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


async def _cpu(old: Path, new: Path, pairs: int, requests: int) -> None:
    import aiohttp  # noqa: F401 - bench's dependencies, as bench.overhead's
    import redis.asyncio as aioredis

    from bench.cpu import CpuMeter
    from bench.load import closed_loop
    from bus.broker import make_broker
    from bus.embedded import EmbeddedNats, EmbeddedRedis
    from bus.embedded.process import free_port
    from bus.llm_client import LlmClient
    from bus.settings import Settings
    from bus.streams import ensure_streams
    from flipsync.children import service_process
    from flipsync.children import simulated_provider_process as provider_process
    from tests.helpers import make_request

    nats_server, redis_server = EmbeddedNats(), EmbeddedRedis()
    await nats_server.start()
    await redis_server.start()
    sim_port = free_port()
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": redis_server.url,
        "FLIPSYNC_SIM_BASE_URL": f"http://127.0.0.1:{sim_port}/v1",
        "PYTHONSAFEPATH": "1",
    }
    sim = provider_process(sim_port)
    broker = make_broker(nats_server.url)
    redis = aioredis.Redis.from_url(redis_server.url)
    nonce = uuid.uuid4().hex[:12]
    ledger = service_process(["ledger"], {**env, "PYTHONPATH": str(new)})
    rows: list[tuple[str, float, float, float]] = []
    try:
        await sim.start()
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), Settings())
        await ledger.start()
        client = LlmClient(broker)

        async def call(i: int) -> None:
            request = make_request(tenant=f"bench{i // 50_000}", text=f"{nonce} item {i}")
            result = await client.request(request, 120)
            if not result.ok:
                raise RuntimeError(f"{result.error_code}: {result.reason}")

        first = 0
        for pair in range(pairs):
            for name, tree in (("old", old), ("new", new)):
                router = service_process(["router"], {**env, "PYTHONPATH": str(tree)})
                await router.start()
                try:
                    assert router.proc is not None
                    meter = CpuMeter({"router": [router.proc.pid]})
                    await closed_loop(WARM_UP, IN_FLIGHT, call, first=first)
                    first += 50_000  # a new tenant: its daily budget never runs out
                    before, stats = meter.seconds(), await _commandstats(redis)
                    await closed_loop(requests, IN_FLIGHT, call, first=first)
                    after, stats_after = meter.seconds(), await _commandstats(redis)
                    first += 50_000
                finally:
                    await router.stop()
                cpu = (after["router"] - before["router"]) * 1e6 / requests
                delta = {k: v - stats.get(k, 0) for k, v in stats_after.items()}
                scripts = delta.get("evalsha", 0) / requests
                rows.append((f"{name} {pair + 1}", cpu, scripts, sum(delta.values()) / requests))
                print(f"{name} pair {pair + 1}: router {cpu:,.0f} µs/request, "
                      f"EVALSHA {scripts:.2f}, redis-server commands {rows[-1][3]:.1f}",
                      flush=True)  # fmt: skip
    finally:
        await redis.aclose()
        await broker.stop()
        for child in (ledger, sim):
            await child.stop()
        await redis_server.stop()
        await nats_server.stop()
    for side in ("old", "new"):
        mine = [row for row in rows if row[0].startswith(side)]
        cpus = sorted(row[1] for row in mine)
        print(f"{side}: router CPU per request {', '.join(f'{c:,.0f}' for c in cpus)} µs; "
              f"EVALSHA {sum(r[2] for r in mine) / len(mine):.2f} per request")  # fmt: skip


def main() -> None:
    """Parse the mode and run it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("mode", choices=["count", "cpu"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="count: cProfile's call count")
    parser.add_argument("--old", type=Path)
    parser.add_argument("--new", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    if args.mode == "count":
        asyncio.run(_count(args.requests, args.profile))
    else:
        if args.old is None:
            parser.error("cpu needs --old")
        asyncio.run(_cpu(args.old.resolve(), args.new.resolve(), args.pairs, args.requests))


if __name__ == "__main__":
    main()
