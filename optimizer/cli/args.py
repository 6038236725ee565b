"""The parsers of `flipsync flags|experiment|prompt|finetune`: argparse, the wire enums and the
switchable levers only, so that `--help` answers without Redis, NATS or OpenAI (the runners
import those: optimizer/cli/<group>.py, run by run.py)."""

from __future__ import annotations

import argparse
from typing import Any

from optimizer.metric import Metric

COMMANDS = frozenset({"flags", "experiment", "prompt", "finetune"})


def add_commands(commands: Any) -> None:
    """Add the optimizer's commands to the `flipsync` subparsers."""
    add_flags(commands)
    add_experiment(commands)
    add_prompt(commands)
    add_finetune(commands)


def add_scope(parser: argparse.ArgumentParser) -> None:
    """The --tenant, --agent and --task-type options of a rule or an experiment."""
    scopes = {"tenant": "only this tenant", "agent": "only this agent",
              "task-type": "only this task type"}  # fmt: skip
    for name, text in scopes.items():
        parser.add_argument(f"--{name}", default="", help=f"{text} (default: all)")


def levers() -> list[str]:
    """The levers a flag may switch, as command-line choices."""
    from optimizer.flags import SWITCHABLE

    return sorted(str(lever) for lever in SWITCHABLE)


def add_flags(commands: Any) -> None:
    """Add `flags` and its subcommands."""
    flags = commands.add_parser("flags", help="list or change feature flags (live, no restart)")
    sub = flags.add_subparsers(dest="flags_command", required=True)
    sub.add_parser("list", help="every flag rule")
    put = sub.add_parser("set", help="add or replace a flag rule")
    put.add_argument("name", help="the rule's name (replaces a rule of that name)")
    add_scope(put)
    put.add_argument("--percent", type=float, default=100.0, help="share of matching traffic")
    put.add_argument(
        "--disable", nargs="*", default=[], choices=levers(), metavar="LEVER",
        help=f"levers to switch off: {', '.join(levers())}",
    )  # fmt: skip
    put.add_argument(
        "--enable", nargs="*", default=[], choices=levers(), metavar="LEVER",
        help="levers to switch on (as for --disable)",
    )  # fmt: skip
    put.add_argument("--policy", default="", help="routing policy: cheapest, fastest, balanced")
    put.add_argument("--model", default="", help="model override (the request's model hint)")
    sub.add_parser("remove", help="remove a flag rule").add_argument("name", help="its name")


def add_experiment(commands: Any) -> None:
    """Add `experiment` and its subcommands."""
    exp = commands.add_parser("experiment", help="A/B experiments on prompts, models, levers")
    sub = exp.add_subparsers(dest="experiment_command", required=True)
    start = sub.add_parser("start", help="start an experiment")
    start.add_argument("name", help="the experiment's name (letters, digits, _ and -)")
    add_scope(start)
    start.add_argument(
        "--arm",
        action="append",
        required=True,
        help='name=percent[,model=M][,policy=P][,off=lever+lever], e.g. "nano=10,model=M"',
    )
    start.add_argument(
        "--metric", default="cost_per_valid", choices=[m.value for m in Metric],
        help="what decides the winner (default: cost_per_valid)",
    )  # fmt: skip
    start.add_argument(
        "--min-samples", type=int, default=200,
        help="requests every arm needs before a verdict (default: 200)",
    )  # fmt: skip
    start.add_argument(
        "--max-hours", type=float, default=168.0,
        help="end after this long, whatever the samples (default: 168)",
    )  # fmt: skip
    start.add_argument(
        "--quality-floor", type=float, default=0.0,
        help="least share of valid answers (0-1) an arm needs to be promoted (default: 0)",
    )  # fmt: skip
    sub.add_parser("list", help="every experiment and its verdict")
    report = sub.add_parser("report", help="each arm's cost, quality, latency; the verdict")
    report.add_argument("name", help="the experiment's name")
    report.add_argument("--watch", type=float, default=0.0, help="refresh every N seconds")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    prom = sub.add_parser("promote", help="make the winner the default (refused without one)")
    prom.add_argument("name", help="the experiment's name")
    prom.add_argument("--arm", default=None, help="promote this arm (default: the winner)")
    stop = sub.add_parser("stop", help="end an experiment, promoting nothing")
    stop.add_argument("name", help="the experiment's name")


def add_prompt(commands: Any) -> None:
    """Add `prompt` and its subcommand."""
    prompt = commands.add_parser("prompt", help="shorter prompt variants of an agent")
    sub = prompt.add_subparsers(dest="prompt_command", required=True)
    opt = sub.add_parser("optimize", help="show (and --start) shorter variants as an experiment")
    opt.add_argument("agent", help="an LLM agent's name (e.g. promotion)")
    opt.add_argument(
        "--prune-schema", action="store_true", help="also variants that drop optional fields"
    )
    opt.add_argument(
        "--start", action="store_true", help="start them as an experiment (NATS_URL, REDIS_URL)"
    )
    opt.add_argument("--percent", type=float, default=10.0, help="share of traffic per variant")
    opt.add_argument(
        "--min-samples", type=int, default=200,
        help="requests every arm needs before a verdict (default: 200)",
    )  # fmt: skip
    opt.add_argument(
        "--quality-floor", type=float, default=0.95,
        help="least share of valid answers (0-1) a variant needs to win (default: 0.95)",
    )  # fmt: skip


def add_finetune(commands: Any) -> None:
    """Add `finetune`."""
    tune = commands.add_parser("finetune", help="fine-tune a model on a task type's best answers")
    tune.add_argument("task_type", help="the task type whose best answers train it")
    tune.add_argument(
        "--base", default="gpt-4o-mini", help="model to fine-tune (default: %(default)s)"
    )
    tune.add_argument("--tenant", default="", help="only this tenant's answers (default: all)")
    tune.add_argument(
        "--percent", type=float, default=10.0,
        help="share of the task type's traffic the new model gets on trial (default: 10)",
    )  # fmt: skip
    tune.add_argument(
        "--min-samples", type=int, default=200,
        help="requests every arm needs before a verdict (default: 200)",
    )  # fmt: skip
    tune.add_argument(
        "--quality-floor", type=float, default=0.9,
        help="least share of valid answers (0-1) the new model needs to win (default: 0.9)",
    )  # fmt: skip
    tune.add_argument("--poll", type=float, default=30.0, help="seconds between job polls")
