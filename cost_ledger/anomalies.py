"""Anomalies: hours of unusual spend, and hours of unusual cost per call for each agent.

Both use a robust z-score, 0.6745 (x - median) / MAD (Iglewicz and Hoaglin), so one spike
does not hide itself by inflating the spread; when more than half the hours are equal (MAD
0), the mean absolute deviation times 1.2533 stands in for it. Only active hours (with
calls) are compared, so idle nights do not make every busy hour look like a spike. An hour
scoring above THRESHOLD, and at least MIN_RISE_PERCENT above the median, is reported with
its likely cause: the agent, model and lever whose spend (or share of the cost per call)
moved most in that hour against its usual.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.api_models import (
    AnomaliesResponse,
    Cause,
    CostPerCallAnomaly,
    Filter,
    SpendAnomaly,
)
from cost_ledger.cube import ALL, CubeDim, agent_slice, hour_bucket
from cost_ledger.report import usd
from cost_ledger.slices import Cube, CubeReader, check_filter
from cost_ledger.spend import per

THRESHOLD = 3.5
"""Robust z above which an hour is an anomaly (the usual cut for the modified z-score)."""
WINDOW_HOURS = 14 * 24
"""Hours scanned when the filter has no start: the last two weeks of the ledger."""
MIN_HOURS = 6
"""Fewer active hours than this and there is no usual to compare with."""
MIN_RISE_PERCENT = 50
"""An hour must also be this much above the median: a tiny wobble on a very steady series
scores high but is no anomaly."""
METHOD = "robust z-score: 0.6745 (x - median) / MAD, hourly"
CAUSE_DIMS = (CubeDim.AGENT, CubeDim.MODEL, CubeDim.LEVER)


def robust_scores(values: Sequence[float]) -> list[float]:
    """The robust z-score of each value (0 for all of them when they are all equal)."""
    if not values:
        return []
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    if mad > 0:
        return [0.6745 * (v - median) / mad for v in values]
    mean_ad = statistics.fmean(abs(v - median) for v in values)
    if mean_ad == 0:
        return [0.0] * len(values)
    return [(v - median) / (1.2533 * mean_ad) for v in values]


@dataclass(frozen=True, kw_only=True)
class HourSeries:
    """Cubes of consecutive hours (missing hours are empty cubes)."""

    hours: list[str]
    cubes: list[Cube]


async def hour_series(reader: CubeReader, slice_: str = ALL) -> HourSeries:
    """The filter's hours, the last WINDOW_HOURS of them unless the filter has a start."""
    hours = await reader.hours()
    if reader.where.start is None:
        hours = hours[-WINDOW_HOURS:]
    cubes = await reader.by_bucket([hour_bucket(h) for h in hours], slice_)
    return HourSeries(hours=hours, cubes=cubes)


def spend_anomalies(series: HourSeries, where: Filter) -> list[SpendAnomaly]:
    """Active hours (with calls) whose spend scores above THRESHOLD and is at least MIN_RISE
    above the median active hour, each with the members that moved most."""
    active = [i for i, c in enumerate(series.cubes) if _subject(c, where).calls]
    spend = [_subject(series.cubes[i], where).spend_micro_usd for i in active]
    if len(spend) < MIN_HOURS:
        return []
    baseline = int(statistics.median(spend))
    out: list[SpendAnomaly] = []
    for i, value, score in zip(
        active, spend, robust_scores([float(s) for s in spend]), strict=True
    ):
        if score <= THRESHOLD or not _risen(value, baseline):
            continue
        causes = [] if where.model is not None else _spend_causes(series.cubes, i, active, where)
        out.append(
            SpendAnomaly(
                hour=series.hours[i],
                spend_micro_usd=value,
                baseline_micro_usd=baseline,
                score=round(score, 2),
                likely_cause=_explain(causes) or _scope_text(where),
                causes=causes,
            )
        )
    return out


def cost_per_call_anomalies(
    agent: str, series: HourSeries, agent_slices: Sequence[Cube]
) -> list[CostPerCallAnomaly]:
    """Hours in which an agent's cost per call scores above THRESHOLD, with the model and
    lever whose share of the cost per call moved most. ``agent_slices`` are the agent's own
    hour cubes (slice agent=<name>), aligned with the series."""
    rows = [
        (i, t)
        for i, c in enumerate(series.cubes)
        if (t := c.of(CubeDim.AGENT).get(agent)) and t.calls
    ]
    if len(rows) < MIN_HOURS:
        return []
    per_call = [per(t.spend_micro_usd, t.calls) for _, t in rows]
    baseline = int(statistics.median(per_call))
    out: list[CostPerCallAnomaly] = []
    for (i, t), value, score in zip(
        rows, per_call, robust_scores([float(v) for v in per_call]), strict=True
    ):
        if score <= THRESHOLD or not _risen(value, baseline):
            continue
        others = [(j, u) for j, u in rows if j != i]
        causes = _per_call_causes(agent_slices, i, t, others)
        out.append(
            CostPerCallAnomaly(
                agent=agent,
                hour=series.hours[i],
                calls=t.calls,
                cost_per_call_micro_usd=value,
                baseline_cost_per_call_micro_usd=baseline,
                score=round(score, 2),
                likely_cause=_explain(causes) or f"agent {agent}",
                causes=causes,
            )
        )
    return out


