"""`flipsync cost spend|timeseries|forecast|anomalies|recommend|vs-reference` and the filters of
`flipsync report`, read from a running deployment's Redis (REDIS_URL)."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Collection

import redis.asyncio as aioredis
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from bus.reachable import open_redis
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore
from cost_ledger.anomalies import anomalies_view
from cost_ledger.api_models import (
    AnomaliesResponse,
    Filter,
    ForecastResponse,
    RecommendationsResponse,
    SpendResponse,
)
from cost_ledger.budgets.cli import budget_names_tenant
from cost_ledger.catalog import PriceCatalog
from cost_ledger.cli_args import VIEWS, add_commands, add_filters, filter_of, is_filtered
from cost_ledger.errors import ReferenceFileError
from cost_ledger.recommendations import QualitySource, recommendations_view, recorded_quality
from cost_ledger.reference import References, vs_reference
from cost_ledger.report import (
    counted,
    describe,
    known_names,
    render_spend,
    simulated_note,
    unknown_name,
    unknown_tenant,
    usd,
)
from cost_ledger.slices import FilterError, check_filter
from cost_ledger.spend import spend_view, timeseries_view
from cost_ledger.text_console import plain_console

COMMANDS = ("cost",)
__all__ = ["VIEWS", "add_commands", "add_filters", "filter_of", "is_filtered", "run_command"]


async def run_command(
    args: argparse.Namespace, settings: Settings, *, quality: QualitySource | None = None
) -> int:
    """Run `flipsync cost <view>` against a running deployment's Redis."""
    if settings.redis_url is None:
        print(
            f"flipsync {args.command}: no ledger here: set REDIS_URL to the deployment's Redis, "
            "or run `make demo` or `flipsync upload` first",
            file=sys.stderr,
        )
        return 2
    if args.cost_command == "vs-reference":
        return await _vs_reference(args, settings)
    try:
        where = check_filter(filter_of(args))
    except FilterError as exc:
        print(f"flipsync {args.command}: {exc}", file=sys.stderr)
        return 2
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        if unknown := await unknown_to_deployment(client, settings, where):
            print(f"flipsync cost {args.cost_command}: {unknown}", file=sys.stderr)
            return 2
        print(await render_view(args.cost_command, client, where, args.json, quality), end="")
    finally:
        await client.aclose()
    return 0


async def render_view(
    name: str,
    redis: aioredis.Redis,
    where: Filter,
    as_json: bool = False,
    quality: QualitySource | None = None,
) -> str:
    """One cost view of a filter, as text (or as the API's JSON)."""
    store = AggregateStore(redis)
    catalog = PriceCatalog.load()
    from optimizer.models import load_registered  # lazy: the optimizer builds on the ledger

    await load_registered(redis, catalog)  # fine-tuned models registered at run time
    view: BaseModel
    match name:
        case "spend":
            view = await spend_view(store, where)
        case "timeseries":
            view = await timeseries_view(store, where)
            as_json = True
        case "forecast":
            from cost_ledger.forecast import forecast_view  # statsmodels: only where used

            view = await forecast_view(store, where)
        case "anomalies":
            view = await anomalies_view(store, where)
        case _:
            source = quality or recorded_quality(redis, catalog)
            view = await recommendations_view(store, where, catalog, source)
    if as_json:
        return view.model_dump_json(indent=2) + "\n"
    if isinstance(view, SpendResponse):
        return render_spend(view)  # it says "simulated" itself
    if isinstance(view, ForecastResponse):
        text = render_forecast(view)
    elif isinstance(view, AnomaliesResponse):
        text = render_anomalies(view)
    else:
        assert isinstance(view, RecommendationsResponse)
        text = render_recommendations(view)
    return text + await simulated_note(store, where)


