"""bench/cluster: FlipSync's own services on one node and on a cluster that loses a node of each
kind under the same load.

The scenario is tests/cluster_scenario.py's (the one tests/test_cluster_chaos.py runs, with
more load): two router processes and one ledger+workflow+agents process, the simulated
provider, direct requests of three tenants with daily budgets that refuse part of them, and
a few product uploads whose agents make their own requests. Run twice:
- one node: one nats-server and one redis-server, nothing killed;
- cluster: three nats-servers (JetStream, R3 streams) and a Redis Cluster of three primaries;
  a third of the way the LLM_REQUESTS stream leader is SIGKILLed (it stays dead), two thirds
  of the way the primary holding a tenant's budget counters is SIGKILLed and restarted empty
  (its budget groups wait for the ledger process to rebuild them from the LEDGER stream;
  requests that met it away are redelivered).
Requests are published as fast as JetStream acks them (32 in flight), so requests/s is what
the services sustain, from the first publish to the last stored result and finished workflow.
Every figure is read from the streams and Redis afterwards. Writes bench/results/cluster.json.

Run: `.venv/bin/python -m bench.cluster [--per-tenant N] [--products N]`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from bench.report import table, write
from bus.logs import configure
from tests.cluster_scenario import ClusterRun, ClusterScenario, Load


async def one_run(load: Load, *, cluster: bool) -> tuple[ClusterRun, list[tuple[float, str]]]:
    """The load on a cluster (killing a node of each kind) or on one node (killing nothing)."""
    work = Path(tempfile.mkdtemp(prefix="flipsync-bench-cluster-"))
    scenario = ClusterScenario(work, load, cluster=cluster)
    try:
        await scenario.start()
        return await scenario.run(kill=cluster, timeout_s=600), scenario.timeline
    finally:
        await scenario.stop()
        shutil.rmtree(work, ignore_errors=True)


def summary(run: ClusterRun) -> dict[str, Any]:
    """The figures of one run."""
    return {
        "requests": run.requests,
        "direct_requests": run.direct,
        "workflows": run.workflows,
        "workflows_finished": run.workflows_finished,
        "seconds": round(run.seconds, 2),
        "requests_per_s": round(run.requests / run.seconds, 1),
        "lost": run.lost,
        "answered_twice": run.answered_twice,
        "double_paid": run.double_paid,
        "overspend_micro_usd": run.overspend_micro_usd,
        "outcomes": dict(run.outcomes),
        "other_errors": dict(run.reasons),
        "router_redeliveries": run.router_redeliveries,
        "views_equal_ledger": run.views_equal_ledger,
        "ledger_micro_usd": sum(run.ledger_micro_usd.values()),
    }


def main() -> None:
    """Run on one node, then on the cluster; write bench/results/cluster.json, print a table."""
    parser = argparse.ArgumentParser(prog="bench.cluster", description=__doc__)
    parser.add_argument("--per-tenant", type=int, default=200)
    parser.add_argument("--products", type=int, default=3)
    args = parser.parse_args()
    load = Load(per_tenant=args.per_tenant, products=args.products, per_second=0.0)
    single, _ = uvloop.run(one_run(load, cluster=False))
    clustered, timeline = uvloop.run(one_run(load, cluster=True))
    one, many = summary(single), summary(clustered)
    figures: dict[str, Any] = {
        "scope": "the services as processes (2 routers; ledger+workflow+agents) on one node "
        "and on 3 NATS nodes + 3 Redis primaries; simulated provider; all on this machine",
        "requests": clustered.requests,
        "lost": clustered.lost,
        "double_paid": clustered.double_paid,
        "overspend_micro_usd": clustered.overspend_micro_usd,
        "nats_node_killed": bool(clustered.nats_node_killed),
        "redis_primary_killed": bool(clustered.redis_primary_killed),
        "seconds": round(clustered.seconds, 2),
        "one_node": one,
        "cluster": {
            **many,
            "nats_node_killed": clustered.nats_node_killed,
            "redis_primary_killed": clustered.redis_primary_killed,
            "timeline_s": [[at, what] for at, what in timeline],
        },
        "load": {
            "tenants": load.tenants,
            "direct_per_tenant": load.per_tenant,
            "products": load.products,
            "tenant_limit_micro_usd": load.tenant_limit,
            "global_limit_micro_usd": load.global_limit,
            "in_flight": 32,
        },
    }
    path = write("cluster", figures)
    rows = [
        ("requests (direct + agents')", f"{single.requests} / {clustered.requests}"),
        (
            "requests/s: one node / cluster (a node of each killed)",
            f"{one['requests_per_s']} / {many['requests_per_s']}",
        ),
        (
            "lost / answered twice / paid twice / overspend (cluster)",
            f"{clustered.lost} / {clustered.answered_twice} / {clustered.double_paid} / "
            f"{clustered.overspend_micro_usd}",
        ),
        ("internal results (cluster)", str(clustered.outcomes["internal"])),
        ("router redeliveries (cluster)", str(clustered.router_redeliveries)),
        ("views equal the ledger (one node, cluster)",
         f"{single.views_equal_ledger}, {clustered.views_equal_ledger}"),
    ]  # fmt: skip
    print(table(rows, "bench/cluster: the services on one node and on a cluster losing nodes"))
    print(f"written to {path}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
