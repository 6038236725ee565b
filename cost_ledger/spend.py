"""Spend views of the cube: totals, savings per lever, cost per operation and per product, rates."""

from __future__ import annotations

from collections.abc import Mapping

from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.api_models import (
    Filter,
    HourlyResponse,
    Metrics,
    Products,
    Rates,
    Row,
    SpendResponse,
    TimeseriesResponse,
)
from cost_ledger.cube import CubeDim, day_bucket, hour_bucket, project_member
from cost_ledger.keys import Dimension
from cost_ledger.slices import Cube, CubeReader, check_filter
from cost_ledger.split_store import SplitStore


def per(amount: int, count: int) -> int:
    """amount / count in integers, rounded half up (0 for a zero count)."""
    if count <= 0:
        return 0
    return (2 * amount + count) // (2 * count)


def metrics(t: Totals) -> Metrics:
    """The API shape of some totals."""
    return Metrics(**_metric_fields(t))


def row(name: str, t: Totals) -> Row:
    """The API shape of one member's totals."""
    return Row(name=name, **_metric_fields(t))


def rows(members: Mapping[str, Totals]) -> list[Row]:
    """Rows of a breakdown, sorted by member."""
    return [row(name, t) for name, t in sorted(members.items())]


def rates(t: Totals) -> Rates:
    """Cache hit, dedup and packing rates of some totals."""
    calls = t.calls or 1
    factor = t.packed_items * 1_000_000 / t.pack_share_micro if t.pack_share_micro else None
    return Rates(
        cache_hit_rate=(t.exact_hits + t.semantic_hits) / calls,
        exact_cache_hit_rate=t.exact_hits / calls,
        semantic_cache_hit_rate=t.semantic_hits / calls,
        dedup_rate=t.dedup_hits / calls,
        packed_items=t.packed_items,
        packing_factor=round(factor, 3) if factor is not None else None,
    )


def products(cube: Cube, where: Filter) -> Products | None:
    """Cost per product: events of a workflow, one workflow per product; None (not available)
    under an agent, model or workspace filter, whose slices keep no workflow rows."""
    if where.agent is not None or where.model is not None or where.workspace is not None:
        return None
    flows = [t for t in cube.of(CubeDim.WORKFLOW).values() if t.calls]
    spend = sum(t.spend_micro_usd for t in flows)
    return Products(
        products=len(flows),
        spend_micro_usd=spend,
        baseline_micro_usd=sum(t.baseline_micro_usd for t in flows),
        cost_per_product_micro_usd=per(spend, len(flows)),
    )


def breakdown(cube: Cube, dim: CubeDim, where: Filter) -> Mapping[str, Totals]:
    """A breakdown of the cube; an agent or model slice is its own one-member breakdown."""
    if dim is CubeDim.AGENT and where.agent is not None:
        return {where.agent: cube.totals} if cube.totals.calls else {}
    if dim is CubeDim.MODEL and where.model is not None:
        return {where.model: cube.totals} if cube.totals.calls else {}
    if dim is CubeDim.WORKSPACE and where.workspace is not None:
        return {where.workspace: cube.totals} if cube.totals.calls else {}
    if dim is CubeDim.PROJECT and where.workspace is not None and where.project is not None:
        name = project_member(where.workspace, where.project)
        return {name: cube.totals} if cube.totals.calls else {}
    return cube.of(dim)


def split_kept(where: Filter) -> bool:
    """Whether the ledger keeps the lever split (savings net of each lever's own calls) for
    where: by tenant and day only, so not under an agent, model or workspace filter."""
    return where.agent is None and where.model is None and where.workspace is None


async def spend_view(store: AggregateStore, where: Filter) -> SpendResponse:
    """Spend, savings per lever, cost per operation and per product, and rates of a filter."""
    reader = CubeReader(store, check_filter(where))
    days = await reader.days()
    per_day = await reader.by_bucket([day_bucket(d) for d in days])
    cube = await reader.summed([day_bucket(d) for d in days])
    by_tenant: list[Row] = []
    if where.tenant is None and where.agent is None and where.model is None:
        tenants = await store.members(Dimension.TENANT)
        per_tenant = await reader.by_tenant(tenants, [day_bucket(d) for d in days])
        by_tenant = [row(t, c.totals) for t, c in per_tenant.items() if c.totals.calls]
    levers = cube.of(CubeDim.LEVER)
    savings = {name: t.savings_micro_usd for name, t in sorted(levers.items())}
    split = None
    if split_kept(where):
        split = await SplitStore(store.redis).split(where.tenant, days)
    if split is not None and (split.gross or split.lever_cost):
        savings = split.net
    return SpendResponse(
        filter=where,
        simulated=cube.totals.simulated_events > 0,
        totals=metrics(cube.totals),
        rates=rates(cube.totals),
        products=products(cube, where),
        savings_by_lever=savings,
        gross_savings_by_lever=dict(sorted(split.gross.items())) if split else {},
        lever_cost_micro_usd=dict(sorted(split.cost_by_lever.items())) if split else {},
        by_lever=rows(levers),
        by_agent=rows(breakdown(cube, CubeDim.AGENT, where)),
        by_model=rows(breakdown(cube, CubeDim.MODEL, where)),
        by_task_type=rows(cube.of(CubeDim.TASK_TYPE)),
        by_tenant=by_tenant,
        by_workspace=rows(breakdown(cube, CubeDim.WORKSPACE, where)),
        by_project=rows(breakdown(cube, CubeDim.PROJECT, where)),
        by_day=[
            row(d.isoformat(), c.totals)
            for d, c in zip(days, per_day, strict=True)
            if c.totals.calls
        ],
    )


