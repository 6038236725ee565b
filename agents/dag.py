"""The workflow DAG, derived from what each agent spec consumes."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping

from agents.spec import UPLOAD, AgentSpec


class WorkflowDag:
    """Agents in dependency order; which are ready once some have finished."""

    def __init__(self, specs: Iterable[AgentSpec]) -> None:
        self.specs: Mapping[str, AgentSpec] = {spec.name: spec for spec in specs}
        problems = [p for spec in self.specs.values() for p in spec.problems()]
        for spec in self.specs.values():
            unknown = [n for n in spec.consumes if n != UPLOAD and n not in self.specs]
            if unknown:
                problems.append(f"{spec.name}: consumes unknown inputs {unknown}")
        if problems:
            raise ValueError("invalid agent specs: " + "; ".join(problems))
        sorter = graphlib.TopologicalSorter(
            {name: [n for n in spec.consumes if n != UPLOAD] for name, spec in self.specs.items()}
        )
        self.order: tuple[str, ...] = tuple(sorter.static_order())  # raises CycleError

    def ready(self, finished: Iterable[str], started: Iterable[str] = ()) -> list[str]:
        """Agents whose inputs have all finished and which have not started, in order."""
        done = {UPLOAD, *finished}
        skip = done | set(started)
        return [
            name
            for name in self.order
            if name not in skip and all(dep in done for dep in self.specs[name].consumes)
        ]

    def blocked_by(self, failed: Iterable[str]) -> set[str]:
        """Agents that can never run because an input of theirs failed, transitively."""
        blocked = set(failed)
        for name in self.order:
            if any(dep in blocked for dep in self.specs[name].consumes):
                blocked.add(name)
        return blocked - set(failed)
