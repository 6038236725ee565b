"""bench/levers: what each coalescing lever saves on its own, and all of them together.

Replays bench/levers_workload (real arrival order, prompt sizes and questions; see that module
and bench/data/README.md) through the embedded stack (router and ledger on a real
nats-server and redis-server, simulated provider), once per lever configuration: no lever,
each lever alone, all levers. For each: upstream calls, input (and cached input) and output
tokens counted by the provider, cost, and the naive baseline (premium model, no lever). The
levers are switched with the same Settings flags a deployment uses; levers other engineers
own are found by their flags (enable_*, and pack_max_items=1 for packing off).

The semantic-cache and packing figures come from bench.levers_semantic and
bench.levers_packing when those modules exist; otherwise their keys are null.

Run: `.venv/bin/python -m bench.levers [--quick]`. Writes bench/results/levers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

import aiohttp
import nats.errors
import uvloop

from bench.levers_report import Run, optional_figures, render
from bench.levers_workload import AGENTS, Arrival, arrivals, load
from bench.report import write
from bus.embedded.process import free_port
from bus.llm_client import LlmClient
from bus.logs import configure
from bus.messages import LlmResult
from bus.settings import Settings
from cost_ledger.lever_split import lever_split
from cost_ledger.savings import settled
from flipsync.children import simulated_provider_process
from flipsync.stack import Service, start_stack

REPLAY_S = 30.0
"""Each stream of the trace is replayed over this many seconds."""
SIM_LATENCY_MS = 300.0
MINE = {
    "pattern": "enable_pattern",
    "trim": "enable_trim",
    "exact_cache": "enable_exact_cache",
    "dedup": "enable_dedup",
}
Overrides = dict[str, object]


def switches() -> dict[str, tuple[Overrides, Overrides]]:
    """Each lever's (off, on) settings, for the levers this checkout has."""
    fields = Settings.model_fields
    found: dict[str, tuple[Overrides, Overrides]] = {
        lever: ({flag: False}, {flag: True}) for lever, flag in MINE.items() if flag in fields
    }
    for name in sorted(fields):
        if name.startswith("enable_") and name not in MINE.values():
            found[name.removeprefix("enable_")] = ({name: False}, {name: True})
    if "pack_max_items" in fields:
        found["packing"] = (
            {"pack_max_items": 1},
            {"pack_max_items": fields["pack_max_items"].default},
        )
    return found


def configurations(levers: dict[str, tuple[Overrides, Overrides]]) -> dict[str, Overrides]:
    """no levers, each lever alone, all levers: name -> settings overrides."""
    off: Overrides = {k: v for off_, _ in levers.values() for k, v in off_.items()}
    configs = {"no_levers": dict(off)}
    for lever, (_, on) in levers.items():
        configs[lever] = {**off, **on}
    configs["all_levers"] = {k: v for _, on in levers.values() for k, v in on.items()}
    return configs


async def replay(client: LlmClient, workload: list[Arrival]) -> list[LlmResult]:
    """Send each request at its arrival time; every result, in workload order."""
    start = time.perf_counter()

    async def send(arrival: Arrival) -> LlmResult:
        delay = start + arrival.at_ms / 1000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(4):  # a publish that timed out is sent again (JetStream dedups by id)
            with contextlib.suppress(nats.errors.TimeoutError):
                return await client.request(arrival.request, timeout_s=300)
        return await client.request(arrival.request, timeout_s=300)

    return list(await asyncio.gather(*(send(a) for a in workload)))


async def run(overrides: Overrides, workload: list[Arrival], sim_url: str) -> Run:
    """One configuration on a fresh embedded stack, against the (reset) simulated provider."""
    settings = Settings(
        nats_url=None,
        redis_url=None,
        openai_api_key=None,
        openai_base_url=None,
        sim_base_url=f"{sim_url}/v1",
        extra_agents=AGENTS,
        **overrides,  # type: ignore[arg-type]
    )
    async with aiohttp.ClientSession() as http:
        await (await http.post(f"{sim_url}/_sim/reset")).read()  # counters and prompt cache
    stack = await start_stack(settings, {Service.ROUTER, Service.LEDGER})
    try:
        started = time.perf_counter()
        results = await replay(LlmClient(stack.broker), workload)
        seconds = time.perf_counter() - started
        async with aiohttp.ClientSession() as http:
            stats = await (await http.get(f"{sim_url}/_sim/stats")).json()
        figures = Run(
            requests=len(results),
            calls=stats["calls"],
            input_tokens=stats["prompt_tokens"],
            cached_input_tokens=stats["cached_tokens"],
            output_tokens=stats["completion_tokens"],
            cost_micro_usd=sum(r.cost_micro_usd for r in results),
            baseline_micro_usd=sum(r.baseline_micro_usd for r in results),
            errors=sum(not r.ok for r in results),
            by_lever=dict(Counter(r.lever.value for r in results)),
            seconds=round(seconds, 1),
            savings_by_lever=_split(results),
        )
        js = stack.broker.connection.jetstream()
        figures.ledger_agrees = await _ledger_agrees(stack.aggregates, js, figures)
        return figures
    finally:
        await stack.stop()


