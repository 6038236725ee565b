"""`flipsync prompt optimize`: shorter prompt variants of an agent, shown or put on trial."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bus.messages import FlagChange
from bus.settings import Settings
from optimizer.cli.common import Conn
from optimizer.errors import BadInput, OptimizerError
from optimizer.experiments import ExperimentStore
from optimizer.prompt_variants import prompt_experiment, variants


async def run(args: argparse.Namespace, settings: Settings, conn: Conn) -> FlagChange | None:
    """Start an experiment whose arms are the agent's shorter variants."""
    from agents.specs import ALL_SPECS

    spec = agent_spec(args.agent)
    found = variants(spec, ALL_SPECS, prune=args.prune_schema)
    experiment = prompt_experiment(
        spec,
        found,
        percent=args.percent,
        min_samples=args.min_samples,
        quality_floor=args.quality_floor,
    )
    change = await ExperimentStore(conn.redis).start(experiment)
    print(f"experiment {experiment.name} started with {len(found)} variant arms")
    return change


def agent_spec(agent: str) -> Any:
    """The spec of the LLM agent named agent; raises OptimizerError."""
    from agents.specs import ALL_SPECS

    for spec in ALL_SPECS:
        if spec.name == agent and spec.needs_llm:
            return spec
    raise BadInput(f"no LLM agent named {agent!r}")


def show_variants(args: argparse.Namespace) -> int:
    """Print the agent's shorter variants (no connection needed); the exit code."""
    from agents.specs import ALL_SPECS

    try:
        spec = agent_spec(args.agent)
    except OptimizerError as exc:
        print(f"flipsync prompt: {exc.reason}", file=sys.stderr)
        return 2 if isinstance(exc, BadInput) else 1
    found = variants(spec, ALL_SPECS, prune=args.prune_schema)
    if not found:
        print(f"{spec.name}: no shorter prompt keeps every instruction")
        return 0
    for v in found:
        dropped = f", drops fields {', '.join(v.dropped_fields)}" if v.dropped_fields else ""
        print(f"{v.name}: {v.original_tokens} -> {v.tokens} tokens (-{v.saved_tokens}){dropped}")
        print(f"  system: {v.system}\n  instructions: {v.instructions}")
    print("run again with --start to put them on trial as experiment arms")
    return 0
