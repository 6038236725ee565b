"""Spend forecasts: a synthetic daily series with a known linear trend is forecast with the
true future inside the interval, from a plain series and from real ledger events in Redis."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
import redis.asyncio as aioredis

from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.forecast import HORIZONS, MIN_HISTORY_DAYS, forecast_series, forecast_view
from tests.cost_events import apply_all, ledger_event

LEVEL, SLOPE, NOISE = 2_000_000, 50_000, 150_000
"""$2.00 a day on day 0, growing $0.05 a day, noise sd $0.15 (micro-dollars)."""


def trend(day: int) -> int:
    """The true spend of a day, without noise."""
    return LEVEL + SLOPE * day


def noisy_history(days: int, seed: int = 3) -> list[int]:
    """The trend plus Gaussian noise, from a fixed seed."""
    rng = random.Random(seed)
    return [max(int(trend(t) + rng.gauss(0, NOISE)), 0) for t in range(days)]


def test_true_future_is_inside_the_interval() -> None:
    history = noisy_history(60)
    fit = forecast_series(history)
    future = [trend(t) for t in range(60, 60 + max(HORIZONS))]
    assert len(fit.mean) == len(fit.lower) == len(fit.upper) == 90
    for day, (value, lo, hi) in enumerate(zip(future, fit.lower, fit.upper, strict=True)):
        assert lo <= value <= hi, f"day {day}: {value} not in [{lo}, {hi}]"
    assert [h.days for h in fit.horizons] == [30, 60, 90]
    for h in fit.horizons:
        truth = sum(future[: h.days])
        assert h.lower_micro_usd <= truth <= h.upper_micro_usd
        assert h.lower_micro_usd <= h.spend_micro_usd <= h.upper_micro_usd
        assert abs(h.spend_micro_usd - truth) < 0.1 * truth  # the trend was learned
    width = fit.horizons[0].upper_micro_usd - fit.horizons[0].lower_micro_usd
    assert width < 0.25 * sum(future[:30])  # an interval, not a shrug
    assert fit.horizons[2].upper_micro_usd - fit.horizons[2].lower_micro_usd > width


def test_forecast_is_repeatable_and_never_negative() -> None:
    falling = [max(1_000_000 - 60_000 * t, 0) + (t % 3) * 10_000 for t in range(20)]
    first, second = forecast_series(falling), forecast_series(falling)
    assert first == second
    assert min(first.lower) >= 0 and min(first.mean) >= 0
    flat = forecast_series([500] * MIN_HISTORY_DAYS)
    assert flat.horizons[0].spend_micro_usd == 15_000 == flat.horizons[0].upper_micro_usd
    with pytest.raises(ValueError, match="days of history"):
        forecast_series([1, 2, 3])


async def test_forecast_from_ledger_events(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    first = date(2026, 9, 1)
    history = noisy_history(45, seed=11)
    events = []
    for t, spend in enumerate(history):
        day = (first + timedelta(days=t)).isoformat()
        half = spend // 2  # two agents a day, so the day sums events
        events.append(ledger_event(at=f"{day}T08:00:00", agent="lister", cost=half))
        events.append(ledger_event(at=f"{day}T20:00:00", agent="pricer", cost=spend - half))
    await apply_all(store, events)
    view = await forecast_view(store, Filter(tenant="acme"), today=date(2026, 11, 20))
    assert view.status == "ok", view.reason
    assert view.history_days == 45
    assert [h.spend_micro_usd for h in view.history] == history
    assert view.daily[0].day == date(2026, 10, 16)
    for h in view.horizons:
        truth = sum(trend(t) for t in range(45, 45 + h.days))
        assert h.lower_micro_usd <= truth <= h.upper_micro_usd


async def test_short_history_says_so(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(
        store, [ledger_event(at=f"2026-11-{d:02d}T10:00:00", cost=1000) for d in range(1, 6)]
    )
    view = await forecast_view(store, Filter(tenant="acme"), today=date(2026, 11, 20))
    assert view.status == "not_enough_history"
    assert view.horizons == [] and view.history_days == 5
    assert "5 complete days" in view.reason and str(MIN_HISTORY_DAYS) in view.reason
    # Today is a partial day: left out of the history unless asked for by `end`.
    today = await forecast_view(store, Filter(tenant="acme"), today=date(2026, 11, 5))
    assert today.history_days == 4