async def timeseries_view(store: AggregateStore, where: Filter) -> TimeseriesResponse:
    """One value per day: spend, savings per lever, routing mix per model, cost per product."""
    reader = CubeReader(store, check_filter(where))
    days = await reader.days()
    cubes = await reader.by_bucket([day_bucket(d) for d in days])
    levers = sorted({name for c in cubes for name in c.of(CubeDim.LEVER)})
    models = sorted({name for c in cubes for name in breakdown(c, CubeDim.MODEL, where)})
    flows = [products(c, where) for c in cubes]
    product_flows = [p for p in flows if p is not None]
    available = len(product_flows) == len(flows)

    def series(dim: CubeDim, name: str, field: str) -> list[int]:
        return [int(getattr(breakdown(c, dim, where).get(name, Totals()), field)) for c in cubes]

    savings = {name: series(CubeDim.LEVER, name, "savings_micro_usd") for name in levers}
    if split_kept(where):
        # As spend_view: each lever's saving net of its own cost, where the split is kept
        # (found by a newcomer: the same key meant the served lever's saving here).
        daily = await SplitStore(store.redis).daily(where.tenant, days)
        if any(day.gross or day.lever_cost for day in daily):
            nets = [day.net for day in daily]
            names = sorted({name for net in nets for name in net})
            savings = {name: [net.get(name, 0) for net in nets] for name in names}
    return TimeseriesResponse(
        filter=where,
        simulated=any(c.totals.simulated_events for c in cubes),
        days=days,
        spend_micro_usd=[c.totals.spend_micro_usd for c in cubes],
        baseline_micro_usd=[c.totals.baseline_micro_usd for c in cubes],
        calls=[c.totals.calls for c in cubes],
        savings_by_lever=savings,
        spend_by_model={name: series(CubeDim.MODEL, name, "spend_micro_usd") for name in models},
        calls_by_model={name: series(CubeDim.MODEL, name, "calls") for name in models},
        products=[p.products for p in product_flows] if available else None,
        cost_per_product_micro_usd=(
            [p.cost_per_product_micro_usd for p in product_flows] if available else None
        ),
    )


HOURLY_MAX_HOURS = 7 * 24
"""The hourly view reads at most this many hours (the most recent): it is for short ledgers."""


async def hourly_view(store: AggregateStore, where: Filter) -> HourlyResponse:
    """One value per UTC hour: spend, calls (per lever), spend per model; baseline when kept."""
    reader = CubeReader(store, check_filter(where))
    hours = (await reader.hours())[-HOURLY_MAX_HOURS:]
    cubes = await reader.by_bucket([hour_bucket(h) for h in hours])
    sliced = where.agent is not None or where.model is not None
    levers = sorted({name for c in cubes for name in c.of(CubeDim.LEVER)})
    models = sorted({name for c in cubes for name in breakdown(c, CubeDim.MODEL, where)})

    def total(c: Cube, field: str) -> int:
        # An agent's hourly slice keeps no totals row: its levers add up to it.
        if where.agent is not None:
            return sum(int(getattr(t, field)) for t in c.of(CubeDim.LEVER).values())
        return int(getattr(c.totals, field))

    def series(dim: CubeDim, name: str, field: str) -> list[int]:
        return [int(getattr(breakdown(c, dim, where).get(name, Totals()), field)) for c in cubes]

    return HourlyResponse(
        filter=where,
        hours=hours,
        spend_micro_usd=[total(c, "spend_micro_usd") for c in cubes],
        calls=[total(c, "calls") for c in cubes],
        baseline_micro_usd=None if sliced else [c.totals.baseline_micro_usd for c in cubes],
        calls_by_lever={name: series(CubeDim.LEVER, name, "calls") for name in levers},
        spend_by_model={name: series(CubeDim.MODEL, name, "spend_micro_usd") for name in models},
    )


def _metric_fields(t: Totals) -> dict[str, int]:
    return {
        "spend_micro_usd": t.spend_micro_usd,
        "baseline_micro_usd": t.baseline_micro_usd,
        "savings_micro_usd": t.savings_micro_usd,
        "calls": t.calls,
        "paid_calls": t.paid_calls,
        "input_tokens": t.input_tokens,
        "cached_input_tokens": t.cached_input_tokens,
        "output_tokens": t.output_tokens,
        "simulated_events": t.simulated_events,
        "cost_per_call_micro_usd": per(t.spend_micro_usd, t.calls),
    }
