"""Reusable output validators: each returns the problems it finds, empty when valid."""

from __future__ import annotations

from agents.spec import Inputs, Output, Validator


def max_length(field: str, limit: int) -> Validator:
    """output[field] is a non-empty string of at most limit characters."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        value = output.get(field)
        if not isinstance(value, str) or not value.strip():
            return [f"{field} is missing"]
        if len(value) > limit:
            return [f"{field} is {len(value)} characters, over the limit of {limit}"]
        return []

    return check


def positive_number(field: str) -> Validator:
    """output[field] is a number above zero."""

    def check(output: Output, _inputs: Inputs) -> list[str]:
        value = output.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return [f"{field} must be a positive number, got {value!r}"]
        return []

    return check
