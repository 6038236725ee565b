"""`flipsync experiment start|list|report|promote|stop`: A/B experiments."""

from __future__ import annotations

import argparse
import asyncio
import difflib

from bus.messages import FlagChange, Lever
from bus.settings import Settings
from optimizer.cli.common import Conn, subcommand
from optimizer.errors import BadInput, OptimizerError
from optimizer.experiments import Arm, Experiment, ExperimentStore, Metric


async def run(args: argparse.Namespace, settings: Settings, conn: Conn) -> FlagChange | None:
    """Run an `experiment` subcommand; the change to announce, if it made one."""
    from optimizer.arm_stats import ArmStats  # FastStream, scipy: only when it runs
    from optimizer.report import as_json, build_report, promote, render

    store = ExperimentStore(conn.redis)
    stats = ArmStats(conn.redis)
    match subcommand(args):
        case "start":
            experiment = experiment_of(args)
            await check_names(experiment, settings, conn)
            started = await store.start(experiment)
            arms = ", ".join(arm.name for arm in experiment.arms)
            print(f"experiment {experiment.name} started: arms {arms}; see its figures with "
                  f"`flipsync experiment report {experiment.name}`")  # fmt: skip
            return started
        case "list":
            for experiment in await store.all():
                verdict = (await build_report(store, stats, experiment.name)).verdict
                print(f"{experiment.name} [{experiment.status}] {verdict}")
            return None
        case "report":
            while True:
                report = await build_report(store, stats, args.name)
                print(as_json(report) if args.json else render(report), flush=True)
                if args.watch <= 0:
                    return None
                await asyncio.sleep(args.watch)
        case "promote":
            report, change = await promote(store, stats, args.name, args.arm)
            print(f"promoted {report.winner}: {report.verdict}")
            return change
        case _:
            return await store.end(await store.get(args.name), None)


def experiment_of(args: argparse.Namespace) -> Experiment:
    """The experiment `experiment start` describes."""
    return Experiment(
        name=args.name,
        tenant=args.tenant,
        agent=args.agent,
        task_type=args.task_type,
        arms=[arm_of(text) for text in args.arm],
        metric=Metric(args.metric),
        min_samples=args.min_samples,
        max_duration_s=int(args.max_hours * 3600),
        quality_floor=args.quality_floor,
    )


async def check_names(experiment: Experiment, settings: Settings, conn: Conn) -> None:
    """Refuse an agent or a model that does not exist, naming what does (close ones first)."""
    from agents.specs import ALL_SPECS
    from cost_ledger.catalog import PriceCatalog
    from optimizer.models import load_registered

    agents = {spec.name for spec in ALL_SPECS} | settings.extra_agents | {settings.openai_agent}
    if experiment.agent and experiment.agent not in agents:
        raise OptimizerError(_unknown("agent", experiment.agent, agents))
    named = [arm.model for arm in experiment.arms if arm.model]
    if named:
        catalog = PriceCatalog.load()
        await load_registered(conn.redis, catalog)  # fine-tuned models count too
        models = {model.name for model in catalog.models()}
        for model in named:
            if model not in models:
                raise OptimizerError(_unknown("model", model, models))


def _unknown(kind: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown {kind} {name!r}: {hint}known: {', '.join(sorted(known))}"


def arm_of(text: str) -> Arm:
    """An arm from "name=percent[,model=M][,policy=P][,off=lever+lever]"."""
    head, *options = text.split(",")
    name, _, percent = head.partition("=")
    try:
        arm = Arm(name=name.strip(), percent=float(percent))
        for option in options:
            key, _, value = option.partition("=")
            match key.strip():
                case "model":
                    arm.model = value.strip()
                case "policy":
                    arm.routing_policy = value.strip()
                case "off":
                    arm.disable_levers = [Lever(v) for v in value.split("+") if v]
                case other:
                    raise BadInput(f"unknown arm option {other!r} in {text!r}")
    except ValueError as exc:
        raise BadInput(f"bad arm {text!r}: {exc}") from exc
    return arm
