"""bench/routing's calibration of the shipped recipe: the prior strength and value weight
chosen from the online router's replays on the other datasets only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.routing_eval import apgr
from bench.routing_folds import Fold
from bench.routing_online import Neighbours, replay

TARGET = 0.95
ONLINE_WEIGHTS = np.round(np.concatenate([np.linspace(0.0, 0.5, 51), [0.6, 0.8, 1.0, 2.0]]), 3)
PRIOR_STRENGTHS = (50.0, 35.0, 20.0)
"""The prior strengths (answers a model's prior is worth) the calibration chooses among: all
keep one early failure of gpt-4o-mini (catalog 0.74) above the agents' 0.7 floor, which
needs at least 17.5."""


def online_weight(
    fold: Fold, slope: float, strong: int, strength: float, neighbours: Neighbours | None = None
) -> tuple[float, float]:
    """The largest value weight at which the online router (prior worth strength answers,
    nearest outcomes blended in with neighbours) keeps TARGET of strong quality, and that
    router's APGR over its weights."""
    rep = replay(
        fold.difficulty, fold.test.quality, fold.prior, fold.estimated_cost,
        ONLINE_WEIGHTS, slope=slope, prior_strength=strength, vectors=fold.vectors,
        neighbours=neighbours,
    )  # fmt: skip
    q, c = fold.test.quality, fold.test.cost
    costs, accs = rep.sweep.points(q, c)
    target = TARGET * float(q[:, strong].mean())
    ok = [float(w) for w, a in zip(ONLINE_WEIGHTS, accs, strict=True) if a >= target]
    cheap = int(np.argmin(c.sum(0)))
    ends = [(float(c[:, m].sum()), float(q[:, m].mean())) for m in (cheap, strong)]
    return (max(ok) if ok else 0.0), apgr(costs, accs, ends[0], ends[1])


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The shipped recipe's calibration: prior strength and value weight."""

    strength: float
    weight: float


def calibrated(
    found: dict[tuple[str, str, float], tuple[float, float]], keys: Sequence[tuple[str, str]]
) -> Recipe:
    """The recipe calibrated on the datasets keys: the prior strength with the best mean
    APGR of the online router over them (ties: the stronger prior), then the median of their
    largest weights keeping TARGET at that strength."""

    def score(strength: float) -> float:
        return float(np.mean([found[(*k, strength)][1] for k in keys]))

    strength = max(PRIOR_STRENGTHS, key=lambda s: (round(score(s), 6), s))
    return Recipe(
        strength=strength, weight=float(np.median([found[(*k, strength)][0] for k in keys]))
    )
