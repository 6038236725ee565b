"""Cost benchmarks: each agent's cost per operation (from the ledger aggregates) against the
reference figure of its operation type (cost_reference.toml), and the overall figure."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.errors import ReferenceFileError
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd

REFERENCE_FILE = "cost_reference.toml"
OVERALL = "overall"


@dataclass(frozen=True, kw_only=True)
class References:
    """Reference USD per operation, by operation type and by task type."""

    version: str
    operations: Mapping[str, Decimal]
    task_operation: Mapping[str, str]
    """Task type -> operation type."""
    overall_before: Decimal
    overall_target: Decimal

    @classmethod
    def load(cls, path: Path | str | None = None) -> References:
        """Read the reference file (the packaged one by default); raises ReferenceFileError."""
        try:
            if path is None:
                text = resources.files("cost_ledger").joinpath(REFERENCE_FILE).read_text()
            else:
                text = Path(path).read_text(encoding="utf-8")
            return cls.from_dict(tomllib.loads(text))
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, InvalidOperation) as exc:
            where = path or REFERENCE_FILE
            raise ReferenceFileError(f"cannot read cost references {where}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> References:
        """Build the references from parsed TOML."""
        operations: dict[str, Decimal] = {}
        task_operation: dict[str, str] = {}
        for name, row in data["operations"].items():
            operations[name] = Decimal(row["usd"])
            for task in row.get("task_types", []):
                task_operation[task] = name
        overall = data[OVERALL]
        return cls(
            version=str(data.get("version", "")),
            operations=operations,
            task_operation=task_operation,
            overall_before=Decimal(overall["before"]),
            overall_target=Decimal(overall["target"]),
        )

    def reference(self, task_type: str) -> tuple[str, Decimal]:
        """(operation type, USD per operation) of a task type; the overall target if none."""
        operation = self.task_operation.get(task_type)
        if operation is None:
            return OVERALL, self.overall_target
        return operation, self.operations[operation]


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    """One agent (or operation type) against its reference."""

    name: str
    task_type: str
    operation: str
    operations: int
    cost_per_op: Decimal
    reference: Decimal

    @property
    def excess(self) -> Decimal:
        """USD per operation above the reference (negative: below)."""
        return self.cost_per_op - self.reference

    @property
    def ratio(self) -> Decimal:
        """Cost per operation as a multiple of the reference."""
        return self.cost_per_op / self.reference if self.reference else Decimal("Infinity")

    @property
    def above(self) -> bool:
        """Whether it costs more per operation than the reference."""
        return self.cost_per_op > self.reference


def per_op(totals: Totals) -> Decimal:
    """USD per operation (ledger event: every request served, by any lever)."""
    return to_usd(totals.spend_micro_usd) / totals.calls if totals.calls else Decimal(0)


def benchmarks(
    by_agent: Mapping[str, Totals], agent_task: Mapping[str, str], references: References
) -> list[Benchmark]:
    """Each agent with operations against its task type's reference, worst excess first."""
    rows = []
    for agent, totals in by_agent.items():
        if not totals.calls:
            continue
        task = agent_task.get(agent, "general")
        operation, reference = references.reference(task)
        rows.append(
            Benchmark(
                name=agent,
                task_type=task,
                operation=operation,
                operations=totals.calls,
                cost_per_op=per_op(totals),
                reference=reference,
            )
        )
    return sorted(rows, key=lambda b: b.excess, reverse=True)


def by_operation(rows: list[Benchmark], references: References) -> list[Benchmark]:
    """The agents' rows summed per operation type."""
    sums: dict[str, tuple[int, Decimal]] = {}
    for row in rows:
        count, spend = sums.get(row.operation, (0, Decimal(0)))
        sums[row.operation] = (count + row.operations, spend + row.cost_per_op * row.operations)
    out = []
    for operation, (count, spend) in sorted(sums.items()):
        reference = references.operations.get(operation, references.overall_target)
        out.append(
            Benchmark(
                name=operation,
                task_type="",
                operation=operation,
                operations=count,
                cost_per_op=spend / count,
                reference=reference,
            )
        )
    return out


def agent_task_types() -> dict[str, str]:
    """Each known agent's task type, from the agent specs."""
    from agents.specs import ALL_SPECS

    return {spec.name: str(spec.task_type) for spec in ALL_SPECS}


async def vs_reference(
    store: AggregateStore, references: References, tenant: str | None = None, *,
    as_json: bool = False,
) -> str:  # fmt: skip
    """The `flipsync cost vs-reference` report (as text, or as JSON with --json)."""
    by_agent = await store.breakdown(Dimension.AGENT, tenant)
    rows = benchmarks(by_agent, agent_task_types(), references)
    total = await store.totals(tenant)
    if as_json:
        return as_json_text(rows, by_operation(rows, references), total, references)
    return render(rows, by_operation(rows, references), total, references)


def as_json_text(
    rows: list[Benchmark], operations: list[Benchmark], total: Totals, references: References
) -> str:
    """The benchmark tables as JSON; USD amounts as decimal strings (exact, as in the file)."""

    def one(row: Benchmark) -> dict[str, Any]:
        return {
            "name": row.name, "task_type": row.task_type, "operation": row.operation,
            "operations": row.operations, "usd_per_op": str(row.cost_per_op),
            "reference_usd_per_op": str(row.reference), "above": row.above,
        }  # fmt: skip

    return (
        json.dumps(
            {
                "version": references.version,
                "by_agent": [one(row) for row in rows],
                "by_operation": [one(row) for row in operations],
                "overall": {
                    "operations": total.calls,
                    "usd_per_op": str(per_op(total)),
                    "reference_before_usd_per_op": str(references.overall_before),
                    "reference_target_usd_per_op": str(references.overall_target),
                },
                "above": [row.name for row in rows if row.above],
            },
            indent=2,
        )
        + "\n"
    )


def render(
    rows: list[Benchmark], operations: list[Benchmark], total: Totals, references: References
) -> str:
    """The benchmark tables: per agent (worst first), per operation type, overall."""
    head = f"{'':<26}{'task type':<26}{'ops':>7}{'$/op':>12}{'reference':>12}{'vs ref':>10}"
    lines = [f"cost per operation vs reference ({references.version})", "by agent:", head]
    for row in rows:
        lines.append(_row(row.name, row.task_type, row))
    lines += ["by operation type:", head]
    for row in operations:
        lines.append(_row(row.name, "", row))
    overall = per_op(total)
    lines.append(
        f"overall: ${overall:.6f} per operation over {total.calls} operations; reference "
        f"${references.overall_before} before and ${references.overall_target} after "
        f"optimisation ({_verdict(overall, references.overall_target)})"
    )
    above = [row.name for row in rows if row.above]
    lines.append(f"above their reference: {', '.join(above) if above else 'none'}")
    return "\n".join(lines) + "\n"


def _row(name: str, task: str, row: Benchmark) -> str:
    return (
        f"{name:<26}{task:<26}{row.operations:>7}{row.cost_per_op:>12.6f}"
        f"{row.reference:>12.6f}{_verdict(row.cost_per_op, row.reference):>10}"
    )


def _verdict(cost: Decimal, reference: Decimal) -> str:
    if not reference:
        return "-"
    change = (cost / reference - 1) * 100
    return f"{change:+.0f}%"
