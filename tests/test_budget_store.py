"""BudgetStore on a real redis-server: reserve, settle, release, expiry, idempotency, quotas."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedRedis
from bus.liveness import Liveness, thread_liveness
from bus.messages import (
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    LedgerEvent,
    Lever,
    TierQuota,
    Usage,
    now_ms,
)
from cost_ledger.budgets import keys
from cost_ledger.budgets.config import BudgetConfig, BudgetRules, EngineSettings
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.policy import Subject, expire_at_s
from cost_ledger.budgets.projection import LedgerView, settled_by_router
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.store import BudgetStore
from tests.helpers import eventually

ACME = Subject(tenant="acme", agent="copy", workflow="wf-1")


def day_counter(scope: str) -> str:
    """The counter id of a scope today."""
    return f"{scope}:{period_key(BudgetPeriod.DAY, now_ms())}"


async def make_store(
    redis: aioredis.Redis,
    budgets: list[BudgetSpec],
    *,
    tiers: Sequence[TierQuota] = (),
    ttl_s: float = 30.0,
    liveness: Liveness | None = None,
) -> BudgetStore:
    """A ready store whose live rules are exactly these (liveness: bus.liveness)."""
    rules = BudgetRules(
        budgets={b.name: b for b in budgets}, tiers={t.tier: t for t in tiers}, request_cap=None
    )
    engine = EngineSettings(reservation_ttl_s=ttl_s, period_overlap_s=0, default_tier="free")
    live = LiveBudgets(redis, BudgetConfig(rules=rules, engine=engine))
    await live.ensure_seeded()
    await live.load()
    store = BudgetStore(redis, live, liveness=liveness)
    await store.mark_ready()
    return store


def tenant_budget(
    limit: int, name: str = "daily", policy: BudgetPolicy = BudgetPolicy.REFUSE
) -> BudgetSpec:
    """acme's daily budget."""
    return BudgetSpec(
        name=name,
        scope=BudgetScope.TENANT,
        period=BudgetPeriod.DAY,
        limit_micro_usd=limit,
        policy=policy,
    )


async def test_reserve_then_settle_charges_the_actual_cost_and_releases_the_rest(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("r1", ACME, 600)).code is Code.RESERVED
    assert await store.counter(counter) == (0, 600)
    settled = await store.settle("r1", ACME, cost=250, messages=0, at_ms=now_ms())
    assert settled.applied
    assert await store.counter(counter) == (250, 0)
    assert await store.held() == 0
    # Every scope is charged, whether a budget reads it or not.
    for scope in ("global", "agent:acme:copy", "workflow:acme:wf-1"):
        assert await store.counter(day_counter(scope)) == (250, 0)


