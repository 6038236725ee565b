"""bench/chaos: hostile input and dying processes, the large run of tests/test_fuzz.py and
tests/test_chaos_kill.py side by side.

1. Kills (tests/chaos_scenario.py): 3 `flipsync run router ledger` replicas, a simulated
   provider taking 300-800 ms a call, requests in waves; replicas SIGKILLed while calls are
   at the provider and replaced. Figures: requests lost, provider calls against booked
   calls, the ledger's spend minus the provider's bill (never negative is the promise), and
   calls paid twice per 1,000 calls a kill caught at the provider.
2. Fuzz (tests/fuzzing.py): hypothesis-drawn inputs (fixed seed) to every HTTP endpoint and
   to llm.request on an embedded stack. Figures: inputs, 5xx responses, messages with
   neither a result nor a dead letter.
Writes bench/results/chaos.json.

Run: `.venv/bin/python -m bench.chaos [--requests N] [--kills N] [--http N] [--nats N]`.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import uvloop

from bench.report import table, write
from bus.logs import configure
from bus.settings import Settings
from flipsync.stack import Service, start_stack
from tests.chaos_scenario import ChaosCluster, ChaosResult
from tests.fuzzing import FuzzReport, draw, fuzz_http, fuzz_nats, http_cases, nats_cases

SEED = 2026


async def kills(requests: int, count: int) -> ChaosResult:
    """The kill scenario on servers and processes of its own."""
    cluster = ChaosCluster(replicas=3)
    try:
        await cluster.start()
        return await cluster.run(requests=requests, kills=count)
    finally:
        await cluster.stop()


async def fuzz(http: int, nats: int) -> FuzzReport:
    """The fuzz suite, larger, on an embedded stack of its own."""
    tenant, key = f"fz{uuid.uuid4().hex[:8]}", "sk-bench-" + uuid.uuid4().hex
    settings = Settings(
        sim_latency_ms=0, provider_max_retries=0, api_port=0, api_keys={key: tenant},
        extra_agents=frozenset({"listing"}),
    )  # fmt: skip
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.AGENTS, Service.API}
    stack = await start_stack(settings, services)
    report = FuzzReport()
    try:
        await fuzz_http(stack, key, draw(http_cases(tenant), http, SEED), report)
        await fuzz_nats(stack, draw(nats_cases(tenant), nats, SEED), report)
    finally:
        await stack.stop()
    return report


def figures(chaos: ChaosResult, report: FuzzReport) -> dict[str, Any]:
    """What chaos.json keeps."""
    return {
        "requests": chaos.requests,
        "lost": chaos.lost,
        "error_results": chaos.errors,
        "kills": chaos.kills,
        "provider_calls": chaos.provider_calls,
        "booked_calls": chaos.booked_calls,
        "kills_in_flight": chaos.kills_in_flight,
        "paid_twice": chaos.paid_twice,
        "levers_own_calls": chaos.levers_own_calls,
        "paid_twice_per_1000_kills_in_flight": round(chaos.paid_twice_per_1000_kills_in_flight, 1),
        "ledger_micro_usd": chaos.ledger_micro_usd,
        "provider_billed_micro_usd": chaos.provider_billed_micro_usd,
        "ledger_minus_provider_micro_usd": chaos.ledger_minus_provider_micro_usd,
        "kill_run_seconds": round(chaos.seconds, 1),
        "fuzz_inputs": report.inputs,
        "fuzz_http_inputs": report.http_inputs,
        "fuzz_nats_inputs": report.nats_inputs,
        "fuzz_5xx": len(report.five_xx),
        "fuzz_5xx_examples": report.five_xx[:5],
        "fuzz_leaks": len(report.leaks),
        "fuzz_statuses": {str(k): v for k, v in sorted(report.statuses.items())},
        "fuzz_closed_early": report.closed_early,
        "dropped_without_trace": len(report.untraced),
        "provider": "simulated, 550 +/- 250 ms a call, in the bench process",
    }


def main() -> None:
    """Run both, write bench/results/chaos.json, print a table."""
    parser = argparse.ArgumentParser(prog="bench.chaos", description=__doc__)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--http", type=int, default=2000)
    parser.add_argument("--nats", type=int, default=400)
    args = parser.parse_args()
    chaos = uvloop.run(kills(args.requests, args.kills))
    report = uvloop.run(fuzz(args.http, args.nats))
    result = figures(chaos, report)
    path = write("chaos", result)
    rows = [
        ("requests / lost", f"{chaos.requests} / {chaos.lost}"),
        ("replicas killed while calls were at the provider", str(chaos.kills)),
        ("calls a kill caught at the provider (booked as lost)", str(chaos.kills_in_flight)),
        ("provider calls / booked calls", f"{chaos.provider_calls} / {chaos.booked_calls}"),
        ("of which the levers' own (cascade, shadow)", str(chaos.levers_own_calls)),
        ("calls paid twice per 1,000 caught", f"{chaos.paid_twice_per_1000_kills_in_flight:.0f}"),
        ("ledger minus provider bill (micro-USD)", str(chaos.ledger_minus_provider_micro_usd)),
        ("fuzz inputs (HTTP + NATS)", f"{report.http_inputs} + {report.nats_inputs}"),
        ("fuzz 5xx responses", str(len(report.five_xx))),
        ("messages without a result or a dead letter", str(len(report.untraced))),
    ]
    print(table(rows, "bench/chaos: hostile input and dying processes"))
    print(f"written to {path}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    main()