def _split(results: list[LlmResult]) -> dict[str, int]:
    """Each lever's part of baseline minus cost over the results (cost_ledger.savings)."""
    total: Counter[str] = Counter()
    for r in results:
        total.update(settled(r.savings_by_lever, r.baseline_micro_usd, r.cost_micro_usd,
                             r.lever.value))  # fmt: skip
    return dict(sorted(total.items()))


async def _ledger_agrees(aggregates: Any, js: Any, figures: Run) -> bool:
    """Whether the ledger's totals come to the results' sums plus the levers' own calls
    (read from the ledger stream: shadow checks may end after the last result), within 30 s;
    sets figures.lever_cost_micro_usd."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        own = await lever_split(js)
        figures.lever_cost_micro_usd = sum(own.lever_cost.values())
        totals = await aggregates.totals()
        if (totals.spend_micro_usd, totals.baseline_micro_usd) == (
            figures.all_in(),
            figures.baseline_micro_usd,
        ):
            return True
        await asyncio.sleep(0.5)
    return False


async def run_all(configs: dict[str, Overrides], workload: list[Arrival]) -> dict[str, Run]:
    """Every configuration, one after the other, each on its own stack.

    The simulated provider runs in its own process, as a real provider would: counting the
    tokens of long prompts must not stall the router's event loop.
    """
    port = free_port()
    sim = simulated_provider_process(port, latency_ms=SIM_LATENCY_MS)
    await sim.start()
    runs: dict[str, Run] = {}
    try:
        for name, overrides in configs.items():
            runs[name] = await run(overrides, workload, f"http://127.0.0.1:{port}")
            print(f"{name}: {runs[name].calls} calls in {runs[name].seconds}s", flush=True)
    finally:
        await sim.stop()
    return runs


def main(quick: bool) -> None:
    """Run every configuration, write bench/results/levers.json, print the table."""
    workload = arrivals(load(), span_ms=REPLAY_S * 1000)
    if quick:
        workload = workload[: len(workload) // 5]
    levers = switches()
    runs = uvloop.run(run_all(configurations(levers), workload))
    # After the loop: the other benches' figure functions run their own event loops.
    naive = runs["no_levers"].baseline_micro_usd or 1
    semantic = optional_figures(
        "bench.levers_semantic",
        "semantic_figures",
        ("semantic_precision", "semantic_hit_rate", "entity_wrong_hits"),
        skip=quick,
    )
    packing = optional_figures(
        "bench.levers_packing", "packing_figures", ("packing_call_reduction",), skip=quick
    )
    everything = runs["all_levers"]
    figures = {
        "semantic_precision": semantic.get("semantic_precision"),
        "semantic_hit_rate": semantic.get("semantic_hit_rate"),
        "entity_wrong_hits": semantic.get("entity_wrong_hits"),
        "packing_call_reduction": packing.get("packing_call_reduction"),
        "all_levers_cost_ratio": round(everything.all_in() / naive, 4),
        "all_levers_cost_ratio_vs_no_levers": round(
            everything.all_in() / (runs["no_levers"].all_in() or 1), 4
        ),
        "cost_basis": "all-in: each run's results and its levers' own calls (routing's "
        "shadow and judge calls, the cache's checks), as the ledger books them",
        "all_levers_call_ratio": round(everything.calls / (runs["no_levers"].calls or 1), 4),
        "naive_baseline_micro_usd": naive,
        "runs": {name: asdict(r) for name, r in runs.items()},
        "levers": {name: {"off": off, "on": on} for name, (off, on) in levers.items()},
        "semantic": semantic,
        "packing": packing,
        "workload": {
            "requests": len(workload),
            "replay_s": REPLAY_S,
            "sim_latency_ms": SIM_LATENCY_MS,
            "quick": quick,
            "by_task_type": dict(Counter(a.request.task_type for a in workload)),
            "source": "bench/levers_workload.py, bench/data/README.md",
        },
    }
    path = write("levers", figures)
    print()
    print(render(runs, naive))
    print(
        f"\nall levers: cost/naive baseline {figures['all_levers_cost_ratio']}, "
        f"cost/no levers {figures['all_levers_cost_ratio_vs_no_levers']}, "
        f"calls/no levers {figures['all_levers_call_ratio']}"
    )
    for label, part in (("semantic cache", semantic), ("packing", packing)):
        note = part.get("note")
        print(f"{label}: {note}" if note else f"{label}: {part}")
    print(f"written to {path}")


if __name__ == "__main__":
    configure(service=True)  # warnings; FastStream's routine records only with -v
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a fifth of the workload, no semantic or packing run"
    )
    main(parser.parse_args().quick)
