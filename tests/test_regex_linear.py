"""FlipSync's regular expressions run in linear time on hostile text.

Found by review: patterns tried from every position of a long run (of digits, spaces,
newlines) took time quadratic in the run, on the router's or the agents' event loop: a
64 KB prompt of newlines held the router 11 s in routing's cues, 8,192 digits in a question
5.6 s in the semantic cache's entities, a seller's note of 20,000 digits the agents 39 s.
Each pattern (kept at module level, or a literal handed to re's functions anywhere) is run
over runs of 100,000 characters of every kind that made one of them slow; a linear pattern
takes a few milliseconds there, a quadratic one seconds. The bound is a hang guard with two
orders of magnitude to spare, not a performance check.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import time
from pathlib import Path
from typing import Any

import pytest

PACKAGES = ("agents", "api", "bus", "cost_ledger", "flipsync", "notifier", "optimizer",
            "router", "simulator")  # fmt: skip
RUNS = ("1", " ", "\n", "\t", "a", "A", "_", ".", "@", "-", "/", ":", "'", "#", "%", "<", ">",
        "1 ", "a ", "1.", "a.", "1-", "1,", "$1", "1x", "a1", "aA", " \n")  # fmt: skip
LENGTH = 100_000
HANG_GUARD_S = 2.0
ROOT = Path(__file__).resolve().parent.parent
RE_FUNCTIONS = {"compile", "search", "match", "fullmatch", "sub", "subn", "findall", "finditer",
                "split"}  # fmt: skip
ANCHORED = {
    "agents.csv_values._MONEY": "fullmatch on one stripped cell: one start, linear there",
}
"""Patterns used only anchored at one position, checked that way instead of by finditer."""


def _patterns() -> dict[str, re.Pattern[str] | re.Pattern[bytes]]:
    found: dict[str, re.Pattern[str] | re.Pattern[bytes]] = {}
    seen: set[re.Pattern[str] | re.Pattern[bytes]] = set()
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, re.Pattern) and value not in seen:
                    seen.add(value)  # once, under the first module holding it
                    found[f"{info.name}.{name}"] = value
    return found


def _inline_patterns(kept: set[str]) -> dict[str, re.Pattern[str]]:
    """Literal patterns handed to re's functions anywhere in the packages' source (inside
    functions too: ``re.search(r"...", text)``), by file and line; those kept elsewhere
    already (kept: module-level patterns' sources) once."""
    found: dict[str, re.Pattern[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in RE_FUNCTIONS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "re"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    continue
                source = node.args[0].value
                if source not in kept:
                    kept.add(source)
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found[where] = re.compile(source)
    return found


PATTERNS = _patterns()
PATTERNS.update(
    _inline_patterns({str(p.pattern) for p in PATTERNS.values() if isinstance(p.pattern, str)})
)


def test_the_scan_finds_the_patterns_that_were_slow() -> None:
    for name in ("router.routing.features._MATH", "router.semantic.amounts._MONEY_SYMBOL",
                 "agents.units._SINGLE", "router.routing.learned._OPTION"):  # fmt: skip
        assert name in PATTERNS


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_a_pattern_takes_linear_time_on_long_runs(name: str) -> None:
    pattern = PATTERNS[name]
    slowest, on = 0.0, ""
    for run in RUNS:
        text = (run * (LENGTH // len(run) + 1))[:LENGTH]
        subject: Any = text.encode() if isinstance(pattern.pattern, bytes) else text
        started = time.perf_counter()
        if name in ANCHORED:
            pattern.fullmatch(subject.strip())
            pattern.fullmatch(subject[:1] + subject + subject[:1])
        else:
            for _ in pattern.finditer(subject):
                pass
        took = time.perf_counter() - started
        if took > slowest:
            slowest, on = took, run
    assert slowest < HANG_GUARD_S, f"{name} took {slowest:.1f}s on a run of {on!r}"
