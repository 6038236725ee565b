"""bench/routing's nearest-outcomes option: the online router with each model's recorded
outcomes by prompt vector (bench.routing_online.Neighbours), its k and c chosen per
held-out dataset on the other datasets only, as the prior strength and value weight are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.routing_online import Neighbours

GRID = tuple(
    Neighbours(k=k, c=c, power=power)
    for power in (1.0, 8.0)
    for k in (8, 32, 128)
    for c in (4.0, 16.0, 64.0)
)
"""The settings the calibration chooses among (fixed before any held-out figure was read)."""

Key = tuple[str, str]
"""(suite, dataset)."""
Scores = dict[tuple[str, str, Neighbours], tuple[float, float]]
"""Per (suite, dataset, setting): the largest weight keeping the target, and online APGR."""


@dataclass(frozen=True, kw_only=True)
class KnnRecipe:
    """The neighbours setting and value weight calibrated without the held-out dataset."""

    neighbours: Neighbours
    weight: float
    training_apgr: float
    """Mean online APGR over the training datasets at this setting."""


def calibrated_knn(scores: Scores, keys: Sequence[Key]) -> KnnRecipe:
    """The setting with the best mean online APGR over the datasets keys (ties: the first of
    GRID), then the median of their largest weights keeping the target with it."""

    def score(setting: Neighbours) -> float:
        return float(np.mean([scores[(*k, setting)][1] for k in keys]))

    best = max(GRID, key=lambda s: round(score(s), 6))
    return KnnRecipe(
        neighbours=best,
        weight=float(np.median([scores[(*k, best)][0] for k in keys])),
        training_apgr=score(best),
    )


class KnnScores:
    """Every dataset's scores over GRID, per (slope, prior strength), computed once."""

    def __init__(
        self,
        keys: Sequence[Key],
        run: Callable[[Key, float, float, Neighbours], tuple[float, float]],
    ) -> None:
        """run(key, slope, strength, setting): that dataset's (largest weight, APGR)."""
        self._keys = tuple(keys)
        self._run = run
        self._done: dict[tuple[float, float], Scores] = {}

    def at(self, slope: float, strength: float, keys: Sequence[Key]) -> Scores:
        """The scores of keys (computed as needed) at slope and prior strength."""
        scores = self._done.setdefault((slope, strength), {})
        for key in keys:
            for setting in GRID:
                if (*key, setting) not in scores:
                    scores[(*key, setting)] = self._run(key, slope, strength, setting)
        return scores


def as_json(setting: Neighbours) -> Mapping[str, float]:
    """A setting as plain data."""
    return {"k": setting.k, "c": setting.c, "power": setting.power, "memory": setting.memory}
