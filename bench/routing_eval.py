"""Cost/quality arithmetic of routing over any number of models (pure numpy, no I/O).

A router's operating points come from sweeping its value weight: at each weight every
prompt goes to one model, and the point is (total cost, mean quality). The curve is the
best quality reachable at each cost (an upper envelope of the points, since a deployment can
pick any of them).

- The curve is the upper concave hull of the points: a deployment may also mix two
  operating points at random, as random routing mixes always-cheapest and always-strong.
- APGR (average performance gap recovered): the curve's quality gain over always-cheapest,
  as a share of always-strong's gain, averaged over costs evenly spaced from always-cheapest
  to always-strong. Random routing between the two (a fixed share of random prompts to the
  strong model) recovers the gap linearly in cost, so it scores 0.5, the oracle near 1 or
  above. With two models this is RouteLLM's APGR (cost is linear in the strong-call share).
- The bootstrap interval resamples the test prompts (the router's choices stay fixed).
- Best accuracy at <= 20% of always-strong's cost; the lowest cost share that reaches 95% of
  always-strong's quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID = 101
"""Costs at which the curve is read for APGR."""


@dataclass(frozen=True, kw_only=True)
class Sweep:
    """A router's choices at each value weight: chosen[w, i] is the model of prompt i."""

    weights: np.ndarray
    chosen: np.ndarray

    def points(self, quality: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cost sum, mean quality) per weight."""
        rows = np.arange(quality.shape[0])
        q = quality[rows[None, :], self.chosen]
        c = cost[rows[None, :], self.chosen]
        return c.sum(1), q.mean(1)


def value_choices(
    chance: np.ndarray, cost: np.ndarray, weights: Sequence[float] | np.ndarray, floor: float = 0.0
) -> Sweep:
    """Per weight, each prompt's model by router.routing.policy's value rule (floor and
    shortfall aside when floor is 0): argmax chance - weight * cost / dearest cost."""
    relative = cost / np.maximum(cost.max(1, keepdims=True), 1)
    w = np.asarray(weights, dtype=np.float64)
    utility = chance[None, :, :] - w[:, None, None] * relative[None, :, :]
    if floor > 0:
        utility = np.where(chance[None] >= floor, utility, utility - 10.0)
    return Sweep(weights=w, chosen=np.argmax(utility, axis=2))


def weight_grid(chance: np.ndarray, cost: np.ndarray, size: int = 80) -> np.ndarray:
    """Value weights spanning every switch between models, from 0 to 'always cheapest'."""
    relative = cost / np.maximum(cost.max(1, keepdims=True), 1)
    cheapest = relative.min(1, keepdims=True)
    gaps = (chance - chance.min(1, keepdims=True)) / np.maximum(relative - cheapest, 1e-9)
    finite = gaps[(relative > cheapest + 1e-12)]
    top = float(np.quantile(finite, 0.999)) * 1.5 + 1e-6 if finite.size else 1.0
    inner = np.quantile(finite, np.linspace(0.0, 1.0, size)) if finite.size else np.array([])
    return np.unique(np.concatenate([[0.0], inner, [top]]))


def envelope(costs: np.ndarray, accs: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Best accuracy reachable at each cost of at: on the upper concave hull of the points
    (a deployment may mix two operating points at random), flat beyond the dearest useful
    point; -inf below the cheapest point."""
    order = np.lexsort((-accs, costs))
    hull: list[tuple[float, float]] = []
    best = -np.inf
    for c, a in zip(costs[order].astype(float), accs[order].astype(float), strict=True):
        if a <= best:
            continue  # dearer and no better than a point already on the hull
        best = a
        while len(hull) >= 2:
            (c1, a1), (c2, a2) = hull[-2], hull[-1]
            if (a2 - a1) * (c - c1) <= (a - a1) * (c2 - c1):  # hull[-1] lies under the chord
                hull.pop()
            else:
                break
        hull.append((c, a))
    xs = np.array([h[0] for h in hull])
    ys = np.array([h[1] for h in hull])
    values = np.interp(at, xs, ys)
    return np.where(at < xs[0] - 1e-9, -np.inf, values)


def apgr(
    costs: np.ndarray, accs: np.ndarray, cheap: tuple[float, float], strong: tuple[float, float]
) -> float:
    """APGR of a set of points (module docstring); cheap and strong are (cost, accuracy)."""
    (c0, a0), (c1, a1) = cheap, strong
    if a1 == a0 or c1 <= c0:
        return float("nan")
    grid = np.linspace(c0, c1, GRID)
    best = envelope(np.append(costs, c0), np.append(accs, a0), grid)
    return float(np.mean((best - a0) / (a1 - a0)))


def apgr_interval(
    sweep: Sweep,
    quality: np.ndarray,
    cost: np.ndarray,
    cheap: int,
    strong: int,
    *,
    draws: int = 200,
    seed: int = 14,
) -> tuple[float, float]:
    """A 95% bootstrap interval of APGR over resampled prompts."""
    rng = np.random.default_rng(seed)
    n = quality.shape[0]
    rows = np.arange(n)
    q = quality[rows[None, :], sweep.chosen]
    c = cost[rows[None, :], sweep.chosen].astype(np.float64)
    values = []
    for _ in range(draws):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        cheap_pt = (float(cost[:, cheap] @ w), float(quality[:, cheap] @ w) / n)
        strong_pt = (float(cost[:, strong] @ w), float(quality[:, strong] @ w) / n)
        value = apgr(c @ w, (q @ w) / n, cheap_pt, strong_pt)
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def accuracy_at_cost(costs: np.ndarray, accs: np.ndarray, budget: float) -> float | None:
    """Best accuracy among points costing at most budget (None when none does)."""
    best = envelope(costs, accs, np.array([budget]))[0]
    return None if best == -np.inf else float(best)


def cost_for_accuracy(costs: np.ndarray, accs: np.ndarray, target: float) -> float | None:
    """Lowest cost among points reaching target accuracy (None when none does)."""
    ok = costs[accs >= target - 1e-12]
    return float(ok.min()) if ok.size else None


def best_pair_mix(quality: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of every fixed random mix of two models (11 shares per pair): their envelope
    is the best a router without per-prompt knowledge can do."""
    acc = quality.mean(0)
    tot = cost.sum(0).astype(np.float64)
    shares = np.linspace(0.0, 1.0, 11)
    cs, qs = [], []
    m = quality.shape[1]
    for i in range(m):
        for j in range(m):
            cs.append((1 - shares) * tot[i] + shares * tot[j])
            qs.append((1 - shares) * acc[i] + shares * acc[j])
    return np.concatenate(cs), np.concatenate(qs)


def oracle_choice(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Per prompt, the cheapest model among those with the prompt's best quality."""
    best = quality.max(1, keepdims=True)
    masked = np.where(quality >= best - 1e-12, cost, np.iinfo(np.int64).max)
    return np.asarray(np.argmin(masked, axis=1))
