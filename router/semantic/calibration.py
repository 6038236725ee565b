"""The error bound: whether a lookup's best entry may serve, from what the cache has seen.

Instead of a fixed similarity threshold the operator sets the error rate they accept per
task type (1% by default). Every lookup gets a confidence score from its neighbourhood:

    score = (best + support) / 2 - max(opposition, floor) + density * votes

best is the similarity of the nearest entry, support the mean similarity of the (up to) two
nearest entries giving its answer, opposition that of the two nearest giving another answer
(rivals below `floor`, 0.6, do not count), and votes how many of the eight nearest entries
give the best entry's answer at a similarity of at least the floor (at most five): a match
inside a dense cluster of one answer is surer than a lone one. A clear, unambiguous match
scores high; one that sits between two answers, or far from everything, scores low.

The cache learns which scores are safe from verified outcomes (observations): a lookup that
missed and was then answered by a paid call tells whether its best entry's answer would have
been right (the answers agree or not); validators, explicit feedback and shadow checks say
the same of served hits. The error bound is on the lookups served, so the learned threshold
is the lowest score t such that the expected error of the tenant and task type's recent
lookups scoring t or more (its traffic, served or not) is within the bound at `confidence`:
each lookup's error is read off a monotone (isotonic) error curve fitted to the
observations, and the upper credible bound is that of a Beta posterior with as many errors,
in proportion, as there are observations at t or above. Why not the tail of the
observations alone: once the cache serves above t, the lookups there are labelled only by
the shadow share (5%) while every miss below t is, so that tail is mostly the band just
below t, and the threshold stuck where it first settled. A lookup scoring below every
observation has no known error and is never served. So a young or sparse cache, with few
observations, serves nothing or only its surest matches; one that has learned serves more.
An entry seen to give a wrong answer at some score never serves at that score or below
again (the per-entry part, as in vCache: each entry's own record can only make it stricter).

Pure: no I/O; the store feeds observations in and asks for decisions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import beta

from router.semantic.policy import SUPPORT, Candidate

OPPOSITION_FLOOR = 0.6
"""Similarity below which an entry with another answer is no rival (and no vote)."""
DENSITY = 0.02
"""Score added per agreeing neighbour (votes)."""
VOTERS, MAX_VOTES = 8, 5


@dataclass(frozen=True, kw_only=True)
class Scored:
    """A lookup's best entry and its confidence score."""

    entry: Candidate
    score: float
    support: float
    opposition: float
    votes: int


def score(candidates: Sequence[Candidate]) -> Scored | None:
    """The best entry of a lookup with its confidence score; None without candidates."""
    if not candidates:
        return None
    ranked = sorted(candidates, key=lambda c: (-c.similarity, c.entry_id))
    best = ranked[0]
    agree = [c.similarity for c in ranked if c.answer_key == best.answer_key]
    other = [c.similarity for c in ranked if c.answer_key != best.answer_key][:SUPPORT]
    support = sum(agree[:SUPPORT]) / len(agree[:SUPPORT])
    opposition = sum(other) / len(other) if other else 0.0
    votes = min(
        MAX_VOTES,
        sum(
            1
            for c in ranked[:VOTERS]
            if c.answer_key == best.answer_key and c.similarity >= OPPOSITION_FLOOR
        ),
    )
    value = (best.similarity + support) / 2 - max(opposition, OPPOSITION_FLOOR)
    return Scored(
        entry=best,
        score=value + DENSITY * votes,
        support=support,
        opposition=opposition,
        votes=votes,
    )


def error_upper_bound(wrong: int, seen: int, confidence: float) -> float:
    """Upper credible bound of an error rate after `wrong` errors in `seen` trials:
    the `confidence` quantile of Beta(wrong + 1, seen - wrong + 1) (a uniform prior)."""
    return float(beta.ppf(confidence, wrong + 1, seen - wrong + 1))


