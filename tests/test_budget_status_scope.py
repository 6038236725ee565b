"""A tenant sees no global budget's spend (in its budget view, or a refusal): it is every
tenant's.

Found by review: with a global budget set, three calls of tenant "victim" moved the global
row that tenant "attacker" read from /api/cost/budgets (a tenant's key is always filtered to
its tenant), so one tenant could watch another's spend."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from bus.messages import BudgetPeriod, BudgetScope, BudgetSpec, now_ms
from cost_ledger.budgets.policy import Subject
from router.errors import OverBudgetError
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


def test_a_refusal_by_a_global_budget_does_not_tell_its_spend() -> None:
    """The refused tenant is told the limit and what it needed, not every tenant's spend."""
    waited = "30 held by requests in flight did not settle within 2.0s"
    shared = OverBudgetError(budget="all", scope="global", period="day 2026-12-07",
                             limit=1_000_000, spent=987_654, needed=400, detail=waited)  # fmt: skip
    assert "limit $1.000000" in shared.reason and "$0.000400" in shared.reason
    assert (
        "987" not in shared.reason
        and "spent" not in shared.reason
        and "30 held" not in (shared.reason)
    )
    own = OverBudgetError(budget="mine", scope="tenant:acme", period="day 2026-12-07",
                          limit=1_000_000, spent=987_654, needed=400)  # fmt: skip
    assert "spent $0.987654" in own.reason  # a tenant's own spend is its to see
