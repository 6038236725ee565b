"""FlipSync's services as processes on a 3-node NATS cluster and a 3-primary Redis Cluster:
one NATS node and one Redis primary die under load, and still every request has one result,
nothing is paid twice, no budget is overspent, and the views in Redis equal the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster_scenario import ClusterScenario, Load

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


@pytest.mark.timeout(300)
async def test_losing_a_nats_node_and_a_redis_primary_under_load(tmp_path: Path) -> None:
    scenario = ClusterScenario(tmp_path, Load())
    try:
        await scenario.start()
        run = await scenario.run(kill=True)
    finally:
        await scenario.stop()
        print(scenario.timeline)
    print(f"\n{run}\n{scenario.timeline}")
    assert run.nats_node_killed and run.redis_primary_killed
    assert run.requests > run.direct  # the agents asked too
    assert run.workflows_finished == run.workflows
    assert run.lost == 0, "a request has no result"
    assert run.answered_twice == 0, "a request has two results"
    # A request that met the Redis primary away was redelivered until it came back.
    assert run.outcomes["internal"] == 0, run.reasons
    assert run.double_paid == 0, "a request was paid twice"
    assert run.overspend_micro_usd == 0
    assert run.outcomes["over_budget"] > 0, "no budget refused: this no longer tests overspend"
    assert run.views_equal_ledger, "Redis's views differ from the ledger"
