"""Budgets under concurrency, on real servers: 3 router replicas as processes, 1,000 requests.

The promise: settled spend never passes the budget, not by one micro-dollar, and at least 95%
of it is used. Then a replica is SIGKILLed in the middle of a burst: the reservations of its
dead requests are released after their timeout, and nothing is settled twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bus.messages import BudgetPeriod, now_ms
from cost_ledger.budgets.periods import period_key
from tests.budget_scenario import BudgetCluster, ScenarioResult

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BudgetCluster]:
    """Three `flipsync run router ledger` processes on servers of their own."""
    running = BudgetCluster(tmp_path_factory.mktemp("budgets"), replicas=3)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


def check_books(run: ScenarioResult) -> None:
    """Nothing over budget, nothing held, and the budget agrees with the ledger exactly."""
    assert run.other_errors == []
    assert run.ok + run.refused == run.requests
    assert run.overspend_micro_usd == 0, run
    assert run.reserved_left == 0 and run.held_left == 0
    # Each request settled once: the budget counter and the ledger agree to the micro-dollar.
    assert run.spent_micro_usd == run.ledger_micro_usd


async def test_thousand_concurrent_requests_never_overspend_and_use_the_budget(
    cluster: BudgetCluster,
) -> None:
    run = await cluster.burst("burst", 1000, budget_share=Decimal(1) / 3)
    print(
        f"\nbudget {run.limit_micro_usd} micro-USD for 1,000 requests costing about "
        f"{run.estimated_total_micro_usd}: overspend {run.overspend_micro_usd} micro-USD, "
        f"utilization {run.utilization:.2%} ({run.ok} served, {run.refused} refused, "
        f"{run.seconds:.1f}s, {run.duplicates} results delivered twice)"
    )
    check_books(run)
    assert run.utilization >= Decimal("0.95")
    assert run.refused > 0  # the budget really was the limit


@pytest.mark.chaos
async def test_killed_replica_releases_its_reservations_and_settles_nothing_twice(
    cluster: BudgetCluster,
) -> None:
    run = await cluster.burst("chaos", 400, budget_share=Decimal(1) / 3, kill_one=True)
    print(
        f"\nkilled a replica holding part of {len(run.killed_holding)} reservations: "
        f"overspend {run.overspend_micro_usd}, utilization {run.utilization:.2%}"
    )
    assert run.killed_holding  # the kill came while reservations were held
    check_books(run)  # their reservations were all released; nothing settled twice
    assert run.utilization >= Decimal("0.95")
    day = period_key(BudgetPeriod.DAY, now_ms())
    assert (await cluster.store.counter(f"tenant:chaos:{day}"))[1] == 0
