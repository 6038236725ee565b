"""Dates, relative times and clock times of a question, normalised by dateparser.

Why dateparser (a maintained, offline, pure-Python library): it reads the many spellings of
one date ("May 1, 2024", "1 May 2024", "2024-05-01", "05/01/2024") and does the calendar
arithmetic of relative ones ("last week", "a week ago", "the day before yesterday",
"in 3 weeks") so that spellings of the same time agree and different times differ (where
it reads "next friday" as "this friday", as it does on a Monday, next is the week after). We
find the spans with our own patterns (dateparser's free-text search takes words such as "to" or
"second" for dates) and hand only those spans to it.

Relative times are resolved against a fixed base, not today: "yesterday" then has one value
whatever day it is asked, so a cached answer's partition does not change at midnight (the
task type's TTL bounds how stale such an answer may be).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

BASE = dt.datetime(2001, 1, 1, 12, 0)
"""The fixed "now" of relative times (a Monday noon)."""
MAX_PARSED_SPANS = 32
"""Date spans of one question read by dateparser (about 0.5 ms each, on the router's loop);
later ones are kept as their folded words, still entities that tell two questions apart.
Found by review: 800 distinct dates in an 8 KB question held the loop 0.4 s."""

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_COUNT = (
    r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|few|couple of)"
)
_UNIT = r"(?:minute|hour|day|week|fortnight|month|quarter|year)s?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_SPANS = re.compile(
    "|".join(
        [
            r"\b\d{4}-\d{1,2}-\d{1,2}\b",
            r"\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b",
            rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}\b(?:,?\s+\d{{4}}\b)?",
            rf"\b{_MONTH}\s+{_DAY}\b(?:,?\s+\d{{4}}\b)?",
            r"\b(?:the\s+)?day\s+(?:before|after)\s+(?:yesterday|tomorrow)\b",
            rf"\b(?:last|next|this|previous|past|coming)\s+(?:{_UNIT}|weekend|{_WEEKDAY})\b",
            rf"\b{_COUNT}\s+{_UNIT}\s+(?:ago|back|from\s+now|later)\b",
            rf"\bin\s+{_COUNT}\s+{_UNIT}\b",
            rf"\b(?:yesterday|today|tomorrow|{_WEEKDAY}|weekend)\b",
        ]
    ),
    re.IGNORECASE,
)
_CLOCK = re.compile(
    r"\b(\d{1,2})(?:[:.](\d{2}))?\s*([ap])\.?\s?m\b\.?|\b(\d{1,2}):(\d{2})\b", re.IGNORECASE
)


def find(text: str) -> tuple[list[tuple[int, str, str]], str]:
    """(position, kind "date" or "time", value) of every date and clock time, and text with
    those spans blanked out (so their numbers are not read again as plain numbers)."""
    found: list[tuple[int, str, str]] = []

    def clock(match: re.Match[str]) -> str:
        hour, minute, half, hour24, minute24 = match.groups()
        if hour24 is not None:
            value = f"{int(hour24):02d}:{minute24}"
        else:
            h = int(hour) % 12 + (12 if half.lower() == "p" else 0)
            value = f"{h:02d}:{minute or '00'}"
        found.append((match.start(), "time", value))
        return " " * len(match.group(0))

    def date(match: re.Match[str]) -> str:
        span = match.group(0)
        parsed = len(found) - clocks < MAX_PARSED_SPANS  # the dates found so far
        found.append((match.start(), "date", normalise(span) if parsed else _folded(span)))
        return " " * len(span)

    text = _CLOCK.sub(clock, text)
    clocks = len(found)
    text = _SPANS.sub(date, text)
    return found, text


def _folded(span: str) -> str:
    return " ".join(span.lower().split())


@functools.lru_cache(maxsize=4096)
def normalise(span: str) -> str:
    """One date span as "YYYY-MM-DD/period" (relative to BASE), or its folded text."""
    folded = _folded(span)
    try:
        data = _parser().get_date_data(folded)
    except (ValueError, OverflowError):  # "in 99999999999 days": keep the words
        return folded
    if data.date_obj is None:
        return folded
    day = data.date_obj
    words = folded.split()
    if len(words) == 2 and words[0] == "next" and re.fullmatch(_WEEKDAY, words[1]):
        this = _parser().get_date_data(f"this {words[1]}").date_obj
        if this is not None and this.date() == day.date():
            day += dt.timedelta(days=7)  # "next friday" is never "this friday"
    return f"{day:%Y-%m-%d}/{data.period or 'day'}"


@functools.cache
def _parser() -> Any:
    from dateparser.date import DateDataParser  # on first use: it loads language data

    settings = {
        "RELATIVE_BASE": BASE,
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "DATE_ORDER": "MDY",
    }
    return DateDataParser(languages=["en"], settings=settings)
