"""bench/cli_help: how long `flipsync <command> --help` takes, against a bare interpreter.

A person types `--help` to learn a command; the answer should come at once (the bound we
hold is one second of wall clock for the whole process). Each command's parser imports
nothing heavy (tests/test_cli_help.py checks that deterministically); this measures what it
costs in time, beside its peer: `python -c pass`, the interpreter's own start, run in the
same loop. Each figure is the best of TRIES runs (the machine is shared: a slow import shows
in every run, a busy neighbour in one).

Run: `.venv/bin/python -m bench.cli_help`. Writes bench/results/cli_help.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.report import table, write
from flipsync.cli import COMMAND_HELP

BOUND_S = 1.0
"""The bound: `flipsync <command> --help`, wall clock of the whole process."""
TRIES = 3
SUBCOMMANDS = (("budget", "set"), ("cost", "forecast"), ("experiment", "start"))
"""One subcommand of each group that has them (built with its command's imports)."""


def _env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    return {**clean, "PYTHONDONTWRITEBYTECODE": "1"}


def best_seconds(argv: list[str]) -> float:
    """Best wall time of a child process over TRIES runs; raises if it fails."""
    best = float("inf")
    for _ in range(TRIES):
        start = time.perf_counter()
        subprocess.run(argv, env=_env(), capture_output=True, timeout=60, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Every command's --help and the bare interpreter, then the slowest against the bound."""
    bare = best_seconds([sys.executable, "-c", "pass"])
    words = [(), *((c,) for c in COMMAND_HELP), *SUBCOMMANDS]
    seconds = {
        " ".join(w) or "(none)": round(
            best_seconds([sys.executable, "-m", "flipsync", *w, "--help"]), 3
        )
        for w in words
    }
    slowest = max(seconds, key=lambda k: seconds[k])
    over = sorted(k for k, s in seconds.items() if s >= BOUND_S)
    figures = {
        "what": f"wall seconds of `flipsync WORDS --help`, best of {TRIES} runs each",
        "bound_s": BOUND_S,
        "bare_interpreter_s": round(bare, 3),
        "seconds": seconds,
        "slowest": slowest,
        "slowest_s": seconds[slowest],
        "slowest_vs_bare": round(seconds[slowest] / bare, 1),
        "over_bound": over,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    path = write("cli_help", figures)
    rows = [
        ("python -c pass", f"{bare:.3f} s"),
        (f"slowest: flipsync {slowest} --help", f"{seconds[slowest]:.3f} s"),
        ("slowest / bare interpreter", f"{figures['slowest_vs_bare']}x"),
        (f"commands at or over {BOUND_S:g} s", str(len(over))),
    ]
    print(table(rows, "bench/cli_help (wall clock of --help, best of 3)"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