class Calibrator:
    """The observations of one tenant and task type, bounded (oldest forgotten first), the
    scores of its recent lookups (its traffic), and the threshold they allow for an error
    bound (see the module doc)."""

    def __init__(self, max_observations: int = 5000, max_lookups: int = 5000) -> None:
        self._seen: deque[tuple[float, bool]] = deque(maxlen=max_observations)
        self._lookups: deque[float] = deque(maxlen=max_lookups)
        self._thresholds: dict[tuple[float, float], float | None] = {}

    def __len__(self) -> int:
        """Observations held."""
        return len(self._seen)

    def observe(self, score: float, correct: bool) -> None:
        """Fold one verified outcome at this score."""
        self._seen.append((score, correct))
        self._thresholds.clear()

    def lookup(self, score: float) -> None:
        """Count one lookup that the threshold decides, served or not, at this score (the
        next observation refits: traffic shifts slowly, and a fit per lookup would cost)."""
        self._lookups.append(score)

    def at_or_above(self, score: float) -> tuple[int, int]:
        """(wrong, seen) among observations scoring at least score."""
        seen = [correct for value, correct in self._seen if value >= score]
        return len(seen) - sum(seen), len(seen)

    def threshold(self, error_bound: float, confidence: float) -> float | None:
        """The lowest score at or above which the expected error of the lookups served is
        within error_bound at this confidence; None when no score's is."""
        key = (error_bound, confidence)
        if key not in self._thresholds:
            self._thresholds[key] = self._fit(error_bound, confidence)
        return self._thresholds[key]

    def _fit(self, error_bound: float, confidence: float) -> float | None:
        if not self._seen:
            return None
        data = np.array(sorted(self._seen, key=lambda o: -o[0]), dtype=np.float64)
        scores = data[:, 0]
        error = falling(1.0 - data[:, 1])  # per observation, never lower at a lower score
        traffic = np.array(sorted(self._lookups or scores, reverse=True), dtype=np.float64)
        traffic = traffic[traffic >= scores[-1]]  # below every observation: no error known
        if not len(traffic):
            return None
        # a lookup's error is that of the highest-scoring observation at or below it: never
        # lower than at its own score, as the error falls with the score
        at = np.searchsorted(-scores, -traffic, side="left")
        served = np.arange(1, len(traffic) + 1)
        expected = np.cumsum(error[at]) / served
        labelled = np.searchsorted(-scores, -traffic, side="right")  # at or above each
        errors = expected * labelled
        within = beta.cdf(error_bound, errors + 1, labelled - errors + 1) >= confidence
        if not within.any():
            return None
        return float(traffic[int(np.nonzero(within)[0].max())])


def falling(wrong: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The monotone (isotonic) error rate of observations sorted by falling score: the
    closest non-decreasing sequence to wrong (1.0 for wrong, 0.0 for right) in squared
    error, by pooling adjacent violators."""
    means: list[float] = []
    sizes: list[int] = []
    for value in wrong.tolist():
        means.append(value)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            size = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / size
            sizes[-2] = size
            means.pop()
            sizes.pop()
    return np.repeat(np.array(means, dtype=np.float64), sizes)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """Whether a scored lookup may be served, and why."""

    serve: bool
    reason: str


def judge(
    scored: Scored,
    calibrator: Calibrator | None,
    *,
    error_bound: float,
    confidence: float,
    entry_wrong_at: float | None,
    min_similarity: float,
) -> Verdict:
    """Serve when the score reaches the threshold the observations allow for error_bound.

    entry_wrong_at: the highest score at which the best entry was seen to be wrong, if ever.
    """
    best = scored.entry.similarity
    if best < min_similarity:
        return Verdict(serve=False, reason=f"similarity {best:.3f} below {min_similarity:.3f}")
    if entry_wrong_at is not None and scored.score <= entry_wrong_at:
        return Verdict(
            serve=False,
            reason=f"entry was wrong at score {entry_wrong_at:.3f} >= {scored.score:.3f}",
        )
    learned = calibrator.threshold(error_bound, confidence) if calibrator is not None else None
    if learned is None:
        seen = len(calibrator) if calibrator is not None else 0
        return Verdict(
            serve=False, reason=f"{seen} observations do not yet bound the error by {error_bound}"
        )
    figures = f"score {scored.score:.3f} against learned threshold {learned:.3f}"
    if scored.score < learned:
        return Verdict(serve=False, reason=f"{figures} (error bound {error_bound})")
    return Verdict(serve=True, reason=f"{figures} (error bound {error_bound})")
