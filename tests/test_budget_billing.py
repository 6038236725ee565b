"""Budgets against a provider that bills differently from FlipSync's estimate.

The simulated provider bills prompt tokens with another tokenizer (cl100k_base, times a
provider skew), 4 framing tokens a message, the schema as input, and each photo by the routed
model's own image rule (gpt-4o-mini's 2,833 + 5,667 per tile...): nothing the router computed
itself. Over 1,000 concurrent requests with a photo each on 3 router replicas, settled spend
never passes the budget, and at least 90% of it is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from cost_ledger.catalog import PriceCatalog
from router.tokens import image_tokens_by_rule
from tests.budget_scenario import BudgetCluster
from tests.test_budget_concurrency import check_books

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BudgetCluster]:
    """Three router replicas; the provider bills as a provider, every request has a photo."""
    running = BudgetCluster(
        tmp_path_factory.mktemp("billing"), replicas=3, billing="provider", photos=True
    )
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def test_a_provider_billing_its_own_way_never_overspends_the_budget(
    cluster: BudgetCluster,
) -> None:
    run = await cluster.burst("billed", 1000, budget_share=Decimal(1) / 3)
    print(
        f"\nprovider billing: budget {run.limit_micro_usd}, spent {run.spent_micro_usd}, "
        f"overspend {run.overspend_micro_usd}, utilization {run.utilization:.2%} "
        f"({run.ok} served, {run.refused} refused)"
    )
    check_books(run)
    assert run.utilization >= Decimal("0.90")
    assert run.refused > 0
    # Each photo was billed by the serving model's own rule, not the router's gpt-4o estimate.
    catalog = PriceCatalog.load()
    for result in cluster.sample:
        rule = catalog.get(result.model).image_rule
        assert result.usage.input_tokens > image_tokens_by_rule(rule, 900, 700, "high")
