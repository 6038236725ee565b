"""Complexity tiers: a 0..1 complexity score becomes simple, moderate or complex.

The boundaries are per task type, from configuration; the seeds are 0.3 and 0.7. A score
below ``simple_below`` is simple, a score at or above ``complex_from`` is complex, and
anything between (0.3 itself included) is moderate. Each tier asks for a minimum quality
of the model that serves it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

SEED_SIMPLE_BELOW = 0.3
SEED_COMPLEX_FROM = 0.7


class ComplexityTier(enum.StrEnum):
    """How demanding a request is, from its complexity score."""

    SIMPLE = "simple"
    MODERATE = "moderate"
    COMPLEX = "complex"


@dataclass(frozen=True, kw_only=True)
class TierThresholds:
    """Tier boundaries of one task type: simple below the first, complex from the second."""

    simple_below: float = SEED_SIMPLE_BELOW
    complex_from: float = SEED_COMPLEX_FROM

    def __post_init__(self) -> None:
        if not 0.0 <= self.simple_below <= self.complex_from <= 1.0:
            raise ValueError(
                "tier thresholds need 0 <= simple_below <= complex_from <= 1, got "
                f"{self.simple_below} and {self.complex_from}"
            )

    def classify(self, score: float) -> ComplexityTier:
        """The tier of a score under these thresholds."""
        if score >= self.complex_from:
            return ComplexityTier.COMPLEX
        if score >= self.simple_below:
            return ComplexityTier.MODERATE
        return ComplexityTier.SIMPLE


@dataclass(frozen=True, kw_only=True)
class TierQuality:
    """The lowest model quality estimate each tier accepts."""

    simple: float = 0.6
    moderate: float = 0.75
    complex: float = 0.85

    def __post_init__(self) -> None:
        if not all(0.0 <= q <= 1.0 for q in (self.simple, self.moderate, self.complex)):
            raise ValueError("tier quality requirements must lie in 0..1")

    def of(self, tier: ComplexityTier) -> float:
        """The quality a tier asks for."""
        return {
            ComplexityTier.SIMPLE: self.simple,
            ComplexityTier.MODERATE: self.moderate,
            ComplexityTier.COMPLEX: self.complex,
        }[tier]


@dataclass(frozen=True, kw_only=True)
class Tiering:
    """Tier thresholds by task type, with a default for task types not listed."""

    default: TierThresholds = field(default_factory=TierThresholds)
    by_task: Mapping[str, TierThresholds] = field(default_factory=lambda: MappingProxyType({}))

    def thresholds(self, task_type: str) -> TierThresholds:
        """The thresholds that apply to a task type."""
        return self.by_task.get(task_type, self.default)

    def classify(self, score: float, task_type: str) -> ComplexityTier:
        """The tier of a score for a task type."""
        return self.thresholds(task_type).classify(score)
