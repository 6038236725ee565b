"""The `flipsync flags|experiment|prompt|finetune` commands (NATS_URL and REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
import openai
import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from bus.broker import server_list
from bus.messages import FlagChange, FlagRule, Lever
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.catalog import PriceCatalog
from optimizer.arm_stats import ArmStats
from optimizer.errors import OptimizerError
from optimizer.experiments import Arm, Experiment, ExperimentStore, Metric
from optimizer.flag_store import FlagStore, publish_change
from optimizer.pipeline import run_pipeline
from optimizer.prompt_variants import prompt_experiment, variants
from optimizer.report import build_report, promote, render

COMMANDS = frozenset({"flags", "experiment", "prompt", "finetune"})


def add_commands(commands: Any) -> None:
    """Add the optimizer's commands to the `flipsync` subparsers."""
    flags = commands.add_parser("flags", help="list or change feature flags (live, no restart)")
    sub = flags.add_subparsers(dest="flags_command", required=True)
    sub.add_parser("list", help="every flag rule")
    put = sub.add_parser("set", help="add or replace a flag rule")
    put.add_argument("name")
    _scope(put)
    put.add_argument("--percent", type=float, default=100.0, help="share of matching traffic")
    put.add_argument("--disable", nargs="*", default=[], choices=_levers(), metavar="LEVER")
    put.add_argument("--enable", nargs="*", default=[], choices=_levers(), metavar="LEVER")
    put.add_argument("--policy", default="", help="routing policy: cheapest, fastest, balanced")
    put.add_argument("--model", default="", help="model override (the request's model hint)")
    sub.add_parser("remove", help="remove a flag rule").add_argument("name")

    exp = commands.add_parser("experiment", help="A/B experiments on prompts, models, levers")
    sub = exp.add_subparsers(dest="experiment_command", required=True)
    start = sub.add_parser("start", help="start an experiment")
    start.add_argument("name")
    _scope(start)
    start.add_argument(
        "--arm",
        action="append",
        required=True,
        help='name=percent[,model=M][,policy=P][,off=lever+lever], e.g. "nano=10,model=M"',
    )
    start.add_argument("--metric", default="cost_per_valid", choices=[m.value for m in Metric])
    start.add_argument("--min-samples", type=int, default=200)
    start.add_argument("--max-hours", type=float, default=168.0)
    start.add_argument("--quality-floor", type=float, default=0.0)
    sub.add_parser("list", help="every experiment and its verdict")
    report = sub.add_parser("report", help="each arm's cost, quality, latency; the verdict")
    report.add_argument("name")
    report.add_argument("--watch", type=float, default=0.0, help="refresh every N seconds")
    prom = sub.add_parser("promote", help="make the winner the default (refused without one)")
    prom.add_argument("name")
    prom.add_argument("--arm", default=None)
    sub.add_parser("stop", help="end an experiment, promoting nothing").add_argument("name")

    prompt = commands.add_parser("prompt", help="shorter prompt variants of an agent")
    sub = prompt.add_subparsers(dest="prompt_command", required=True)
    opt = sub.add_parser("optimize", help="show (and --start) shorter variants as an experiment")
    opt.add_argument("agent")
    opt.add_argument("--prune-schema", action="store_true")
    opt.add_argument("--start", action="store_true")
    opt.add_argument("--percent", type=float, default=10.0, help="share of traffic per variant")
    opt.add_argument("--min-samples", type=int, default=200)
    opt.add_argument("--quality-floor", type=float, default=0.95)

    tune = commands.add_parser("finetune", help="fine-tune a model on a task type's best answers")
    tune.add_argument("task_type")
    tune.add_argument("--base", default="gpt-4o-mini")
    tune.add_argument("--tenant", default="")
    tune.add_argument("--percent", type=float, default=10.0)
    tune.add_argument("--min-samples", type=int, default=200)
    tune.add_argument("--quality-floor", type=float, default=0.9)
    tune.add_argument("--poll", type=float, default=30.0, help="seconds between job polls")


def _scope(parser: argparse.ArgumentParser) -> None:
    for name in ("tenant", "agent", "task-type"):
        parser.add_argument(f"--{name}", default="")


def _levers() -> list[str]:
    from optimizer.flags import SWITCHABLE

    return sorted(str(lever) for lever in SWITCHABLE)