async def test_over_the_limit_is_denied_and_in_flight_room_means_wait(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    assert (await store.reserve("a", ACME, 700)).code is Code.RESERVED
    waiting = await store.reserve("b", ACME, 400)  # 700 + 400 > 1000, but 0 + 400 fits
    assert waiting.code is Code.WAIT and waiting.reserved == 700
    await store.settle("a", ACME, cost=650, messages=0, at_ms=now_ms())
    denied = await store.reserve("b", ACME, 400)  # 650 settled + 400 can never fit
    assert denied.code is Code.DENIED and denied.spent == 650
    assert denied.check is not None and denied.check.budget == "daily"
    assert (await store.reserve("c", ACME, 350)).code is Code.RESERVED  # exactly 1000


async def test_a_reservation_is_all_or_none_across_scopes(redis_client: aioredis.Redis) -> None:
    agent = BudgetSpec(
        name="copy-daily",
        scope=BudgetScope.AGENT,
        period=BudgetPeriod.DAY,
        limit_micro_usd=100,
        agent="copy",
    )
    store = await make_store(redis_client, [tenant_budget(1000), agent])
    got = await store.reserve("r1", ACME, 200)
    assert got.code is Code.DENIED and got.check is not None and got.check.budget == "copy-daily"
    assert await store.counter(day_counter("tenant:acme")) == (0, 0)  # nothing held anywhere
    other = Subject(tenant="acme", agent="pricing")
    assert (await store.reserve("r2", other, 200)).code is Code.RESERVED


async def test_settle_and_reserve_are_idempotent_by_request_id(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("r1", ACME, 300)).code is Code.RESERVED
    assert (await store.reserve("r1", ACME, 300)).code is Code.HELD  # a redelivery
    assert await store.counter(counter) == (0, 300)
    settle = [store.settle("r1", ACME, cost=120, messages=0, at_ms=now_ms()) for _ in range(5)]
    outcomes = await asyncio.gather(*settle)
    assert sum(o.applied for o in outcomes) == 1
    assert await store.counter(counter) == (120, 0)
    assert (await store.reserve("r1", ACME, 300)).code is Code.SETTLED
    assert await store.counter(counter) == (120, 0)


async def test_a_dead_requests_reservation_is_released_after_the_timeout(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis
) -> None:
    # A TTL (1.5 s) kept alive the way a router does (bus.liveness's thread, every 0.5 s),
    # which a stalled test process does not let lapse.
    keeper = thread_liveness(redis_server.url)
    keeper.start()
    store = await make_store(redis_client, [tenant_budget(1000)], ttl_s=1.5, liveness=keeper)
    counter = day_counter("tenant:acme")
    await store.reserve("dead", ACME, 400)
    await store.reserve("alive", ACME, 400)
    kept = store.hold("alive", ACME)
    try:

        async def dead_released() -> bool:
            await store.sweep()
            return await store.counter(counter) == (0, 400)

        await eventually(dead_released, timeout_s=5)
        assert await store.held() == 1
        assert not await redis_client.exists(keys.reservation("t:acme", "dead"))
        # The dead request's late settle still charges its cost, once, and says it found no
        # reservation standing (the router warns: that spend had no room held for it).
        late = await store.settle("dead", ACME, cost=10, messages=0, at_ms=now_ms())
        assert late.applied and not late.held
        assert await store.counter(counter) == (10, 400)
        on_time = await store.settle("alive", ACME, cost=20, messages=0, at_ms=now_ms())
        assert on_time.applied and on_time.held
        assert await store.counter(counter) == (30, 0)
    finally:
        store.unhold(kept)
        await keeper.stop()


async def test_the_next_reserve_call_cleans_up_expired_reservations(
    redis_client: aioredis.Redis,
) -> None:
    # 1.5 s: the dead reservation must still stand when the second reserve looks, however
    # late a stalled test process sends it.
    store = await make_store(redis_client, [tenant_budget(1000)], ttl_s=1.5)
    await store.reserve("dead", ACME, 900)
    assert (await store.reserve("next", ACME, 900)).code is Code.WAIT

    async def room() -> bool:  # no sweeper: the reserve script releases what expired
        return (await store.reserve("next", ACME, 900)).code is Code.RESERVED

    await eventually(room, timeout_s=5)


async def test_release_frees_everything_and_charges_nothing(redis_client: aioredis.Redis) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    await store.reserve("r1", ACME, 500)
    assert await store.release("r1")
    assert not await store.release("r1")
    assert await store.counter(day_counter("tenant:acme")) == (0, 0)
    assert (await store.reserve("r1", ACME, 500)).code is Code.RESERVED  # may try again


async def test_free_tier_users_get_ten_messages(redis_client: aioredis.Redis) -> None:
    store = await make_store(redis_client, [], tiers=[TierQuota(tier="free", messages=10)])
    ann = Subject(tenant="acme", agent="chat", user="ann")  # no tier tag: the default tier
    for i in range(10):
        assert (await store.reserve(f"m{i}", ann, 5)).code is Code.RESERVED
        await store.settle(f"m{i}", ann, cost=5, messages=1, at_ms=now_ms())
    denied = await store.reserve("m10", ann, 5)
    assert denied.code is Code.DENIED and denied.check is not None
    assert denied.check.budget == "tier:free" and denied.spent == 10
    bob = Subject(tenant="acme", agent="chat", user="bob")
    assert (await store.reserve("b0", bob, 5)).code is Code.RESERVED
    pro = Subject(tenant="acme", agent="chat", user="ann", tier="pro")  # no quota for pro
    assert (await store.reserve("p0", pro, 5)).code is Code.RESERVED


async def test_concurrent_reservations_never_overspend(
    redis_client: aioredis.Redis, redis_server: EmbeddedRedis
) -> None:
    limit = 10_000
    store = await make_store(redis_client, [tenant_budget(limit)])
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_server.url, max_connections=16, timeout=None
    )
    replica = aioredis.Redis.from_pool(pool)  # a second replica's connections
    other = BudgetStore(replica, store.live)

    async def one(i: int) -> None:
        mine = other  # many waiters share a few connections, as in a router replica
        while True:
            got = await mine.reserve(f"c{i}", ACME, 300)
            if got.code is Code.RESERVED:
                await asyncio.sleep(0.001 * (i % 7))
                await mine.settle(f"c{i}", ACME, cost=100 + i % 150, messages=0, at_ms=now_ms())
                return
            if got.code is Code.DENIED:
                return
            await mine.wait_for_release(0.01)

    try:
        await asyncio.gather(*(one(i) for i in range(300)))
    finally:
        await replica.aclose()
    spent, reserved = await store.counter(day_counter("tenant:acme"))
    assert reserved == 0
    assert limit - 300 < spent <= limit  # refused only when even the settled spend leaves no room


