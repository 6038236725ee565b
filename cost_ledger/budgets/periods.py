"""UTC calendar periods of budgets: their keys, their ends, and which ones a reservation holds.

Pure functions of a timestamp in Unix milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bus.messages import BudgetPeriod

_DAY_KEY = "d%Y-%m-%d"
_MONTH_KEY = "m%Y-%m"


def _at(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms // 1000, tz=UTC)


def period_key(period: BudgetPeriod, at_ms: int) -> str:
    """The key of the period holding at_ms: d2026-11-02 or m2026-11."""
    return _at(at_ms).strftime(_DAY_KEY if period is BudgetPeriod.DAY else _MONTH_KEY)


def period_start(period: BudgetPeriod, at_ms: int) -> datetime:
    """Start of the period holding at_ms."""
    at = _at(at_ms)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period is BudgetPeriod.DAY else day.replace(day=1)


def period_end_ms(period: BudgetPeriod, at_ms: int) -> int:
    """First millisecond after the period holding at_ms."""
    start = period_start(period, at_ms)
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
