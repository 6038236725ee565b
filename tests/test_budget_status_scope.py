"""A tenant's budget view holds no global budget: its spend is every tenant's.

Found by review: with a global budget set, three calls of tenant "victim" moved the global
row that tenant "attacker" read from /api/cost/budgets (a tenant's key is always filtered to
its tenant), so one tenant could watch another's spend."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from bus.messages import BudgetPeriod, BudgetScope, BudgetSpec, now_ms
from cost_ledger.budgets.policy import Subject
from tests.test_budget_store import make_store


async def test_a_global_budget_is_listed_for_all_tenants_only(redis_client: aioredis.Redis) -> None:
    victim, attacker = f"victim{uuid.uuid4().hex[:6]}", f"attacker{uuid.uuid4().hex[:6]}"
    everyone = BudgetSpec(name=f"all-{victim}", scope=BudgetScope.GLOBAL,
                          period=BudgetPeriod.DAY, limit_micro_usd=10**9)  # fmt: skip
    own = BudgetSpec(name=f"own-{attacker}", scope=BudgetScope.TENANT, period=BudgetPeriod.DAY,
                     limit_micro_usd=10**6, tenant=attacker)  # fmt: skip
    store = await make_store(redis_client, [everyone, own])
    paid = Subject(tenant=victim, agent="copy")
    assert (await store.reserve("v1", paid, 23)).holds
    await store.settle("v1", paid, cost=23, messages=0, at_ms=now_ms())
    seen = await store.status(attacker)
    assert [row.budget for row in seen] == [own.name]
    (overall,) = [row for row in await store.status() if row.budget == everyone.name]
    assert overall.spent >= 23  # the operator's view (no tenant) still has it
