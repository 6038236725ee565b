"""Exponentially weighted moving averages: the newest value weighs alpha, the past the rest."""

from __future__ import annotations


def ewma(previous: float | None, value: float, alpha: float) -> float:
    """The average after one more value; the first value is the average."""
    if previous is None:
        return value
    return alpha * value + (1 - alpha) * previous
