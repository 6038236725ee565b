"""UTC calendar periods of budgets: their keys, their ends, and which ones a reservation holds.

Pure functions of a timestamp in Unix milliseconds.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from bus.messages import BudgetPeriod

_DAY_KEY = "d%Y-%m-%d"
_MONTH_KEY = "m%Y-%m"


DAY_MS = 86_400_000
"""A UTC day in Unix milliseconds (Unix time has no leap seconds): every period below is a
function of the day holding at_ms, so each is worked out once per day and period (they were
several percent of the router's CPU, computed for every budget of every request)."""


def _at(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms // 1000, tz=UTC)


def period_key(period: BudgetPeriod, at_ms: int) -> str:
    """The key of the period holding at_ms: d2026-11-02 or m2026-11."""
    return _key_of_day(period, at_ms // DAY_MS)


def period_start(period: BudgetPeriod, at_ms: int) -> datetime:
    """Start of the period holding at_ms."""
    return _start_of_day(period, at_ms // DAY_MS)


def period_end_ms(period: BudgetPeriod, at_ms: int) -> int:
    """First millisecond after the period holding at_ms."""
    return _end_of_day(period, at_ms // DAY_MS)


@functools.lru_cache(maxsize=256)
def _key_of_day(period: BudgetPeriod, day: int) -> str:
    return _at(day * DAY_MS).strftime(_DAY_KEY if period is BudgetPeriod.DAY else _MONTH_KEY)


@functools.lru_cache(maxsize=256)
def _start_of_day(period: BudgetPeriod, day: int) -> datetime:
    start = _at(day * DAY_MS)
    return start if period is BudgetPeriod.DAY else start.replace(day=1)


@functools.lru_cache(maxsize=256)
def _end_of_day(period: BudgetPeriod, day: int) -> int:
    start = _start_of_day(period, day)
    if period is BudgetPeriod.DAY:
        end = start + timedelta(days=1)
    else:
        end = (start + timedelta(days=32)).replace(day=1)
    return int(end.timestamp()) * 1000


def end_of_key_ms(key: str) -> int:
    """First millisecond after the period a key names; raises ValueError for a bad key."""
    if key.startswith("d"):
        period, at = BudgetPeriod.DAY, datetime.strptime(key, _DAY_KEY)
    elif key.startswith("m"):
        period, at = BudgetPeriod.MONTH, datetime.strptime(key, _MONTH_KEY)
    else:
        raise ValueError(f"{key!r} is not a period key")
    return period_end_ms(period, int(at.replace(tzinfo=UTC).timestamp()) * 1000)


def periods_held(period: BudgetPeriod, at_ms: int, overlap_ms: int) -> tuple[str, ...]:
    """Keys of the periods a reservation made at at_ms holds.

    The period of at_ms, and also the next one when the request may still finish there
    (within overlap_ms): its cost is charged to the period it finishes in, which must have
    room for it too.
    """
    first = period_key(period, at_ms)
    end = period_end_ms(period, at_ms)
    if at_ms + overlap_ms < end:
        return (first,)
    return first, period_key(period, end)
