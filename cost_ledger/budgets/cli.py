"""The `flipsync ledger ...` and `flipsync budget ...` commands (NATS_URL and REDIS_URL)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from bus.cli_nats import connect_cli
from bus.messages import (
    DEFAULT_PROJECT,
    DEFAULT_WORKSPACE,
    BudgetChange,
    BudgetPeriod,
    BudgetPolicy,
    BudgetScope,
    BudgetSpec,
    LedgerEvent,
    RequestCap,
    TierQuota,
)
from bus.reachable import open_redis
from bus.settings import Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from cost_ledger.budgets.budgets_file import usd_to_micro
from cost_ledger.budgets.config import BudgetConfig
from cost_ledger.budgets.control import publish_change
from cost_ledger.budgets.errors import BudgetConfigError
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.status import render_status
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.rebuild import rebuild
from cost_ledger.report import usd


def add_commands(commands: Any) -> None:
    """Add the ledger and budget commands to the `flipsync` subparsers."""
    ledger = commands.add_parser("ledger", help="the ledger stream and its Redis view")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    rebuild_cmd = ledger_sub.add_parser(
        "rebuild", help="replay the LEDGER stream into the aggregates and budgets (idempotent)"
    )
    rebuild_cmd.add_argument(
        "--fresh",
        action="store_true",
        help="first delete the ledger's Redis view (stop the ledger services while it runs)",
    )
    budget = commands.add_parser("budget", help="show or change the live budgets")
    sub = budget.add_subparsers(dest="budget_command", required=True)
    show = sub.add_parser("show", help="each budget's limit, spent, reserved and alerts")
    shown = {
        "tenant": "one tenant's budgets (default: all tenants)",
        "agent": "the agent whose agent-scope budgets to show",
        "workflow": "the workflow whose workflow-scope budgets to show",
        "user": "the end user whose tier quota to show (with --tenant)",
        "tier": "the user's tier (default: the configured default tier)",
        "workspace": f"the workspace of workspace/project budgets (default {DEFAULT_WORKSPACE})",
        "project": f"the project of project budgets (default {DEFAULT_PROJECT})",
    }
    for name, text in shown.items():
        show.add_argument(f"--{name}", default=None, help=text)
    put = sub.add_parser("set", help="add or replace a budget")
    put.add_argument("name", help="the budget's name (letters, digits, _ and -)")
    put.add_argument(
        "--scope",
        default=None,
        choices=[s.value for s in BudgetScope],
        help="what the budget counts (default: project with --project, workspace with "
        "--workspace; else required)",
    )
    put.add_argument(
        "--period", required=True, choices=[p.value for p in BudgetPeriod], help="UTC period"
    )
    put.add_argument("--limit", required=True, help='dollars, e.g. "2.00"')
    put.add_argument(
        "--policy",
        default="refuse",
        choices=[p.value for p in BudgetPolicy],
        help="over the limit: refuse, or downgrade to a cheaper model",
    )
    put_helps = {
        "tenant": "only this tenant (default: each tenant)",
        "agent": "only this agent (agent scope)",
        "workflow": "only this workflow (workflow scope)",
        "workspace": "only this workspace (workspace and project scopes)",
        "project": "only this project of the workspace (project scope)",
    }
    for name, text in put_helps.items():
        put.add_argument(f"--{name}", default="", help=text)
    sub.add_parser("remove", help="remove a budget").add_argument("name")
    tier = sub.add_parser("tier", help="set (or --remove) a tier's message quota")
    tier.add_argument("name")
    tier.add_argument("--messages", type=int)
    tier.add_argument("--period", default="day", choices=[p.value for p in BudgetPeriod])
    tier.add_argument("--remove", action="store_true")
    cap = sub.add_parser("cap", help="set (or --remove) the per-request cap")
    cap.add_argument("--limit", help='dollars, e.g. "0.05"')
    cap.add_argument("--policy", default="downgrade", choices=[p.value for p in BudgetPolicy])
    cap.add_argument("--remove", action="store_true")
    load = sub.add_parser("load", help="make a budgets file the live rules (all replaced)")
    load.add_argument("file", nargs="?", default=None)


@dataclass(kw_only=True)
class _Conn:
    nc: NatsClient
    redis: aioredis.Redis
    live: LiveBudgets
    store: BudgetStore


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[_Conn]:
    assert settings.nats_url is not None and settings.redis_url is not None
    nc = await connect_cli(settings)
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        live = LiveBudgets(client, BudgetConfig.load(settings.budget_config))
        await ensure_streams(nc.jetstream(), settings)
        yield _Conn(nc=nc, redis=client, live=live, store=BudgetStore(client, live))
    finally:
        await client.aclose()
        await nc.close()


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a ledger or budget command against a running deployment."""
    if settings.nats_url is None or settings.redis_url is None:
        print(f"flipsync {args.command}: set NATS_URL and REDIS_URL", file=sys.stderr)
        return 2
    try:
        change = _change(args) if args.command == "budget" else None
    except BudgetConfigError as exc:
        print(f"flipsync budget: {exc}", file=sys.stderr)
        return 2
    async with _connect(settings) as conn:
        if args.command == "ledger":
            return await _rebuild(conn, args.fresh)
        if change is None:
            await conn.live.load()
            names = ("agent", "workflow", "user", "tier", "workspace", "project")
            filters = {k: getattr(args, k) for k in names}
            print(render_status(await conn.store.status(args.tenant, **filters)), end="")
            return 0
        try:
            await conn.live.apply(change)  # checks it before anything is published
        except BudgetConfigError as exc:
            print(f"flipsync budget: {exc}", file=sys.stderr)
            return 2
        seq = await publish_change(conn.nc.jetstream(), change)
        print(f"budget change {change.change_id} applied and published (ledger seq {seq})")
        return 0


