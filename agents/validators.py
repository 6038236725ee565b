"""Reusable output validators: each returns the problems it finds, empty when valid.

A field may be a dotted path into nested objects ("de.title"). Problems are phrased for the
model: a targeted retry sends them back verbatim.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from agents.spec import Inputs, Output, Validator

_MISSING = object()


def lookup(output: Any, path: str) -> Any:
    """output at a dotted path, or a sentinel when some part is missing."""
    value = output
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def max_length(field: str, limit: int) -> Validator:
    """output[field] is a non-empty string of at most limit characters."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        value = lookup(output, field)
        if not isinstance(value, str) or not value.strip():
            return [f"{field} is missing"]
        if len(value) > limit:
            return [f"{field} is {len(value)} characters, over the limit of {limit}"]
        return []

    return check


def max_bytes(field: str, limit: int) -> Validator:
    """output[field] is a string of at most limit UTF-8 bytes (Amazon counts bytes)."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        value = lookup(output, field)
        if not isinstance(value, str):
            return [f"{field} is missing"]
        size = len(value.encode())
        return [f"{field} is {size} bytes, over the limit of {limit}"] if size > limit else []

    return check


def item_count(field: str, *, low: int = 0, high: int | None = None) -> Validator:
    """output[field] is a list of between low and high items."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        value = lookup(output, field)
        if not isinstance(value, list):
            return [f"{field} must be a list"]
        if len(value) < low or (high is not None and len(value) > high):
            want = f"exactly {low}" if low == high else f"{low} to {high if high else 'any'}"
            return [f"{field} has {len(value)} items, it must have {want}"]
        return []

    return check


def each_max_length(field: str, limit: int, key: str = "") -> Validator:
    """Every item of the list output[field] (or item[key]) is a non-empty string <= limit."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        items = lookup(output, field)
        if not isinstance(items, list):
            return [f"{field} must be a list"]
        problems: list[str] = []
        for index, item in enumerate(items):
            text = item.get(key) if key and isinstance(item, dict) else item
            name = f"{field}[{index}]{'.' + key if key else ''}"
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{name} is empty")
            elif len(text) > limit:
                problems.append(f"{name} is {len(text)} characters, over the limit of {limit}")
        return problems

    return check


def unique_items(field: str) -> Validator:
    """The list output[field] has no item twice (compared case-insensitively)."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        items = lookup(output, field)
        if not isinstance(items, list):
            return [f"{field} must be a list"]
        seen = [str(item).strip().lower() for item in items]
        twice = sorted({item for item in seen if seen.count(item) > 1})
        return [f"{field} repeats {', '.join(twice)}"] if twice else []

    return check


def positive_number(field: str) -> Validator:
    """output[field] is a number above zero."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        value = lookup(output, field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return [f"{field} must be a positive number, got {value!r}"]
        return []

    return check


def money(value: object) -> Decimal | None:
    """A model's or a seller's amount as Decimal cents, from its decimal text; None if not one.

    A JSON number reaches us as a float; its shortest repr is the text the model wrote, so
    Decimal(str(x)) recovers that amount exactly.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount.quantize(Decimal("0.01")) if amount.is_finite() else None
