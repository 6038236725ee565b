"""The `flipsync` command: demo, run one service, report."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvloop

from agents.cli import COMMANDS as AGENT_COMMANDS
from agents.cli import add_commands as add_agent_commands
from agents.cli import run_command as run_agent_command
from api.generated_key import announce_key, new_key
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.budgets.cli import add_commands as add_budget_commands
from cost_ledger.budgets.cli import print_budgets
from cost_ledger.budgets.cli import run_command as run_budget_command
from cost_ledger.cli import COMMANDS as COST_COMMANDS
from cost_ledger.cli import add_commands as add_cost_commands
from cost_ledger.cli import add_filters, filter_of
from cost_ledger.cli import run_command as run_cost_command
from cost_ledger.report import build_report, render_report
from cost_ledger.slices import FilterError, check_filter
from flipsync.scrape import start_metrics
from flipsync.stack import ALL_SERVICES, Service, start_stack
from optimizer.cli import COMMANDS as OPTIMIZER_COMMANDS
from optimizer.cli import add_commands as add_optimizer_commands
from optimizer.cli import run_command as run_optimizer_command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `flipsync` command."""
    parser = argparse.ArgumentParser(prog="flipsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run everything embedded on the sample catalog")
    run = commands.add_parser("run", help="run services until SIGTERM (uses NATS_URL, REDIS_URL)")
    run.add_argument("services", nargs="+", choices=[s.value for s in Service])
    report = commands.add_parser("report", help="print the cost report from the ledger")
    report.add_argument("--tenant", default=None)
    add_filters(report, tenant=False)
    providers = commands.add_parser("providers", help="print provider health, latency and cost")
    providers.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_budget_commands(commands)
    add_agent_commands(commands)
    add_optimizer_commands(commands)
    add_cost_commands(commands)
    http = commands.add_parser(
        "http", help="serve the HTTP API (uploads, chat, cost, dashboard, /v1, /asyncapi)"
    )
    http.add_argument("--host", default="127.0.0.1")
    http.add_argument("--port", type=int, default=8080)
    nats_auth = commands.add_parser("nats-auth", help="write the NATS users file (auth.conf)")
    nats_auth.add_argument("--out", type=Path, default=Path("deploy/nats/auth.conf"))
    nats_auth.add_argument("--secrets", type=Path, default=None, help="also new passwords here")
    nats_auth.add_argument(
        "--tenants", default="", help="comma-separated: agent users per agent and tenant"
    )
    args = parser.parse_args(argv)
    if args.command == "nats-auth":
        tenants = [t for t in args.tenants.split(",") if t]
        return write_nats_auth(args.out, args.secrets, tenants)
    settings = Settings()
    if args.command == "demo":
        from flipsync.demo import run_demo

        return _run(run_demo(settings))
    if args.command == "run":
        return _run(run_services(settings, [Service(s) for s in args.services]))
    if args.command in ("ledger", "budget"):
        return _run(run_budget_command(args, settings))
    if args.command == "http":  # an alias of `flipsync run api` (plus the rest when embedded)
        return _run(serve_api(settings, args.host, args.port))
    if args.command == "providers":
        from flipsync.provider_report import print_providers

        return _run(print_providers(settings, as_json=args.json))
    if args.command in COST_COMMANDS:
        return _run(run_cost_command(args, settings))
    if args.command in OPTIMIZER_COMMANDS:
        return _run(run_optimizer_command(args, settings))
    if args.command in AGENT_COMMANDS:
        return _run(run_agent_command(args, settings, start_stack))
    return _run(print_report(settings, args.tenant, where=filter_of(args)))


def write_nats_auth(out: Path, secrets_dir: Path | None, tenants: list[str] | None = None) -> int:
    """Write the NATS accounts and users (one per service, and per agent spec or per agent
    spec and tenant)."""
    from agents.specs import ALL_SPECS
    from bus.nats_auth import write_auth_files

    agents = [spec.name for spec in ALL_SPECS]
    print(write_auth_files(out, agents, secrets_dir, tenants or ()))
    return 0


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return uvloop.run(coro)


async def run_services(settings: Settings, services: list[Service]) -> int:
    """Run services until SIGTERM or SIGINT, then stop cleanly."""
    stack = await start_stack(settings, services)
    try:
        metrics = await start_metrics(stack)  # /metrics, when FLIPSYNC_METRICS_PORT is set
    except BaseException:
        await stack.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    names = ", ".join(s.value for s in services)
    sim = f" simulated provider at {stack.sim.base_url}" if stack.sim else ""
    sim += f" HTTP API at {stack.api.url}" if stack.api else ""
    print(f"flipsync: running {names} on {stack.nats_url}{sim}", flush=True)
    await stop.wait()
    if metrics is not None:
        await metrics.stop()
    await stack.stop()
    return 0


async def serve_api(settings: Settings, host: str, port: int) -> int:
    """`flipsync http`: the api service on host:port; embedded (no NATS_URL), every service.

    With no API key configured, this run gets one fresh key for tenant "default": printed on
    a terminal, else written to a 0600 file (its path printed), so it stays out of the logs.
    """
    update: dict[str, Any] = {"api_host": host, "api_port": port}
    if not settings.api_keys and settings.api_keys_file is None:
        key = new_key()
        update["api_keys"] = {key: "default"}
        announce_key(key, "default", settings.data_dir, sys.stdout)
    services = [Service.API] if settings.nats_url else [*ALL_SERVICES, Service.API]
    return await run_services(settings.model_copy(update=update), services)


async def print_report(
    settings: Settings, tenant: str | None, *, where: Filter | None = None
) -> int:
    """Print the ledger report of a running deployment (REDIS_URL); ``where`` narrows it to
    an agent, a model or a day range (--agent --model --start --end)."""
    if settings.redis_url is None:
        print("flipsync report: set REDIS_URL to the deployment's Redis", file=sys.stderr)
        return 2
    try:
        where = check_filter(where if where is not None else Filter(tenant=tenant))
    except FilterError as exc:
        print(f"flipsync report: {exc}", file=sys.stderr)
        return 2
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        # One path, filtered or not: the cost API's spend view of the ledger cube.
        print(render_report(await build_report(AggregateStore(client), where=where)))
        print(await print_budgets(client, settings, tenant), end="")
    finally:
        await client.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
