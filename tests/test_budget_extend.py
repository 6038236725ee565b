"""Growing a standing reservation (a fallback, an escalation, a packed item retried alone)."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from bus.messages import BudgetPeriod, BudgetScope, BudgetSpec, now_ms
from cost_ledger.budgets.policy import Subject, name_token
from cost_ledger.budgets.scripts import Code
from tests.test_budget_store import ACME, day_counter, make_store, tenant_budget


async def test_extend_grows_every_counter_and_settle_releases_all_of_it(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("x1", ACME, 400)).code is Code.RESERVED
    assert (await store.extend("x1", ACME, 300)).code is Code.RESERVED
    assert await store.counter(counter) == (0, 700)
    await store.settle("x1", ACME, cost=650, messages=0, at_ms=now_ms())
    assert await store.counter(counter) == (650, 0)  # the grown part is released too


async def test_extend_past_the_limit_is_denied_and_changes_nothing(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("x2", ACME, 600)).code is Code.RESERVED
    got = await store.extend("x2", ACME, 401)
    assert got.code is Code.DENIED and not got.holds
    assert got.check is not None and got.check.limit == 1000 and got.reserved == 600
    assert await store.counter(counter) == (0, 600)
    assert (await store.extend("x2", ACME, 400)).holds  # exactly to the limit fits
    assert await store.counter(counter) == (0, 1000)


async def test_extend_without_a_standing_reservation_is_not_held(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    assert (await store.reserve("x3", ACME, 100)).holds
    await store.release("x3")
    assert (await store.extend("x3", ACME, 50)).code is Code.NOT_HELD
    assert (await store.extend("never", ACME, 50)).code is Code.NOT_HELD


async def scripts_run(redis: aioredis.Redis) -> int:
    """Scripts Redis has run so far, not counting calls refused (a NOSCRIPT before its load)."""
    stats = await redis.info("commandstats")
    return sum(
        int(s.get("calls", 0)) - int(s.get("failed_calls", 0)) - int(s.get("rejected_calls", 0))
        for s in (stats.get(f"cmdstat_{c}", {}) for c in ("evalsha", "eval"))
    )


async def test_extend_many_grows_each_request_all_or_none_in_one_script_per_group(
    redis_client: aioredis.Redis,
) -> None:
    tenant = f"g{uuid.uuid4().hex[:8]}"
    subjects = [Subject(tenant=tenant, agent=f"a{i}") for i in range(3)]
    agent_budget = BudgetSpec(name=f"{tenant}-a2", scope=BudgetScope.AGENT, period=BudgetPeriod.DAY,
                              limit_micro_usd=150, tenant=tenant, agent="a2")  # fmt: skip
    global_budget = BudgetSpec(name=f"{tenant}-all", scope=BudgetScope.GLOBAL,
                               period=BudgetPeriod.DAY, limit_micro_usd=10**12)  # fmt: skip
    tenant_daily = BudgetSpec(name=f"{tenant}-daily", scope=BudgetScope.TENANT,
                              period=BudgetPeriod.DAY, limit_micro_usd=1000,
                              tenant=tenant)  # fmt: skip
    store = await make_store(redis_client, [tenant_daily, agent_budget, global_budget])
    tenant_counter = day_counter(f"tenant:{name_token(tenant)}")
    global_counter = day_counter("global")
    global_before = await store.counter(global_counter)
    for i, subject in enumerate(subjects):
        assert (await store.reserve(f"{tenant}-{i}", subject, 100)).code is Code.RESERVED

    before = await scripts_run(redis_client)
    got = await store.extend_many([(f"{tenant}-{i}", s, 60) for i, s in enumerate(subjects)])
    ran = await scripts_run(redis_client) - before

    assert [g.code for g in got] == [Code.RESERVED, Code.RESERVED, Code.DENIED]
    assert got[2].check is not None and got[2].check.budget == f"{tenant}-a2"
    # Two groups (the tenant's, the global one) grow together; the global group grew the
    # refused request too, and is undone: three scripts for three requests, not six.
    assert ran == 3
    assert await store.counter(tenant_counter) == (0, 300 + 2 * 60)
    spent, reserved = await store.counter(global_counter)
    assert (spent, reserved) == (global_before[0], global_before[1] + 300 + 2 * 60)
    for i, subject in enumerate(subjects):  # each releases exactly what it holds
        await store.settle(f"{tenant}-{i}", subject, cost=0, messages=0, at_ms=now_ms())
    assert await store.counter(tenant_counter) == (0, 0)
    assert await store.counter(global_counter) == global_before


async def test_extend_many_lets_later_requests_see_earlier_growth(
    redis_client: aioredis.Redis,
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)])
    for name in ("m1", "m2", "m3"):
        assert (await store.reserve(name, ACME, 200)).code is Code.RESERVED
    got = await store.extend_many([("m1", ACME, 150), ("m2", ACME, 150), ("m3", ACME, 150)])
    # 600 held: room for two growths of 150, not three; the third changes nothing.
    assert [g.code for g in got] == [Code.RESERVED, Code.RESERVED, Code.DENIED]
    assert await store.counter(day_counter("tenant:acme")) == (0, 900)
