"""bench/liveness: do live requests keep their leases through a burst on a loaded machine?

The same scenario as bench/budget (tests/budget_scenario.py: 1,000 concurrent requests with
a photo each, billed as a provider bills, three `flipsync run router ledger` replicas, a
budget of a third of their cost), with CPU burners beside it, run with each way of renewing
the router's leases (settings.lease_renewal): "loop", beats on the event loop as before,
and "thread", bus.liveness's thread. Rounds alternate between the two, so the machine's
state is shared.

Counted from the replicas' logs, per burst: live calls booked as lost (their paid-call
lease lapsed while they ran: booked at their bound, not their price), dedup claims lost (a
second provider call may follow), requests settled after their reservation expired (the
one way spend can pass a budget); and from the books: overspend, utilization. Writes
bench/results/liveness.json.

Run: `.venv/bin/python -m bench.liveness [--rounds N] [--burners N] [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop

from bench.report import table, write
from bus.logs import configure
from tests.budget_scenario import BudgetCluster, ScenarioResult

MODES = ("loop", "thread")
SIGNS = {
    "booked_as_lost": "was booked as lost while it ran",
    "claims_lost": "lost the claim of call",
    "settled_after_expiry": "after its reservation expired",
}
"""What each count looks for in the replicas' logs."""


@contextlib.contextmanager
def burners(count: int) -> Iterator[None]:
    """count processes spinning on a core each: a machine busy with other work."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def burst(mode: str, requests: int, burner_count: int) -> dict[str, Any]:
    """One burst with leases renewed by mode, on servers and processes of its own."""
    with tempfile.TemporaryDirectory() as folder:
        cluster = BudgetCluster(
            Path(folder),
            billing="provider",
            photos=True,
            env={"FLIPSYNC_LEASE_RENEWAL": mode},
        )
        try:
            await cluster.start()
            with burners(burner_count):
                result: ScenarioResult = await cluster.burst("bench", requests)
        finally:
            await cluster.stop()
        logs = await asyncio.to_thread(_logs, Path(folder))
    counts = {name: logs.count(sign) for name, sign in SIGNS.items()}
    return counts | {
        "overspend_micro_usd": result.overspend_micro_usd,
        "utilization": round(float(result.utilization), 4),
        "served": result.ok,
        "seconds": round(result.seconds, 2),
    }


def _logs(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("replica-*.log")))


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and worst cases over one mode's bursts."""
    return {
        "bursts": len(runs),
        **{name: sum(r[name] for r in runs) for name in SIGNS},
        "overspend_micro_usd_max": max(r["overspend_micro_usd"] for r in runs),
        "utilization_min": min(r["utilization"] for r in runs),
        "seconds_mean": round(sum(r["seconds"] for r in runs) / len(runs), 2),
        "runs": runs,
    }


async def run(rounds: int, requests: int, burner_count: int) -> dict[str, list[dict[str, Any]]]:
    """rounds bursts of each mode, alternating."""
    out: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for i in range(rounds):
        for mode in MODES if i % 2 == 0 else reversed(MODES):
            out[mode].append(await burst(mode, requests, burner_count))
            print(f"round {i + 1} {mode}: {out[mode][-1]}", file=sys.stderr)
    return out


def main() -> None:
    """Run, write bench/results/liveness.json, print a table."""
    parser = argparse.ArgumentParser(prog="bench.liveness", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--burners", type=int, default=6, help="CPU-spinning processes")
    args = parser.parse_args()
    runs = uvloop.run(run(args.rounds, args.requests, args.burners))
    figures = {mode: summary(runs[mode]) for mode in MODES}
    path = write(
        "liveness",
        {
            **figures,
            "requests": args.requests,
            "replicas": 3,
            "burners": args.burners,
            "provider": "simulated, 20 ms latency, billed as a provider, a photo per request",
        },
    )
    loop, thread = figures["loop"], figures["thread"]
    rows = [(name.replace("_", " "), f"{loop[name]} / {thread[name]}") for name in SIGNS]
    rows += [
        ("overspend, worst burst (micro-USD)",
         f"{loop['overspend_micro_usd_max']} / {thread['overspend_micro_usd_max']}"),
        ("utilization, lowest", f"{loop['utilization_min']:.2%} / {thread['utilization_min']:.2%}"),
        ("burst time, mean (s)", f"{loop['seconds_mean']} / {thread['seconds_mean']}"),
    ]  # fmt: skip
    title = (
        f"bench/liveness: leases renewed on the loop / by a thread "
        f"({args.rounds} bursts each of {args.requests}, {args.burners} CPU burners)"
    )
    print(table(rows, title))
    print(f"written to {path}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
