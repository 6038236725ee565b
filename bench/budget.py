"""bench/budget: 1,000 concurrent requests against a budget of a third of their cost.

Three `flipsync run router ledger` replicas as processes, real nats-server and redis-server,
the simulated provider in this process (tests/budget_scenario.py, the same scenario as
tests/test_budget_concurrency.py). The promise: 0 micro-dollars over budget, at least 95% of
it used. Writes bench/results/budget.json.

Run: `.venv/bin/python -m bench.budget [--requests N] [--replicas N]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from bench.report import table, write
from bus.logs import configure
from cost_ledger.report import usd
from tests.budget_scenario import BudgetCluster, ScenarioResult


async def run(
    requests: int, replicas: int, billing: str = "estimate", photos: bool = False
) -> ScenarioResult:
    """Run the scenario once, on servers and processes of its own."""
    with tempfile.TemporaryDirectory() as folder:
        cluster = BudgetCluster(Path(folder), replicas=replicas, billing=billing, photos=photos)
        try:
            await cluster.start()
            return await cluster.burst("bench", requests)
        finally:
            await cluster.stop()


def figures(result: ScenarioResult) -> dict[str, Any]:
    """What budget.json keeps."""
    return {
        "overspend_micro_usd": result.overspend_micro_usd,
        "utilization": round(float(result.utilization), 4),  # a ratio, not money
        "requests": result.requests,
        "replicas": result.replicas,
        "limit_micro_usd": result.limit_micro_usd,
        "spent_micro_usd": result.spent_micro_usd,
        "ledger_micro_usd": result.ledger_micro_usd,
        "estimated_total_micro_usd": result.estimated_total_micro_usd,
        "served": result.ok,
        "refused": result.refused,
        "other_errors": len(result.other_errors),
        "reserved_left_micro_usd": result.reserved_left,
        "seconds": round(result.seconds, 2),
        "provider": "simulated, 20 ms latency, in the bench process",
    }


def main() -> None:
    """Run, write bench/results/budget.json, print a table."""
    parser = argparse.ArgumentParser(prog="bench.budget", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument(
        "--billing", choices=("estimate", "provider"), default="estimate",
        help="provider: the simulator bills with another tokenizer and each model's image rule",
    )  # fmt: skip
    parser.add_argument("--photos", action="store_true", help="a real PNG in every request")
    args = parser.parse_args()
    result = uvloop.run(run(args.requests, args.replicas, args.billing, args.photos))
    name = "budget" if args.billing == "estimate" and not args.photos else "budget_billing"
    path = write(name, figures(result) | {"billing": args.billing, "photos": args.photos})
    agrees = result.ledger_micro_usd == result.spent_micro_usd
    rows = [
        ("requests (all in flight at once)", str(result.requests)),
        ("router replicas (processes)", str(result.replicas)),
        ("budget", usd(result.limit_micro_usd)),
        ("settled spend", usd(result.spent_micro_usd)),
        ("overspend (micro-USD)", str(result.overspend_micro_usd)),
        ("utilization", f"{result.utilization:.2%}"),
        ("served / refused", f"{result.ok} / {result.refused}"),
        ("budget counter equals ledger", str(agrees)),
        ("burst time (s)", f"{result.seconds:.1f}"),
    ]
    print(table(rows, "bench/budget: reserve before, settle after"))
    print(f"written to {path}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
