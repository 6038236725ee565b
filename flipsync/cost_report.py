"""`flipsync report`, and how a command that reads the ledger finds it: REDIS_URL, or, with
none set, the local data an earlier command (`make demo`, `flipsync upload`) left behind."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from flipsync import data_dir

if TYPE_CHECKING:
    from bus.settings import Settings
    from cost_ledger.api_models import Filter


async def on_local_ledger(
    settings: Settings, name: str, command: Callable[[Settings], Awaitable[int]]
) -> int:
    """Run a command that reads the ledger against REDIS_URL, or, with none set, against
    the ledger an earlier local command (`make demo`, `flipsync upload`) left behind."""
    async with data_dir.local_ledger(settings) as local:
        if local.redis_url != settings.redis_url and settings.nats_url is not None:
            # NATS_URL says "a deployment", but the ledger is in Redis: without REDIS_URL
            # this reads the local data, and the figures would pass for the deployment's.
            print(f"flipsync {name}: {reads_local_data(local)}", file=sys.stderr)
        return await command(local)


def reads_local_data(settings: Settings) -> str:
    """Why a ledger read with NATS_URL set but no REDIS_URL shows the local data."""
    return (
        f"REDIS_URL is unset: this reads this folder's own data ({settings.data_dir}), not "
        "the servers NATS_URL names; set REDIS_URL to read theirs"
    )


async def print_report(
    settings: Settings,
    tenant: str | None,
    *,
    where: Filter | None = None,
    as_json: bool = False,
    by: str | None = None,
) -> int:
    """Print the ledger report of a running deployment (REDIS_URL); ``where`` narrows it to
    an agent, a model, a workspace or project or a day range (--agent --model --workspace
    --project --start --end); ``by`` shows only that breakdown (--by)."""
    from bus.reachable import open_redis
    from cost_ledger.aggregates import AggregateStore
    from cost_ledger.api_models import Filter
    from cost_ledger.budgets.cli import budget_status
    from cost_ledger.budgets.status import render_status
    from cost_ledger.cli import unknown_to_deployment
    from cost_ledger.report import build_report, render_report
    from cost_ledger.slices import FilterError, check_filter
    from router.routing.grade_report import render_standings, standings

    try:
        where = check_filter(where if where is not None else Filter(tenant=tenant))
    except FilterError as exc:
        print(f"flipsync report: {exc}", file=sys.stderr)
        return 2
    if settings.redis_url is None:
        if not data_dir.has_data(settings.data_dir):
            print(
                "flipsync report: no ledger here: set REDIS_URL to the deployment's Redis, or "
                f"run `make demo` or `flipsync upload` first (they keep data in "
                f"{settings.data_dir or data_dir.DEFAULT})",
                file=sys.stderr,
            )
            return 2
        # The ledger an earlier command left in the local data directory.
        return await on_local_ledger(
            settings,
            "report",
            lambda local: print_report(local, tenant, where=where, as_json=as_json, by=by),
        )
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        graded = await standings(client, where.tenant, where.agent)
        # A tenant with no call yet but graded agents or a budget of its own is no typo; a
        # mistyped agent or model still is (graded agents excused every name before).
        unknown = await unknown_to_deployment(
            client, settings, where, graded_agents=[s.agent for s in graded]
        )
        if unknown:  # a tenant, agent or model nothing knows: likely mistyped
            print(f"flipsync report: {unknown}", file=sys.stderr)  # not an empty report
            return 2
        # One path, filtered or not: the cost API's spend view of the ledger cube.
        report = await build_report(AggregateStore(client), where=where)
        if as_json:  # the same view as GET /api/cost/spend
            print(report.view.model_dump_json(indent=2))
            return 0
        print(render_report(report, by=by))
        print(render_status(await budget_status(client, settings, tenant)), end="")
        print(render_standings(graded, simulated=report.view.simulated), end="")
    finally:
        await client.aclose()
    return 0
