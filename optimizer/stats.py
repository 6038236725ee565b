"""The statistics of an experiment report, from per-arm sums: means with Student t intervals,
Welch's t test, Wilson intervals and a two-proportion z test, and a delta-method interval
for a ratio (cost per valid output)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sp

ALPHA = 0.05


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A point estimate, its interval and its standard error."""

    value: float
    low: float
    high: float
    se: float
    n: int


def mean_estimate(total: float, total_sq: float, n: int, alpha: float = ALPHA) -> Estimate:
    """Mean of n values from their sum and sum of squares, with a Student t interval."""
    if n == 0:
        return Estimate(value=math.nan, low=math.nan, high=math.nan, se=math.inf, n=0)
    mean = total / n
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.inf
    se = math.sqrt(var / n)
    half = float(sp.t.ppf(1 - alpha / 2, n - 1)) * se if n > 1 else math.inf
    return Estimate(value=mean, low=mean - half, high=mean + half, se=se, n=n)


def wilson(successes: int, n: int, alpha: float = ALPHA) -> Estimate:
    """A proportion with its Wilson score interval."""
    if n == 0:
        return Estimate(value=math.nan, low=0.0, high=1.0, se=math.inf, n=0)
    z = float(sp.norm.ppf(1 - alpha / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    se = math.sqrt(max(p * (1 - p), 1e-12) / n)
    return Estimate(value=p, low=max(centre - half, 0.0), high=min(centre + half, 1.0), se=se, n=n)


def welch_p(a: Estimate, b: Estimate) -> float:
    """Two-sided p-value of Welch's t test that two means differ."""
    if a.n < 2 or b.n < 2:
        return 1.0
    va, vb = a.se**2, b.se**2
    if va + vb == 0:
        return 0.0 if a.value != b.value else 1.0
    t = (a.value - b.value) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va**2 / (a.n - 1) if va else 0) + (vb**2 / (b.n - 1) if vb else 0))
    return float(2 * sp.t.sf(abs(t), df))


def proportions_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z test."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return float(2 * sp.norm.sf(abs(z)))


def ratio_estimate(cost: Estimate, rate: Estimate, alpha: float = ALPHA) -> Estimate:
    """Cost per valid output (mean cost / valid rate), with a delta-method interval."""
    if cost.n == 0 or rate.n == 0 or not rate.value:
        return Estimate(value=math.inf, low=math.inf, high=math.inf, se=math.inf, n=0)
    value = cost.value / rate.value
    rel = (cost.se / cost.value) ** 2 if cost.value else 0.0
    se = abs(value) * math.sqrt(rel + (rate.se / rate.value) ** 2)
    z = float(sp.norm.ppf(1 - alpha / 2))
    return Estimate(value=value, low=value - z * se, high=value + z * se, se=se, n=rate.n)


def z_p(a: Estimate, b: Estimate) -> float:
    """Two-sided p-value that two normal estimates differ."""
    spread = math.sqrt(a.se**2 + b.se**2)
    if not math.isfinite(spread):
        return 1.0
    if spread == 0:
        return 0.0 if a.value != b.value else 1.0
    return float(2 * sp.norm.sf(abs(a.value - b.value) / spread))
