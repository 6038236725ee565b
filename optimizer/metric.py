"""What decides an experiment: its own module, so that the commands' parsers list the choices
without importing the experiment store (Redis)."""

from __future__ import annotations

import enum


class Metric(enum.StrEnum):
    """What decides an experiment."""

    COST_PER_VALID = "cost_per_valid"
    """Mean cost of a request divided by the share of valid answers: lower wins."""
    QUALITY = "quality"
    """Share of answers that passed their agent's checks: higher wins."""
    LATENCY = "latency"
    """Mean latency of a request: lower wins."""
