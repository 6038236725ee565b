"""The workflow DAG, derived from what each agent spec consumes (and optionally uses)."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping

from agents.spec import UPLOAD, AgentSpec


class WorkflowDag:
    """Agents in dependency order; which are ready, blocked or lost once some have settled."""

    def __init__(self, specs: Iterable[AgentSpec]) -> None:
        self.specs: Mapping[str, AgentSpec] = {spec.name: spec for spec in specs}
        problems = [p for spec in self.specs.values() for p in spec.problems()]
        for spec in self.specs.values():
            if spec.interactive:
                problems.append(f"{spec.name}: an interactive agent is not part of a workflow")
            unknown = [n for n in spec.inputs if n != UPLOAD and n not in self.specs]
            if unknown:
                problems.append(f"{spec.name}: consumes unknown inputs {unknown}")
        if problems:
            raise ValueError("invalid agent specs: " + "; ".join(problems))
        sorter = graphlib.TopologicalSorter(
            {name: [n for n in spec.inputs if n != UPLOAD] for name, spec in self.specs.items()}
        )
        self.order: tuple[str, ...] = tuple(sorter.static_order())  # raises CycleError
        dependents: dict[str, list[str]] = {name: [] for name in (UPLOAD, *self.order)}
        for name in self.order:
            for dep in self.specs[name].inputs:
                dependents[dep].append(name)
        self.dependents: Mapping[str, tuple[str, ...]] = {
            name: tuple(names) for name, names in dependents.items()
        }

    def ready(self, ok: Iterable[str], failed: Iterable[str] = ()) -> list[str]:
        """Agents not yet settled whose required inputs succeeded and optional ones settled."""
        done = {UPLOAD, *ok}
        gone = set(failed)
        gone |= self.blocked_by(gone)
        settled = done | gone
        return [
            name
            for name in self.order
            if name not in settled
            and all(dep in done for dep in self.specs[name].consumes)
            and all(dep in settled for dep in self.specs[name].optional)
        ]

    def blocked_by(self, failed: Iterable[str]) -> set[str]:
        """Agents that can never run because a required input failed, transitively."""
        blocked = set(failed)
        if not blocked:  # the usual case, asked on every event: nothing to walk
            return set()
        for name in self.order:
            if any(dep in blocked for dep in self.specs[name].consumes):
                blocked.add(name)
        return blocked - set(failed)

    def lost(self, failed: Iterable[str]) -> list[str]:
        """Required agents that failed or can no longer run: any one fails the workflow."""
        gone = set(failed)
        gone |= self.blocked_by(gone)
        return sorted(name for name in gone if self.specs[name].required)

    def settled(self, ok: Iterable[str], failed: Iterable[str]) -> bool:
        """Whether every agent has succeeded, failed or been blocked."""
        gone = set(failed)
        return len(set(ok) | gone | self.blocked_by(gone)) == len(self.specs)

    def reachable(self) -> set[str]:
        """Agents that an upload eventually runs (all of them, in a valid DAG)."""
        seen: set[str] = set()
        frontier = [UPLOAD]
        while frontier:
            for name in self.dependents.get(frontier.pop(), ()):
                if name not in seen and all(
                    d == UPLOAD or d in seen for d in self.specs[name].inputs
                ):
                    seen.add(name)
                    frontier.append(name)
        return seen

    def depth(self) -> int:
        """The longest chain of agents, i.e. the fewest sequential steps a workflow takes."""
        level: dict[str, int] = {}
        for name in self.order:
            deps = [level[d] for d in self.specs[name].inputs if d != UPLOAD]
            level[name] = 1 + max(deps, default=0)
        return max(level.values(), default=0)