async def test_not_ready_until_the_counters_are_rebuilt(redis_client: aioredis.Redis) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    await redis_client.delete(keys.ready("t:acme"))  # its slot's marker lost
    assert await store.ready(full=False) and not store.suspect  # the node itself is whole
    assert (await store.reserve("r1", ACME, 10)).code is Code.NOT_READY
    assert store.suspect  # so the watch checks every slot next time
    assert not await store.ready(full=True) and not store.suspect
    assert store.sentinel_markers() == [keys.ready_key(0)]  # one Redis: one marker tells
    await redis_client.delete(*keys.ready_keys())  # a flush, or a restart that came back empty
    assert not await store.ready(full=False)
    await store.mark_ready()
    assert await store.ready()
    assert (await store.reserve("r1", ACME, 10)).code is Code.RESERVED


async def test_ledger_events_settle_once_and_count_paid_messages(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    event = LedgerEvent(
        event_id="e1",
        request_id="r9",
        tenant="acme",
        agent="copy",
        workflow_id="",
        task_type="general",
        model="gpt-4o-mini",
        provider="simulated",
        usage=Usage(input_tokens=10, output_tokens=10),
        cost_micro_usd=77,
        baseline_micro_usd=100,
        lever=Lever.ROUTED,
        catalog_version="v",
        paid_call=True,
        finished_ms=now_ms(),
        user="ann",
    )
    await store.reserve("r9", Subject(tenant="acme", agent="copy", user="ann"), 500)
    assert (await store.settle_event(event)).applied
    assert not (await store.settle_event(event)).applied
    assert await store.counter(day_counter("tenant:acme")) == (77, 0)
    assert await store.counter(day_counter("user:acme:ann")) == (1, 0)
    assert await store.held() == 0


@pytest.mark.parametrize("policy", list(BudgetPolicy))
async def test_status_reports_limit_spent_reserved_and_policy(
    redis_client: aioredis.Redis, policy: BudgetPolicy
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000, policy=policy)])
    await store.reserve("r1", ACME, 300)
    await store.reserve("r2", ACME, 200)
    await store.settle("r2", ACME, cost=150, messages=0, at_ms=now_ms())
    [row] = await store.status("acme")
    assert (row.budget, row.scope, row.limit, row.spent, row.reserved, row.policy) == (
        "daily",
        "tenant:acme",
        1000,
        150,
        300,
        policy,
    )
    assert row.remaining == 550 and row.period_key == period_key(BudgetPeriod.DAY, now_ms())


async def test_the_ledgers_final_settle_corrects_a_provisional_one(
    redis_client: aioredis.Redis,
) -> None:
    """Two replicas answered one request at different costs: the budget follows the ledger."""
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    now = now_ms()
    assert (await store.settle("r1", ACME, cost=300, messages=0, at_ms=now)).applied
    assert not (await store.settle("r1", ACME, cost=250, messages=0, at_ms=now)).applied
    final = await store.settle("r1", ACME, cost=250, messages=0, at_ms=now, final=True)
    assert final.applied and final.corrected
    assert await store.counter(counter) == (250, 0)
    for is_final in (True, False):  # nothing moves a final settle
        again = await store.settle("r1", ACME, cost=999, messages=0, at_ms=now, final=is_final)
        assert not again.applied
    assert await store.counter(counter) == (250, 0)


async def test_a_final_settle_of_the_provisional_amount_changes_nothing_but_the_mark(
    redis_client: aioredis.Redis,
) -> None:
    """A rebuild replaying an event the router settled already: no counter moves, so the
    settle is not counted as applied, and the request is settled for good."""
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    now = now_ms()
    assert (await store.settle("r1", ACME, cost=300, messages=0, at_ms=now)).applied
    confirmed = await store.settle("r1", ACME, cost=300, messages=0, at_ms=now, final=True)
    assert not confirmed.applied and not confirmed.corrected
    later = await store.settle("r1", ACME, cost=120, messages=0, at_ms=now, final=True)
    assert not later.applied  # the mark is final now: nothing corrects it
    assert await store.counter(counter) == (300, 0)


