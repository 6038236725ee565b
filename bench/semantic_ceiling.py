"""The ceiling of the semantic cache's score: how many lookups any one threshold could serve.

The error bound learns, from verified outcomes, a threshold on each lookup's confidence score
(router.semantic.calibration). Whatever it learns, it cannot do better than the single best
threshold chosen with the labels in hand: sort a run's lookups by score and serve the longest
prefix whose precision is at least 1 - bound. That figure, measured on the same lookups as the
cache's own decisions, says whether a shortfall is the calibrator's (it is cautious) or the
score's (no threshold reaches the target). It is a diagnostic only: nothing is tuned on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.semantic.calibration import score
from router.semantic.policy import Candidate


@dataclass(kw_only=True)
class Ceiling:
    """Each queried lookup's score and whether its best entry's answer was right."""

    min_similarity: float
    """The task type's floor on the best entry's similarity (the cache serves nothing below)."""
    scored: list[tuple[float, bool]] = field(default_factory=list)
    questions: int = 0

    def add(self, candidates: list[Candidate], right_answer_key: str) -> None:
        """Record one lookup: its candidates as the cache saw them, and the answer it needed."""
        self.questions += 1
        best = score(candidates)
        if best is not None and best.entry.similarity >= self.min_similarity:
            self.scored.append((best.score, best.entry.answer_key == right_answer_key))

    def figures(self, bound: float) -> dict[str, Any]:
        """The best hit rate at precision >= 1 - bound, and the threshold that gives it."""
        ranked = sorted(self.scored, key=lambda s: -s[0])
        best_hits, threshold, correct = 0, None, 0
        for n, (value, right) in enumerate(ranked, start=1):
            correct += right
            if correct / n >= 1 - bound:
                best_hits, threshold = n, value
        return {
            "hit_rate": round(best_hits / self.questions, 4) if self.questions else 0.0,
            "hits": best_hits,
            "score_threshold": round(threshold, 4) if threshold is not None else None,
            "note": "best single threshold on the shipped score, chosen with the labels "
            "(a diagnostic, not reachable without them)",
        }