@dataclass(kw_only=True)
class _Conn:
    nc: NatsClient
    redis: aioredis.Redis


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[_Conn]:
    assert settings.nats_url is not None and settings.redis_url is not None
    nc = await nats.connect(server_list(settings.nats_url))
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await ensure_streams(nc.jetstream(), settings)
        yield _Conn(nc=nc, redis=client)
    finally:
        await client.aclose()
        await nc.close()


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one optimizer command against a running deployment."""
    if args.command == "prompt" and not args.start:
        return _show_variants(args)
    if settings.redis_url is None or settings.nats_url is None:
        print(f"flipsync {args.command}: set NATS_URL and REDIS_URL", file=sys.stderr)
        return 2
    try:
        async with _connect(settings) as conn:
            return await _run(args, settings, conn)
    except OptimizerError as exc:
        print(f"flipsync {args.command}: {exc.reason}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, settings: Settings, conn: _Conn) -> int:
    flags = FlagStore(conn.redis)
    store = ExperimentStore(conn.redis)
    stats = ArmStats(conn.redis)
    change: FlagChange | None = None
    match args.command, _sub(args):
        case "flags", "list":
            for rule in sorted(await flags.rules(), key=lambda r: r.name):
                print(_rule_line(rule))
            return 0
        case "flags", "set":
            change = await flags.change(set_rules=[_rule(args)], by="cli")
        case "flags", "remove":
            change = await flags.change(removed=[args.name], by="cli")
        case "experiment", "start":
            change = await store.start(_experiment(args))
        case "experiment", "list":
            for experiment in await store.all():
                verdict = (await build_report(store, stats, experiment.name)).verdict
                print(f"{experiment.name} [{experiment.status}] {verdict}")
            return 0
        case "experiment", "report":
            while True:
                print(render(await build_report(store, stats, args.name)), flush=True)
                if args.watch <= 0:
                    return 0
                await asyncio.sleep(args.watch)
        case "experiment", "promote":
            report, change = await promote(store, stats, args.name, args.arm)
            print(f"promoted {report.winner}: {report.verdict}")
        case "experiment", "stop":
            change = await store.end(await store.get(args.name), None)
        case "prompt", _:
            from agents.specs import ALL_SPECS

            spec = _spec(args.agent)
            found = variants(spec, ALL_SPECS, prune=args.prune_schema)
            experiment = prompt_experiment(
                spec,
                found,
                percent=args.percent,
                min_samples=args.min_samples,
                quality_floor=args.quality_floor,
            )
            change = await store.start(experiment)
            print(f"experiment {experiment.name} started with {len(found)} variant arms")
        case "finetune", _:
            change = await _finetune(args, settings, conn)
    assert change is not None
    await publish_change(conn.nc, change)
    print(f"flags changed ({change.change_id}); every router applies it now")
    return 0


def _sub(args: argparse.Namespace) -> str:
    return str(getattr(args, f"{args.command}_command", ""))


def _rule(args: argparse.Namespace) -> FlagRule:
    return FlagRule(
        name=args.name,
        tenant=args.tenant,
        agent=args.agent,
        task_type=args.task_type,
        percent=args.percent,
        disable_levers=[Lever(v) for v in args.disable],
        enable_levers=[Lever(v) for v in args.enable],
        routing_policy=args.policy,
        model=args.model,
    )


def _rule_line(rule: FlagRule) -> str:
    fields = msgspec.structs.asdict(rule)
    shown = {k: v for k, v in fields.items() if v not in ("", [], None) and k not in ("v",)}
    shown.pop("name")
    return f"{rule.name}: {shown}"


def _experiment(args: argparse.Namespace) -> Experiment:
    return Experiment(
        name=args.name,
        tenant=args.tenant,
        agent=args.agent,
        task_type=args.task_type,
        arms=[_arm(text) for text in args.arm],
        metric=Metric(args.metric),
        min_samples=args.min_samples,
        max_duration_s=int(args.max_hours * 3600),
        quality_floor=args.quality_floor,
    )


def _arm(text: str) -> Arm:
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
                    raise OptimizerError(f"unknown arm option {other!r} in {text!r}")
    except ValueError as exc:
        raise OptimizerError(f"bad arm {text!r}: {exc}") from exc
    return arm


def _spec(agent: str) -> Any:
    from agents.specs import ALL_SPECS

    for spec in ALL_SPECS:
        if spec.name == agent and spec.needs_llm:
            return spec
    raise OptimizerError(f"no LLM agent named {agent!r}")


def _show_variants(args: argparse.Namespace) -> int:
    from agents.specs import ALL_SPECS

    try:
        spec = _spec(args.agent)
    except OptimizerError as exc:
        print(f"flipsync prompt: {exc.reason}", file=sys.stderr)
        return 1
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


async def _finetune(args: argparse.Namespace, settings: Settings, conn: _Conn) -> FlagChange:
    base_url = settings.openai_base_url if settings.real_provider else settings.sim_base_url
    if base_url is None and not settings.real_provider:
        raise OptimizerError("set OPENAI_API_KEY, or FLIPSYNC_SIM_BASE_URL for the simulator")
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "simulated"
    async with openai.AsyncOpenAI(base_url=base_url, api_key=key) as client:
        run = await run_pipeline(
            js=conn.nc.jetstream(),
            redis=conn.redis,
            client=client,
            catalog=PriceCatalog.load(),
            task_type=args.task_type,
            base_model=args.base,
            tenant=args.tenant,
            percent=args.percent,
            min_samples=args.min_samples,
            quality_floor=args.quality_floor,
            poll_s=args.poll,
        )
    print(
        f"{len(run.dataset.train)} training and {len(run.dataset.eval)} evaluation examples; "
        f"job {run.outcome.job_id} made {run.outcome.model} in {run.outcome.seconds:.0f}s; "
        f"priced at ${run.price.input}/${run.price.output} per 1M tokens; "
        f"experiment {run.experiment.name} started"
    )
    return run.change