def paid_event(request_id: str, cost: int, router_settled: str = "") -> LedgerEvent:
    """The ledger event of a paid call for acme's user ann."""
    return LedgerEvent(
        event_id=request_id,
        request_id=request_id,
        tenant="acme",
        agent="copy",
        workflow_id="wf-1",
        task_type="general",
        model="gpt-4o-mini",
        provider="simulated",
        usage=Usage(input_tokens=10, output_tokens=10),
        cost_micro_usd=cost,
        baseline_micro_usd=1000,
        lever=Lever.ROUTED,
        catalog_version="v",
        paid_call=True,
        finished_ms=now_ms(),
        user="ann",
        router_settled=router_settled,
    )


async def test_settle_once_the_ledger_skips_what_the_router_settled_to_the_same_amount(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    ledger = LedgerView(redis_client, store)
    ann = Subject(tenant="acme", agent="copy", workflow="wf-1", user="ann")
    counter, user = day_counter("tenant:acme"), day_counter("user:acme:ann")
    await store.reserve("once", ann, 500)
    first = await store.settle("once", ann, cost=77, messages=1, at_ms=now_ms())
    assert first.applied and first.complete
    again = await store.settle("once", ann, cost=77, messages=1, at_ms=now_ms())
    assert not again.complete  # found settled: the ledger must settle it (a no-op)
    event = paid_event("once", 77, router_settled="77:1")
    assert settled_by_router(event)
    calls_before = await script_calls(redis_client)
    await ledger.settle_applied([event], [True])
    assert await script_calls(redis_client) == calls_before  # no settle script at all
    assert await store.counter(counter) == (77, 0) and await store.counter(user) == (1, 0)
    assert await store.held() == 0


async def test_settle_once_the_ledger_still_settles_what_the_router_did_not(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    ledger = LedgerView(redis_client, store)
    ann = Subject(tenant="acme", agent="copy", workflow="wf-1", user="ann")
    counter = day_counter("tenant:acme")
    # Another replica's answer settled 300; the event the ledger keeps cost 250.
    await store.settle("two", ann, cost=300, messages=1, at_ms=now_ms())
    await ledger.settle_applied([paid_event("two", 250, router_settled="300:1")], [True])
    assert await store.counter(counter) == (250, 0)
    # A router that died before settling (or whose settle failed): no mark, the ledger settles.
    await store.reserve("lost", ann, 400)
    await ledger.settle_applied([paid_event("lost", 40)], [True])
    assert await store.counter(counter) == (290, 0) and await store.held() == 0


async def script_calls(redis: aioredis.Redis) -> int:
    """EVALSHA and EVAL calls Redis has run so far."""
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def test_a_settle_marker_lives_as_long_as_the_counters_it_charged() -> None:
    day = 24 * 3600
    now = 1_800_000_000
    assert keys.settled_ttl_s([now + 20 * day], now) == 21 * day  # and a day for clocks
    assert keys.settled_ttl_s([now + 3600], now) == keys.SETTLED_MIN_S  # past any redelivery
    assert keys.settled_ttl_s([now + 90 * day], now) == keys.SETTLED_TTL_S
    assert keys.settled_ttl_s([], now) == keys.SETTLED_MIN_S


async def test_a_settled_request_is_remembered_until_its_months_counters_go(
    redis_client: aioredis.Redis,
) -> None:
    """Not 40 days whatever the date (bench/redis_memory: 2 of the 7 keys a request keeps):
    until the month's counters expire, which a replayed event must not charge twice."""
    store = await make_store(redis_client, [tenant_budget(10_000)])
    at = now_ms()
    assert (await store.reserve("r1", ACME, 600)).code is Code.RESERVED
    await store.settle("r1", ACME, cost=250, messages=0, at_ms=at)
    month_goes = expire_at_s(BudgetPeriod.MONTH, at)
    for group in ("global", keys.group_of("tenant:acme:x")):
        ttl = await redis_client.ttl(keys.settled(group, "r1"))
        counter_left = month_goes - at // 1000
        assert counter_left < ttl <= counter_left + keys.SETTLED_MARGIN_S + 5
        assert keys.SETTLED_MIN_S <= ttl < keys.SETTLED_TTL_S
    # Replayed after the first settle, the ledger's event finds the marker: charged once.
    await store.settle("r1", ACME, cost=250, messages=0, at_ms=at)
    assert await store.counter(day_counter("tenant:acme")) == (250, 0)
