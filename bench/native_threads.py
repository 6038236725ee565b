"""bench/native_threads: what numpy's BLAS threads cost the router's per-request products.

The route stage blends each prompt's vector with the nearest recorded outcomes of every
candidate model (router.routing.neighbours.OutcomeMemory.blend): one matrix-vector product
over the task type's rings, 256 outcomes of 256 dimensions per model once a deployment has
learned. This runs that blend, with every ring full (12 models), in two child processes side
by side: one with OpenBLAS held to one thread (what flipsync.native_threads does in every
service process) and one with OpenBLAS's default (a thread per core). It reports the CPU
and wall time per blend of each, and their ratio.

Run: `.venv/bin/python -m bench.native_threads`. Writes bench/results/native_threads.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import machine, table

RESULTS = Path(__file__).parent / "results" / "native_threads.json"
MODELS, MEMORY, DIMS, BLENDS = 12, 256, 256, 3000


def measure() -> dict[str, float]:
    """CPU and wall microseconds per blend in this process, rings full."""
    import numpy as np

    from router.routing.neighbours import NeighbourSettings, OutcomeMemory

    rng = np.random.default_rng(7)
    memory = OutcomeMemory(NeighbourSettings(memory=MEMORY))
    models = [f"model-{i}" for i in range(MODELS)]

    def unit() -> Any:
        v = rng.standard_normal(DIMS).astype(np.float32)
        return v / np.linalg.norm(v)

    for model in models:
        for _ in range(MEMORY):
            memory.add("listing", model, unit(), float(rng.random() < 0.8))
    chances = dict.fromkeys(models, 0.7)
    queries = [unit() for _ in range(64)]
    for q in queries:  # warm
        memory.blend("listing", q, chances)
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(BLENDS):
        memory.blend("listing", queries[n % len(queries)], chances)
    return {
        "cpu_us_per_blend": round((time.process_time() - cpu) / BLENDS * 1e6, 1),
        "wall_us_per_blend": round((time.perf_counter() - wall) / BLENDS * 1e6, 1),
    }


def _child(threads: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS",
                                                          "OMP_NUM_THREADS")}  # fmt: skip
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    out = subprocess.run(
        [sys.executable, "-m", "bench.native_threads", "--child"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def main() -> None:
    """Both children, alternated twice, and the ratio of their CPU per blend."""
    if "--child" in sys.argv:
        print(json.dumps(measure()))
        return
    runs: dict[str, list[dict[str, float]]] = {"one_thread": [], "default_threads": []}
    for _ in range(2):
        runs["one_thread"].append(_child("1"))
        runs["default_threads"].append(_child(None))
    best = {name: min(r["cpu_us_per_blend"] for r in rs) for name, rs in runs.items()}
    result = {
        "what": f"OutcomeMemory.blend, {MODELS} models x {MEMORY} outcomes x {DIMS} dims, "
        f"{BLENDS} blends per child process; best of 2 alternated runs each",
        "cores": os.cpu_count(),
        "runs": runs,
        "cpu_us_per_blend": best,
        "cpu_ratio_default_to_one": round(best["default_threads"] / best["one_thread"], 2),
        "machine": machine(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows = [(name, f"{best[name]} µs CPU per blend") for name in best]
    rows.append(("default / one", f"{result['cpu_ratio_default_to_one']}x"))
    print(table(rows, "bench/native_threads (OpenBLAS threads in the route stage's blend)"))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