async def _rebuild(conn: _Conn, fresh: bool) -> int:
    # Experiment arms are a view of the same events: rebuilt with them (lazy import: the
    # optimizer builds on the ledger, not the other way round).
    from optimizer.arm_stats import replay_arm_event

    redis = conn.redis

    async def arms(event: LedgerEvent) -> bool:
        return await replay_arm_event(redis, event)

    report = await rebuild(
        conn.nc.jetstream(), AggregateStore(conn.redis), conn.store, fresh=fresh, also=[arms]
    )
    totals = await AggregateStore(conn.redis).totals()
    print(
        f"ledger rebuilt in {report.seconds:.2f}s: {report.messages} messages, "
        f"{report.events} events ({report.applied} newly applied, {report.completed} completed, "
        f"{report.settled} settled "
        f"into budgets), {report.changes} budget changes, {report.alerts} alerts, "
        f"{report.malformed} skipped"
    )
    print(f"total spend {usd(totals.spend_micro_usd)} over {totals.calls} calls")
    return 0


def _change(args: argparse.Namespace) -> BudgetChange | None:
    """The BudgetChange a budget command asks for (None for show)."""
    change_id = uuid.uuid4().hex
    by = "cli"
    match args.budget_command:
        case "show":
            return None
        case "set":
            spec = BudgetSpec(
                name=args.name,
                scope=_scope(args),
                period=BudgetPeriod(args.period),
                limit_micro_usd=usd_to_micro(args.limit),
                policy=BudgetPolicy(args.policy),
                tenant=args.tenant,
                agent=args.agent,
                workflow=args.workflow,
                workspace=args.workspace,
                project=args.project,
            )
            return BudgetChange(change_id=change_id, set_budgets=[spec], by=by)
        case "remove":
            return BudgetChange(change_id=change_id, remove_budgets=[args.name], by=by)
        case "tier":
            if args.remove:
                return BudgetChange(change_id=change_id, remove_tiers=[args.name], by=by)
            if args.messages is None:
                raise BudgetConfigError("budget tier", "--messages or --remove is required")
            quota = TierQuota(
                tier=args.name, messages=args.messages, period=BudgetPeriod(args.period)
            )
            return BudgetChange(change_id=change_id, set_tiers=[quota], by=by)
        case "cap":
            if args.remove:
                return BudgetChange(change_id=change_id, remove_request_cap=True, by=by)
            if args.limit is None:
                raise BudgetConfigError("budget cap", "--limit or --remove is required")
            cap = RequestCap(
                limit_micro_usd=usd_to_micro(args.limit), policy=BudgetPolicy(args.policy)
            )
            return BudgetChange(change_id=change_id, request_cap=cap, by=by)
        case _:
            return BudgetConfig.load(args.file).rules.as_change(change_id)


def _scope(args: argparse.Namespace) -> BudgetScope:
    """The scope `budget set` asks for: --scope, else project or workspace by the options."""
    if args.scope:
        return BudgetScope(args.scope)
    if args.project:
        return BudgetScope.PROJECT
    if args.workspace:
        return BudgetScope.WORKSPACE
    raise BudgetConfigError("budget set", "--scope is required (or --workspace / --project)")


async def print_budgets(redis: aioredis.Redis, settings: Settings, tenant: str | None) -> str:
    """The budgets table of `flipsync report`: limits, spend, reservations, alerts sent."""
    live = LiveBudgets(redis, BudgetConfig.load(settings.budget_config))
    await live.load()
    return render_status(await BudgetStore(redis, live).status(tenant))
