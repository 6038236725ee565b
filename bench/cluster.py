"""bench/cluster: the budgets' Redis side on one redis-server and on a 3-primary Redis Cluster.

The same load both ways: N requests of 8 tenants, 64 in flight, each reserving its maximum
cost (tenant budgets and a global budget below their sum, so both refuse), "calling" for
5 ms, then writing its ledger event and settling its actual cost, through two BudgetStores
(two router replicas). In the cluster run one primary is killed (SIGKILL) a quarter of the
way and restarted empty 0.5 s later: its groups answer NOT_READY until a rebuild replays
the kept ledger events (as `rebuild` replays the LEDGER stream) after a grace period for
requests in flight.

Scope, honestly: this measures the Redis side (reserve, settle, rebuild) with real servers;
no NATS and no service processes run here, so `nats_node_killed` is false. The test that
runs the real services on a NATS cluster and a Redis Cluster is not built yet
(docs/scaling.md). Writes bench/results/cluster.json.

Run: `.venv/bin/python -m bench.cluster [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import uvloop
from redis.exceptions import RedisError

from bench.report import table, write
from bus.embedded import EmbeddedRedis
from bus.embedded.redis_cluster import EmbeddedRedisCluster
from bus.messages import BudgetPeriod, BudgetScope, BudgetSpec, now_ms
from bus.redis_client import make_redis
from cost_ledger.budgets.config import BudgetConfig, BudgetRules, EngineSettings
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.policy import Subject
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.store import BudgetStore

TENANTS = 8
IN_FLIGHT = 64
TENANT_LIMIT = 40_000
GLOBAL_LIMIT = 200_000  # below the tenants' 320 000: the global budget refuses too
GRACE_S = 0.5
"""How long the rebuild waits for requests in flight (their 'provider call' takes 5 ms)."""
GIVE_UP_S = 30.0


@dataclass(kw_only=True)
class Run:
    """What one run saw."""

    requests: int
    outcomes: Counter[str] = field(default_factory=Counter)
    ledger: list[tuple[str, str, int]] = field(default_factory=list)
    """(request id, tenant, cost): the events, as the LEDGER stream would keep them."""
    seconds: float = 0.0
    primary_killed: bool = False
    rebuilds: int = 0


def rules() -> BudgetConfig:
    """A daily budget per tenant and a global daily budget."""
    specs = [
        BudgetSpec(
            name="tenant-daily", scope=BudgetScope.TENANT, period=BudgetPeriod.DAY,
            limit_micro_usd=TENANT_LIMIT,
        ),
        BudgetSpec(
            name="global-daily", scope=BudgetScope.GLOBAL, period=BudgetPeriod.DAY,
            limit_micro_usd=GLOBAL_LIMIT,
        ),
    ]  # fmt: skip
    engine = EngineSettings(period_overlap_s=0, max_wait_s=GIVE_UP_S)
    return BudgetConfig(rules=BudgetRules(budgets={s.name: s for s in specs}), engine=engine)


async def load(redis: aioredis.Redis, run: Run, kill: Any = None) -> None:
    """Push the load through two stores; kill() runs once a quarter of the requests are done."""
    live = LiveBudgets(redis, rules())
    await live.ensure_seeded()
    await live.load()
    stores = [BudgetStore(redis, live), BudgetStore(redis, live)]
    await stores[0].mark_ready()
    rng = random.Random(18)
    gate = asyncio.Semaphore(IN_FLIGHT)
    half = asyncio.Event()

    async def retrying(op: Any) -> Any:
        deadline = time.monotonic() + GIVE_UP_S
        while True:
            try:
                return await op()
            except RedisError:  # a node away: the real services redeliver, so retry
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def one(i: int) -> None:
        tenant = f"shop{i % TENANTS}"
        subject = Subject(tenant=tenant, agent="copy")
        store = stores[i % 2]
        max_cost = rng.randint(200, 800)
        actual = rng.randint(max_cost // 2, max_cost)
        async with gate:
            deadline = time.monotonic() + GIVE_UP_S
            while True:
                got = await retrying(lambda: store.reserve(f"r{i}", subject, max_cost))
                if got.code not in (Code.WAIT, Code.NOT_READY) or time.monotonic() > deadline:
                    break
                await store.wait_for_release(0.05)
            if got.code not in (Code.RESERVED, Code.HELD):
                run.outcomes[got.code.name.lower()] += 1
            else:
                await asyncio.sleep(0.005)  # the provider call
                run.ledger.append((f"r{i}", tenant, actual))  # the event, then the settle
                await retrying(
                    lambda: store.settle(f"r{i}", subject, cost=actual, messages=0, at_ms=now_ms())
                )
                run.outcomes["served"] += 1
        if sum(run.outcomes.values()) >= run.requests // 4:
            half.set()

    async def recover() -> None:
        """What the ledger's budget watch does: wait for requests in flight, replay, mark."""
        await asyncio.sleep(GRACE_S)
        for request_id, tenant, cost in list(run.ledger):
            subject = Subject(tenant=tenant, agent="copy")
            await stores[0].settle(
                request_id, subject, cost=cost, messages=0, at_ms=now_ms(), final=True
            )
        await stores[0].mark_ready()
        run.rebuilds += 1

    async def rebuild_when_lost() -> None:
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(RedisError):
                if not await stores[0].ready():
                    await recover()

    async def killer() -> None:
        await half.wait()
        if kill is not None:
            await kill()
            run.primary_killed = True

    watcher = asyncio.create_task(rebuild_when_lost())
    started = time.perf_counter()
    await asyncio.gather(killer(), *(one(i) for i in range(run.requests)))
    run.seconds = time.perf_counter() - started
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    while not await retrying(stores[0].ready):  # a loss the load did not run into
        await recover()


