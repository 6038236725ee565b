"""bench/levers' figures: one run's numbers, the printed table, and the other benches' parts."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cost_ledger.pricing import to_usd


@dataclass(kw_only=True)
class Run:
    """The figures of one lever configuration over the whole workload."""

    requests: int
    calls: int
    """Completions the provider produced (upstream calls)."""
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    baseline_micro_usd: int
    """Sum of the results' naive baselines (should match the no-lever run's)."""
    errors: int
    by_lever: dict[str, int] = field(default_factory=dict)
    ledger_agrees: bool = False
    """The ledger's totals equal the results' sums plus the levers' own calls (every dollar
    attributed once)."""
    lever_cost_micro_usd: int = 0
    """What the levers' own calls cost (routing's shadow and judge calls, the cache's
    checks): in the ledger, in no result. all_in() adds it to cost_micro_usd."""

    def all_in(self) -> int:
        """What the run spent: its results' cost and the levers' own calls."""
        return self.cost_micro_usd + self.lever_cost_micro_usd

    seconds: float = 0.0
    savings_by_lever: dict[str, int] = field(default_factory=dict)
    """Each lever's part of baseline minus cost (the results' splits summed)."""


def optional_figures(
    module: str, function: str, keys: tuple[str, ...], *, skip: bool = False
) -> dict[str, Any]:
    """module.function()'s figures, or null keys and a note when the module is not there."""
    if skip:
        return {**dict.fromkeys(keys), "note": f"{module} skipped (--quick)"}
    try:
        figures: Callable[[], dict[str, Any]] = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        return {**dict.fromkeys(keys), "note": f"{module}.{function} not present"}
    return figures()


def render(runs: dict[str, Run], naive: int) -> str:
    """The table printed at the end."""
    head = (
        f"{'levers':<14}{'calls':>7}{'input tok':>12}{'cached':>11}{'output tok':>12}"
        f"{'all-in $':>11}{'baseline $':>12}{'cost/naive':>11}{'vs none':>9}  ledger"
    )
    lines = [head, "-" * len(head)]
    none = runs["no_levers"].all_in() or 1
    for name, r in runs.items():
        lines.append(
            f"{name:<14}{r.calls:>7}{r.input_tokens:>12,}{r.cached_input_tokens:>11,}"
            f"{r.output_tokens:>12,}{to_usd(r.all_in()):>11.4f}"
            f"{to_usd(r.baseline_micro_usd):>12.4f}{r.all_in() / naive:>11.4f}"
            f"{r.all_in() / none:>9.3f}  {'ok' if r.ledger_agrees else 'MISMATCH'}"
        )
    lines.append("savings split by lever (micro-USD; each run's parts sum to baseline - cost):")
    for name, r in runs.items():
        parts = ", ".join(f"{lever} {amount:,}" for lever, amount in r.savings_by_lever.items())
        lines.append(f"  {name:<12} {parts}")
    return "\n".join(lines)