def render_forecast(view: ForecastResponse) -> str:
    """A forecast as text."""
    out, console = _console()
    console.print(f"Spend forecast: {describe(view.filter)}")
    if view.status != "ok":
        console.print(view.reason)
        return out.getvalue()
    console.print(f"{view.method}; {view.reason}; {view.confidence:.0%} intervals")
    table = Table(title="Next days", title_justify="left")
    for column in ("days", "forecast", "low", "high"):
        table.add_column(column, justify="right")
    for h in view.horizons:
        table.add_row(
            str(h.days), usd(h.spend_micro_usd), usd(h.lower_micro_usd), usd(h.upper_micro_usd)
        )
    console.print(table)
    return out.getvalue()


def render_anomalies(view: AnomaliesResponse) -> str:
    """Anomalies as text."""
    out, console = _console()
    hours = counted(view.hours, "hour")
    console.print(f"Anomalies: {describe(view.filter)}; {hours}, {view.method}")
    if not view.spend and not view.cost_per_call:
        console.print(f"none above a score of {view.threshold}")
    for a in view.spend:
        console.print(
            f"{a.hour}  spend {usd(a.spend_micro_usd)} vs {usd(a.baseline_micro_usd)} usually "
            f"(score {a.score}): {a.likely_cause}"
        )
    for c in view.cost_per_call:
        console.print(
            f"{c.hour}  {c.agent} cost per call {usd(c.cost_per_call_micro_usd)} vs "
            f"{usd(c.baseline_cost_per_call_micro_usd)} usually over {counted(c.calls, 'call')} "
            f"(score {c.score}): {c.likely_cause}"
        )
    return out.getvalue()


def render_recommendations(view: RecommendationsResponse) -> str:
    """Recommendations as text, largest monthly saving first."""
    out, console = _console()
    console.print(
        f"Recommendations: {describe(view.filter)}; from {counted(view.window_days, 'day')} of"
        " ledger, "
        f"{usd(view.total_monthly_saving_micro_usd)} a month in all"
    )
    if not view.items:
        console.print("none: nothing to save that the ledger can show")
    # A grid, so that a title or detail folded at the terminal's width stays under its own
    # column instead of starting the next line at the margin, where it read as a new item.
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for r in view.items:
        grid.add_row(f"{usd(r.monthly_saving_micro_usd)}/month", f"[{r.kind}] {r.title}")
        grid.add_row("", r.detail)
    if view.items:
        console.print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().split("\n"))


async def _vs_reference(args: argparse.Namespace, settings: Settings) -> int:
    """Print each agent's cost per operation against the reference figures."""
    try:
        references = References.load(args.file)
    except ReferenceFileError as exc:
        print(f"flipsync cost vs-reference: {exc.reason}", file=sys.stderr)
        return 2
    assert settings.redis_url is not None
    # open_redis: an unreachable Redis is the one-line error (exit 3), not a traceback.
    client = await open_redis(settings.redis_url, settings.connect_timeout_s)
    try:
        store = AggregateStore(client)
        if unknown := await unknown_to_deployment(client, settings, Filter(tenant=args.tenant)):
            print(f"flipsync cost vs-reference: {unknown}", file=sys.stderr)
            return 2
        print(await vs_reference(store, references, args.tenant, as_json=args.json), end="")
        if not args.json:  # its cost per operation is the simulator's when its calls were
            print(await simulated_note(store, Filter(tenant=args.tenant)), end="")
    finally:
        await client.aclose()
    return 0


def _console() -> tuple[io.StringIO, Console]:
    out = io.StringIO()
    return out, plain_console(out)


async def unknown_to_deployment(
    client: aioredis.Redis,
    settings: Settings,
    where: Filter,
    *,
    graded_agents: Collection[str] = (),
) -> str:
    """Why a view of where would be empty for a likely typo, or "": a tenant the ledger has
    no call of and no budget names (report.unknown_tenant; a budget's tenant with no call yet
    is no typo, nor one with graded agents), or an agent or model neither known nor in the
    ledger (report.unknown_name; a graded agent is known)."""
    store = AggregateStore(client)
    unknown = "" if graded_agents else await unknown_tenant(store, where.tenant)
    if unknown and where.tenant and await budget_names_tenant(client, settings, where.tenant):
        unknown = ""
    known = await known_names(client, settings, where)
    if "agent" in known:
        known["agent"] |= set(graded_agents)
    return unknown or await unknown_name(store, where, known)
