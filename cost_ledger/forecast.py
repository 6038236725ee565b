"""Spend forecasts: the next 30, 60 and 90 days from the daily series, with an interval.

The model is Holt's linear trend as a state-space ETS model (statsmodels ETSModel, additive
error and trend): it follows a level and a slope that both adapt. Intervals are quantiles of
future paths simulated from the fitted model (seeded, so repeatable): a horizon's interval is
that of the paths' sums, not a sum of daily bounds. Spend cannot go below zero, so every
figure is floored at zero. Money goes through the model as floats (it is a statistical
estimate) and comes out as integer micro-dollars.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import DayAmount, Filter, ForecastResponse, HorizonForecast
from cost_ledger.cube import day_bucket
from cost_ledger.slices import CubeReader, check_filter

MIN_HISTORY_DAYS = 14
"""Fewer days than this and a trend would be a guess: the answer says not enough history."""
HORIZONS = (30, 60, 90)
CONFIDENCE = 0.9
SIMULATIONS = 2000
SEED = 20261101
"""Simulated paths are drawn from a fixed seed, so the same ledger gives the same forecast."""
METHOD = "Holt linear trend (statsmodels ETSModel, additive error and trend)"

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Forecast:
    """A fitted forecast: per-day values and per-horizon totals, in micro-dollars."""

    mean: tuple[int, ...]
    lower: tuple[int, ...]
    upper: tuple[int, ...]
    horizons: tuple[HorizonForecast, ...]
    method: str


def forecast_series(
    history: Sequence[int],
    *,
    horizons: Sequence[int] = HORIZONS,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Forecast:
    """Forecast a daily series (oldest first) for the longest horizon; raises ValueError
    when the history is shorter than MIN_HISTORY_DAYS."""
    if len(history) < MIN_HISTORY_DAYS:
        raise ValueError(f"{len(history)} days of history, {MIN_HISTORY_DAYS} needed")
    steps = max(horizons)
    values = np.asarray(history, dtype=float)
    if float(values.std()) == 0.0:  # a flat series: nothing to fit, nothing uncertain
        flat = (max(int(values[-1]), 0),) * steps
        totals = tuple(
            HorizonForecast(days=h, spend_micro_usd=sum(flat[:h]),
                            lower_micro_usd=sum(flat[:h]), upper_micro_usd=sum(flat[:h]))
            for h in horizons
        )  # fmt: skip
        return Forecast(mean=flat, lower=flat, upper=flat, horizons=totals, method="flat series")
    alpha = 1.0 - confidence
    with warnings.catch_warnings():  # convergence chatter on short or noisy series
        warnings.simplefilter("ignore")
        fit = ETSModel(values, error="add", trend="add").fit(disp=False)
        mean = np.clip(np.asarray(fit.forecast(steps), dtype=float), 0.0, None)
        paths = np.asarray(
            fit.simulate(
                steps, anchor="end", repetitions=SIMULATIONS, rng=np.random.default_rng(seed)
            ),
            dtype=float,
        ).reshape(steps, SIMULATIONS)
    paths = np.clip(paths, 0.0, None)
    lower, upper = np.quantile(paths, [alpha / 2, 1 - alpha / 2], axis=1)
    out = []
    for h in horizons:
        lo, hi = np.quantile(paths[:h].sum(axis=0), [alpha / 2, 1 - alpha / 2])
        total = float(mean[:h].sum())
        out.append(
            HorizonForecast(
                days=h,
                spend_micro_usd=_money(total),
                lower_micro_usd=_money(min(lo, total)),
                upper_micro_usd=_money(max(hi, total)),
            )
        )
    return Forecast(
        mean=_column(mean),
        lower=_column(np.minimum(lower, mean)),
        upper=_column(np.maximum(upper, mean)),
        horizons=tuple(out),
        method=METHOD,
    )


async def daily_history(
    store: AggregateStore, where: Filter, today: date | None = None
) -> list[DayAmount]:
    """Spend per UTC day of a filter, missing days as zero; today (a partial day) left out
    unless the filter ends on or after it explicitly."""
    reader = CubeReader(store, check_filter(where))
    today = today or datetime.now(UTC).date()
    days = [d for d in await reader.days() if where.end is not None or d < today]
    cubes = await reader.by_bucket([day_bucket(d) for d in days])
    return [
        DayAmount(day=d, spend_micro_usd=c.totals.spend_micro_usd)
        for d, c in zip(days, cubes, strict=True)
    ]


async def forecast_view(
    store: AggregateStore, where: Filter, *, today: date | None = None
) -> ForecastResponse:
    """The spend forecast of a filter, or a clear not-enough-history answer."""
    history = await daily_history(store, where, today)
    base = {
        "filter": where,
        "method": METHOD,
        "confidence": CONFIDENCE,
        "history_days": len(history),
        "min_history_days": MIN_HISTORY_DAYS,
        "history": history,
    }
    if len(history) < MIN_HISTORY_DAYS:
        reason = (
            f"not enough history: {len(history)} complete days of spend (today, still "
            f"running, is left out), at least {MIN_HISTORY_DAYS} are needed for a trend"
        )
        return ForecastResponse(
            status="not_enough_history", reason=reason, horizons=[], daily=[], **base
        )
    fit = forecast_series([h.spend_micro_usd for h in history])
    first = history[-1].day + timedelta(days=1)
    daily = [
        DayAmount(day=first + timedelta(days=i), spend_micro_usd=m, lower_micro_usd=lo,
                  upper_micro_usd=hi)
        for i, (m, lo, hi) in enumerate(zip(fit.mean, fit.lower, fit.upper, strict=True))
    ]  # fmt: skip
    return ForecastResponse(
        status="ok",
        reason=f"fitted on {len(history)} days ending {history[-1].day}",
        horizons=list(fit.horizons),
        daily=daily,
        **{**base, "method": fit.method},
    )


def _money(value: float) -> int:
    return max(int(round(value)), 0)


def _column(values: np.ndarray[tuple[int], np.dtype[np.float64]]) -> tuple[int, ...]:
    return tuple(_money(float(v)) for v in values)