async def books(redis: aioredis.Redis, run: Run) -> dict[str, int]:
    """Overspend and double payments, from the kept ledger events and the counters."""
    day = period_key(BudgetPeriod.DAY, now_ms())
    by_tenant: Counter[str] = Counter()
    for _, tenant, cost in run.ledger:
        by_tenant[tenant] += cost
    overspend = sum(max(0, spent - TENANT_LIMIT) for spent in by_tenant.values())
    overspend += max(0, sum(by_tenant.values()) - GLOBAL_LIMIT)
    store = BudgetStore(redis, LiveBudgets(redis, rules()))
    counters = sum([(await store.counter(f"tenant:shop{t}:{day}"))[0] for t in range(TENANTS)])
    return {
        "overspend_micro_usd": overspend,
        "double_paid": len(run.ledger) - len({r for r, _, _ in run.ledger}),
        "ledger_micro_usd": sum(by_tenant.values()),
        "counters_micro_usd": counters,
        "global_counter_micro_usd": (await store.counter(f"global:{day}"))[0],
    }


async def on_one_node(requests: int) -> tuple[Run, dict[str, int]]:
    """The load on one redis-server."""
    server = EmbeddedRedis()
    await server.start()
    redis = make_redis(server.url)
    try:
        run = Run(requests=requests)
        await load(redis, run)
        return run, await books(redis, run)
    finally:
        await redis.aclose()
        await server.stop()


async def on_cluster(requests: int) -> tuple[Run, dict[str, int]]:
    """The load on a 3-primary cluster, one primary killed and restarted empty mid-load."""
    cluster = EmbeddedRedisCluster(primaries=3)
    await cluster.start()
    redis = make_redis(cluster.url, cluster=True)
    victim = cluster.nodes[1]

    async def kill() -> None:  # no persistence: it comes back with its slots and no data
        await victim.kill()  # SIGKILL, mid-load: requests on its slots fail and retry
        await asyncio.sleep(0.5)
        await victim.start()

    try:
        run = Run(requests=requests)
        await load(redis, run, kill)
        return run, await books(redis, run)
    finally:
        await redis.aclose()
        await cluster.stop()


def main() -> None:
    """Run both, write bench/results/cluster.json, print a table."""
    parser = argparse.ArgumentParser(prog="bench.cluster", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    single, single_books = uvloop.run(on_one_node(args.requests))
    clustered, cluster_books = uvloop.run(on_cluster(args.requests))
    lost = args.requests - sum(clustered.outcomes.values())
    figures = {
        "scope": "budget reserve/settle/rebuild on real Redis servers; no NATS, no services",
        "requests": args.requests,
        "lost": lost,
        "double_paid": cluster_books["double_paid"],
        "overspend_micro_usd": cluster_books["overspend_micro_usd"],
        "nats_node_killed": False,
        "redis_primary_killed": clustered.primary_killed,
        "rebuilds": clustered.rebuilds,
        "counters_lost_then_rebuilt": clustered.rebuilds > 0,
        "seconds": round(clustered.seconds, 2),
        "outcomes": dict(clustered.outcomes),
        "counters_equal_ledger": cluster_books["counters_micro_usd"]
        == cluster_books["ledger_micro_usd"]
        == cluster_books["global_counter_micro_usd"],
        "one_node": {
            "requests_per_s": round(args.requests / single.seconds, 1),
            "seconds": round(single.seconds, 2),
            "overspend_micro_usd": single_books["overspend_micro_usd"],
            "outcomes": dict(single.outcomes),
        },
        "cluster": {
            "primaries": 3,
            "requests_per_s": round(args.requests / clustered.seconds, 1),
            "seconds": round(clustered.seconds, 2),
        },
        "in_flight": IN_FLIGHT,
        "tenants": TENANTS,
    }
    path = write("cluster", figures)
    rows = [
        ("requests (64 in flight, 8 tenants)", str(args.requests)),
        ("one redis-server: requests/s", str(figures["one_node"]["requests_per_s"])),
        (
            "3-primary cluster: requests/s (one primary restarted)",
            str(figures["cluster"]["requests_per_s"]),
        ),  # noqa: E501
        (
            "lost / double paid / overspend (cluster)",
            f"{lost} / {figures['double_paid']} / {figures['overspend_micro_usd']}",
        ),  # noqa: E501
        ("rebuilds after the restart", str(clustered.rebuilds)),
        ("counters equal the ledger", str(figures["counters_equal_ledger"])),
    ]
    print(table(rows, "bench/cluster: budgets on one Redis and on a Redis Cluster"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