async def anomalies_view(store: AggregateStore, where: Filter) -> AnomaliesResponse:
    """Spend and cost-per-call anomalies of a filter's hours."""
    whole = check_filter(where).model_copy(update={"agent": None, "model": None})
    reader = CubeReader(store, whole)
    series = await hour_series(reader)
    spend = spend_anomalies(series, where)
    if where.agent is not None:
        agent_cubes = await reader.by_bucket(
            [hour_bucket(h) for h in series.hours], agent_slice(where.agent)
        )
        spend = _with_agent_causes(spend, series, agent_cubes, where.agent)
    per_call: list[CostPerCallAnomaly] = []
    if where.model is None:
        agents = [where.agent] if where.agent else sorted(
            {a for c in series.cubes for a in c.of(CubeDim.AGENT)}
        )  # fmt: skip
        for agent in agents:
            if not _has_candidates(agent, series):
                continue
            slices = await reader.by_bucket(
                [hour_bucket(h) for h in series.hours], agent_slice(agent)
            )
            per_call += cost_per_call_anomalies(agent, series, slices)
    return AnomaliesResponse(
        filter=where,
        method=METHOD,
        threshold=THRESHOLD,
        hours=len(series.hours),
        spend=spend,
        cost_per_call=sorted(per_call, key=lambda a: -a.score),
    )


def _subject(cube: Cube, where: Filter) -> Totals:
    if where.agent is not None:
        return cube.of(CubeDim.AGENT).get(where.agent, Totals())
    if where.model is not None:
        return cube.of(CubeDim.MODEL).get(where.model, Totals())
    return cube.totals


def _risen(value: int, baseline: int) -> bool:
    return 100 * value >= (100 + MIN_RISE_PERCENT) * baseline


def _spend_causes(
    cubes: Sequence[Cube], i: int, active: Sequence[int], where: Filter
) -> list[Cause]:
    dims = CAUSE_DIMS if where.agent is None else ()
    return _ranked(cubes, i, active, dims)


def _ranked(
    cubes: Sequence[Cube], i: int, active: Sequence[int], dims: Sequence[CubeDim]
) -> list[Cause]:
    """Each member's spend in hour i against its median over the active hours."""
    causes: list[Cause] = []
    for dim in dims:
        names = {n for c in cubes for n in c.of(dim)}
        for name in names:
            spend = [cubes[j].of(dim).get(name, Totals()).spend_micro_usd for j in active]
            usual = int(statistics.median(spend))
            now = cubes[i].of(dim).get(name, Totals()).spend_micro_usd
            causes.append(
                Cause(dimension=dim.value, name=name, observed_micro_usd=now,
                      baseline_micro_usd=usual, change_micro_usd=now - usual)
            )  # fmt: skip
    return _ordered(causes)


def _ordered(causes: Sequence[Cause], per_dim: int = 3) -> list[Cause]:
    """Causes that rose, grouped by dimension: the dimension whose top member explains most
    of the change first (within 5%, agent before model before lever, the most specific
    first), then its members by change."""
    order = {d.value: k for k, d in enumerate(CAUSE_DIMS)}
    risen = sorted(
        (c for c in causes if c.change_micro_usd > 0),
        key=lambda c: (-c.change_micro_usd, c.name),
    )
    if not risen:
        return []
    largest = risen[0].change_micro_usd
    tops: dict[str, int] = {}
    for c in risen:
        tops.setdefault(c.dimension, c.change_micro_usd)
    dims = sorted(tops, key=lambda d: (-round(20 * tops[d] / largest), order[d]))
    return [c for d in dims for c in [c for c in risen if c.dimension == d][:per_dim]]


def _with_agent_causes(
    spend: list[SpendAnomaly], series: HourSeries, agent_cubes: Sequence[Cube], agent: str
) -> list[SpendAnomaly]:
    out = []
    for anomaly in spend:
        i = series.hours.index(anomaly.hour)
        active = [j for j, c in enumerate(series.cubes) if c.of(CubeDim.AGENT).get(agent)]
        causes = _ranked(agent_cubes, i, active, (CubeDim.MODEL, CubeDim.LEVER))
        text = _explain(causes)
        out.append(
            anomaly.model_copy(
                update={
                    "causes": causes,
                    "likely_cause": f"agent {agent}" + (f": {text}" if text else ""),
                }
            )
        )
    return out


def _per_call_causes(
    slices: Sequence[Cube], i: int, t: Totals, others: Sequence[tuple[int, Totals]]
) -> list[Cause]:
    other_calls = sum(u.calls for _, u in others)
    causes: list[Cause] = []
    for dim in (CubeDim.MODEL, CubeDim.LEVER):
        names = {n for c in slices for n in c.of(dim)}
        for name in names:
            now = per(slices[i].of(dim).get(name, Totals()).spend_micro_usd, t.calls)
            before = per(
                sum(slices[j].of(dim).get(name, Totals()).spend_micro_usd for j, _ in others),
                other_calls,
            )
            causes.append(
                Cause(dimension=dim.value, name=name, observed_micro_usd=now,
                      baseline_micro_usd=before, change_micro_usd=now - before)
            )  # fmt: skip
    return _ordered(causes)


def _has_candidates(agent: str, series: HourSeries) -> bool:
    calls = [c.of(CubeDim.AGENT).get(agent, Totals()).calls for c in series.cubes]
    return sum(1 for n in calls if n) >= MIN_HOURS


def _explain(causes: Sequence[Cause]) -> str:
    """The top cause of each dimension, in order: 'agent lister +$1.20 ($1.25 vs $0.05 usually)'."""
    seen: set[str] = set()
    parts = []
    for c in causes:
        if c.dimension in seen:
            continue
        seen.add(c.dimension)
        parts.append(
            f"{c.dimension} {c.name} +{usd(c.change_micro_usd)} "
            f"({usd(c.observed_micro_usd)} vs {usd(c.baseline_micro_usd)} usually)"
        )
    return "; ".join(parts)


def _scope_text(where: Filter) -> str:
    return f"model {where.model}" if where.model is not None else "all spend"
