"""The `flipsync` command: demo, run one service, report."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
import uvloop

from agents.cli import COMMANDS as AGENT_COMMANDS
from agents.cli import add_commands as add_agent_commands
from agents.cli import run_command as run_agent_command
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.cli import add_commands as add_budget_commands
from cost_ledger.budgets.cli import print_budgets
from cost_ledger.budgets.cli import run_command as run_budget_command
from cost_ledger.report import build_report, render_report
from flipsync.stack import Service, start_stack


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `flipsync` command."""
    parser = argparse.ArgumentParser(prog="flipsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run everything embedded on the sample catalog")
    run = commands.add_parser("run", help="run services until SIGTERM (uses NATS_URL, REDIS_URL)")
    run.add_argument("services", nargs="+", choices=[s.value for s in Service])
    report = commands.add_parser("report", help="print the cost report from the ledger")
    report.add_argument("--tenant", default=None)
    add_budget_commands(commands)
    add_agent_commands(commands)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "demo":
        from flipsync.demo import run_demo

        return _run(run_demo(settings))
    if args.command == "run":
        return _run(run_services(settings, [Service(s) for s in args.services]))
    if args.command in ("ledger", "budget"):
        return _run(run_budget_command(args, settings))
    if args.command in AGENT_COMMANDS:
        return _run(run_agent_command(args, settings, start_stack))
    return _run(print_report(settings, args.tenant))


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return uvloop.run(coro)


async def run_services(settings: Settings, services: list[Service]) -> int:
    """Run services until SIGTERM or SIGINT, then stop cleanly."""
    stack = await start_stack(settings, services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    names = ", ".join(s.value for s in services)
    sim = f" simulated provider at {stack.sim.base_url}" if stack.sim else ""
    print(f"flipsync: running {names} on {stack.nats_url}{sim}", flush=True)
    await stop.wait()
    await stack.stop()
    return 0


async def print_report(settings: Settings, tenant: str | None) -> int:
    """Print the ledger report of a running deployment (REDIS_URL)."""
    if settings.redis_url is None:
        print("flipsync report: set REDIS_URL to the deployment's Redis", file=sys.stderr)
        return 2
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        print(render_report(await build_report(AggregateStore(client), tenant=tenant)))
        print(await print_budgets(client, settings, tenant), end="")
    finally:
        await client.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
