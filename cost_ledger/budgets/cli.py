"""The `flipsync ledger ...` and `flipsync budget ...` commands (NATS_URL and REDIS_URL)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from bus.cli_nats import connect_cli
from bus.messages import (
    BudgetAlert,
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
from bus.settings import LOCAL_HINT, Settings
from bus.streams import ensure_streams
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import BudgetsResponse, Filter
from cost_ledger.budgets.alerts import ClientAlerts
from cost_ledger.budgets.budgets_file import usd_to_micro
from cost_ledger.budgets.cli_args import add_commands as add_commands
from cost_ledger.budgets.config import BudgetConfig, BudgetRules
from cost_ledger.budgets.control import publish_change
from cost_ledger.budgets.errors import BudgetConfigError
from cost_ledger.budgets.live import LiveBudgets
from cost_ledger.budgets.status import BudgetStatus, alert_standing, budget_row, render_status
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.rebuild import rebuild
from cost_ledger.report import counted, simulated_note, usd
from cost_ledger.slices import FilterError, check_filter


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
        store = BudgetStore(client, live, alerts=ClientAlerts(nc))
        yield _Conn(nc=nc, redis=client, live=live, store=store)
    finally:
        await client.aclose()
        await nc.close()


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a ledger or budget command against a running deployment (`budget show` reads
    Redis only: the deployment's, or the one a local command left behind)."""
    if args.command == "budget" and args.budget_command == "show" and settings.redis_url:
        client = await open_redis(settings.redis_url, settings.connect_timeout_s)
        try:
            live = LiveBudgets(client, BudgetConfig.load(settings.budget_config))
            return await _show(client, live, BudgetStore(client, live), args)
        finally:
            await client.aclose()
    try:  # the flags first: a missing --scope is said before the missing URLs (review)
        change = _change(args) if args.command == "budget" else None
    except BudgetConfigError as exc:
        print(f"flipsync budget: {exc}", file=sys.stderr)
        return 2
    if settings.nats_url is None or settings.redis_url is None:
        print(
            f"flipsync {args.command}: set NATS_URL and REDIS_URL to a deployment's " + LOCAL_HINT,
            file=sys.stderr,
        )
        return 2
    async with _connect(settings) as conn:
        if args.command == "ledger":
            return await _rebuild(conn, args.fresh)
        if change is None:
            return await _show(conn.redis, conn.live, conn.store, args)
        try:
            _check_removals(change, await conn.live.load())
            await conn.live.apply(change)  # checks it before anything is published
        except BudgetConfigError as exc:
            print(f"flipsync budget: {exc}", file=sys.stderr)
            return 2
        seq = await publish_change(conn.nc.jetstream(), change)
        print(f"budget change {change.change_id} applied and published (ledger seq {seq})")
        named = {spec.name for spec in change.set_budgets}
        for alert in await alert_standing(conn.store, named) if named else []:
            print(f"alert sent: {alert_line(alert)}")  # set under what was spent already
        return 0


async def _show(
    redis: aioredis.Redis, live: LiveBudgets, store: BudgetStore, args: argparse.Namespace
) -> int:
    """`flipsync budget show`: the table (or the API's JSON), and SIMULATED_NOTE under a table
    whose spend came from the simulated provider."""
    try:
        where = check_filter(Filter(tenant=args.tenant, agent=args.agent))
    except FilterError as exc:
        print(f"flipsync budget: {exc}", file=sys.stderr)
        return 2
    await live.load()
    names = ("agent", "workflow", "user", "tier", "workspace", "project")
    filters = {k: getattr(args, k) for k in names}
    rows = await store.status(args.tenant, **filters)
    if args.json:  # the shape of GET /api/cost/budgets
        print(BudgetsResponse(filter=where, budgets=[budget_row(r) for r in rows])
              .model_dump_json(indent=2))  # fmt: skip
        return 0
    print(render_status(rows), end="")
    if rows:
        print(await simulated_note(AggregateStore(redis), where), end="")
    return 0


def alert_line(alert: BudgetAlert) -> str:
    """A budget alert in one line, for the budget command's output."""
    percent = round(alert.threshold * 100)
    return (
        f"{alert.budget or alert.scope} at {percent}% in {alert.scope} ({alert.period_key}):"
        f" spent {usd(alert.spent_micro_usd)} of {usd(alert.limit_micro_usd)}"
    )


def _check_removals(change: BudgetChange, rules: BudgetRules) -> None:
    """Raise BudgetConfigError for a budget or tier the change removes that is not there: a
    mistyped name would otherwise be published as a change that did nothing."""
    for name in change.remove_budgets:
        if name not in rules.budgets:
            raise BudgetConfigError("budget remove", f"no budget named {name!r}")
    for name in change.remove_tiers:
        if name not in rules.tiers:
            raise BudgetConfigError("budget tier", f"no tier quota named {name!r}")


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
    print(f"total spend {usd(totals.spend_micro_usd)} over {counted(totals.calls, 'call')}")
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
    """The scope `budget set` asks for: --scope, else the narrowest option given (project,
    workspace, workflow, agent, tenant: `--tenant demo` alone means tenant scope)."""
    if args.scope:
        return BudgetScope(args.scope)
    for option, scope in (("project", BudgetScope.PROJECT), ("workspace", BudgetScope.WORKSPACE),
                          ("workflow", BudgetScope.WORKFLOW), ("agent", BudgetScope.AGENT),
                          ("tenant", BudgetScope.TENANT)):  # fmt: skip
        if getattr(args, option, ""):
            return scope
    raise BudgetConfigError(
        "budget set",
        "--scope is required (or one of --tenant, --agent, --workflow, --workspace, --project)",
    )


async def _loaded(redis: aioredis.Redis, settings: Settings) -> LiveBudgets:
    """The live rules (the budgets file's seed until someone changed them), loaded."""
    live = LiveBudgets(redis, BudgetConfig.load(settings.budget_config))
    await live.load()
    return live


async def budget_names_tenant(redis: aioredis.Redis, settings: Settings, tenant: str) -> bool:
    """Whether a budget is set for this tenant by name (one for every tenant names none)."""
    rules = await (await _loaded(redis, settings)).current()
    return any(spec.tenant == tenant for spec in rules.budgets.values())


async def budget_status(
    redis: aioredis.Redis, settings: Settings, tenant: str | None
) -> list[BudgetStatus]:
    """Each budget of a tenant (or all) for `flipsync report`'s table (status.render_status):
    limits, spend, reservations, alerts sent."""
    live = await _loaded(redis, settings)
    return await BudgetStore(redis, live).status(tenant)
