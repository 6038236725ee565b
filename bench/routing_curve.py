"""Cost/quality arithmetic of two-model routing, as RouteLLM reports it (pure, no I/O).

A strategy sends some prompts to the strong model and the rest to the weak one; its accuracy
is the share answered correctly by the model each prompt went to, and its cost the sum of
what those calls cost (integer micro-dollars). Random routing at a strong-call share s is
given by its expectation: accuracy w + s(st - w), cost likewise, which is exactly the mean
over every random assignment with that many strong calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

QUALITY_TARGET = 0.95
"""Share of the strong model's accuracy a router must keep (RouteLLM's headline point)."""


@dataclass(frozen=True, kw_only=True)
class Case:
    """One test prompt: what each model got right and what each call would cost."""

    dataset: str
    weak_ok: bool
    strong_ok: bool
    weak_cost: int
    strong_cost: int


@dataclass(frozen=True, kw_only=True)
class Point:
    """One strategy's figures."""

    name: str
    accuracy: float
    cost: int
    """Micro-dollars for all the prompts."""
    strong_share: float

    def as_dict(self, strong_cost: int) -> dict[str, object]:
        """JSON form, with the cost as a share of always-strong."""
        return {
            "name": self.name,
            "accuracy": round(self.accuracy, 4),
            "cost": self.cost,
            "cost_vs_strong": round(self.cost / strong_cost, 4) if strong_cost else None,
            "strong_share": round(self.strong_share, 4),
        }


def routed(name: str, cases: Sequence[Case], strong: Sequence[bool]) -> Point:
    """The figures of sending case i to the strong model when strong[i]."""
    n = len(cases)
    correct = sum(c.strong_ok if s else c.weak_ok for c, s in zip(cases, strong, strict=True))
    cost = sum(c.strong_cost if s else c.weak_cost for c, s in zip(cases, strong, strict=True))
    return Point(name=name, accuracy=correct / n, cost=cost, strong_share=sum(strong) / n)


def random_at(name: str, cases: Sequence[Case], strong_calls: int) -> Point:
    """Expected figures of random routing with exactly strong_calls strong calls."""
    n = len(cases)
    share = Fraction(strong_calls, n)
    weak = routed("", cases, [False] * n)
    full = routed("", cases, [True] * n)
    accuracy = weak.accuracy + float(share) * (full.accuracy - weak.accuracy)
    cost = weak.cost + share * (full.cost - weak.cost)
    return Point(name=name, accuracy=accuracy, cost=round(cost), strong_share=float(share))


def by_threshold(scores: Sequence[float], threshold: float) -> list[bool]:
    """Strong where the score is at or above the threshold."""
    return [s >= threshold for s in scores]


def fewest_strong_calls(cases: Sequence[Case], scores: Sequence[float], target: float) -> int:
    """Strong calls (highest scores first) needed for accuracy >= target; n if never."""
    n = len(cases)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    correct = sum(c.weak_ok for c in cases)
    needed = math.ceil(target * n - 1e-9)
    if correct >= needed:
        return 0
    for k, i in enumerate(order, start=1):
        correct += int(cases[i].strong_ok) - int(cases[i].weak_ok)
        if correct >= needed:
            return k
    return n


def threshold_for(scores: Sequence[float], strong_calls: int) -> float:
    """A score threshold that sends the strong_calls highest scores to the strong model."""
    if strong_calls <= 0:
        return math.inf
    ranked = sorted(scores, reverse=True)
    return ranked[min(strong_calls, len(ranked)) - 1]


def random_strong_calls(cases: Sequence[Case], target: float) -> int:
    """Strong calls random routing needs, in expectation, for accuracy >= target."""
    n = len(cases)
    weak = sum(c.weak_ok for c in cases) / n
    strong = sum(c.strong_ok for c in cases) / n
    if weak >= target:
        return 0
    if strong <= weak:
        return n
    return min(n, math.ceil((target - weak) / (strong - weak) * n - 1e-9))


def apgr(cases: Sequence[Case], scores: Sequence[float]) -> float:
    """Average performance gap recovered over all strong-call shares (random: 0.5)."""
    n = len(cases)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    weak = sum(c.weak_ok for c in cases)
    strong = sum(c.strong_ok for c in cases)
    if strong == weak:
        return 0.0
    correct, total = weak, 0.0
    for k in range(n + 1):
        if k:
            i = order[k - 1]
            correct += int(cases[i].strong_ok) - int(cases[i].weak_ok)
        total += (correct - weak) / (strong - weak)
    return total / (n + 1)
