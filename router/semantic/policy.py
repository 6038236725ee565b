"""When a cached entry may answer a request: pure decisions over the nearest entries.

The nearest entries all share the request's partition (tenant, task type, instructions and
entities; see request_view), so the only question left is whether they mean the same.

A semantic hit needs two things:
- the best entry is at least the task type's threshold similar (cosine of the embeddings);
- it is unambiguous: the entries that give the best entry's answer are nearer, by at least
  `margin`, than the entries that give any other answer. Each side is scored by the mean
  similarity of its `support` (2) nearest entries, so one stray entry decides less than two
  that agree. A question that sits between two cached answers is a miss, however close it
  is to either. On banking77 this contrast lifts precision from about 93% to 99% at a 0.8
  threshold (bench/levers_semantic prints the trade-off).
Both sides are looked for among the `neighbours` nearest entries; when all of them give the
best entry's answer the region is taken as unambiguous.

A near-duplicate needs the stricter threshold (0.95 by default) and an entry stored within
the window (5 minutes), and no contrast: at that similarity the texts are near-identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_MARGIN = 0.1
SUPPORT = 2
"""Nearest entries of each side whose mean similarity scores it."""


@dataclass(frozen=True, kw_only=True)
class TaskPolicy:
    """How one safe task type uses the semantic cache."""

    threshold: float
    """Lowest cosine similarity of a match."""
    margin: float = DEFAULT_MARGIN
    """How much more similar the match must be than any entry holding another answer."""
    ttl_s: int = 24 * 3600
    """How long an entry of this task type is kept."""
    error_bound: float = 0.01
    """The share of served lookups that may be wrong (router.semantic.calibration)."""
    confidence: float = 0.7
    """How sure the cache must be that the error rate is within error_bound."""


@dataclass(frozen=True, kw_only=True)
class NearDuplicatePolicy:
    """How near-duplicate requests may share an answer."""

    task_types: frozenset[str]
    threshold: float = 0.95
    window_s: int = 300


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One cached entry near a request."""

    entry_id: str
    similarity: float
    answer_key: str
    """Digest of the entry's answer: entries with equal keys give the same answer."""
    created_ms: int
    actions: frozenset[str] = frozenset()
    """The entry question's opposite-intent axes (entities.Entities.actions)."""
    unknown: frozenset[str] = frozenset()
    """The entry question's unknown words (entities.Entities.unknown)."""
    words: tuple[str, ...] = ()
    """The entry question's words (minimal_pairs.words; empty: not compared)."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The entry that may answer, or None, and why (for the result's reason and logs)."""

    entry: Candidate | None
    reason: str


def policies(
    thresholds: Mapping[str, float],
    margins: Mapping[str, float],
    ttl_s: Mapping[str, int],
    default_ttl_s: int,
    error_bounds: Mapping[str, float] | None = None,
    default_error_bound: float = 0.01,
    confidence: float = 0.7,
) -> dict[str, TaskPolicy]:
    """The policy of each safe task type (the keys of thresholds); no other type is safe."""
    bounds = error_bounds or {}
    return {
        task: TaskPolicy(
            threshold=threshold,
            margin=margins.get(task, DEFAULT_MARGIN),
            ttl_s=ttl_s.get(task, default_ttl_s),
            error_bound=bounds.get(task, default_error_bound),
            confidence=confidence,
        )
        for task, threshold in thresholds.items()
    }


def decide(candidates: Sequence[Candidate], policy: TaskPolicy) -> Decision:
    """The entry that answers a semantic lookup, if one clearly does."""
    if not candidates:
        return Decision(entry=None, reason="no cached entry with these entities")
    ranked = sorted(candidates, key=lambda c: (-c.similarity, c.entry_id))
    best = ranked[0]
    if best.similarity < policy.threshold:
        return Decision(
            entry=None,
            reason=f"best similarity {best.similarity:.3f} below {policy.threshold:.3f}",
        )
    agree = [c.similarity for c in ranked if c.answer_key == best.answer_key][:SUPPORT]
    other = [c.similarity for c in ranked if c.answer_key != best.answer_key][:SUPPORT]
    if other:
        support, opposition = sum(agree) / len(agree), sum(other) / len(other)
        if support - opposition < policy.margin:
            return Decision(
                entry=None,
                reason=(
                    f"ambiguous: {support:.3f} for this answer against {opposition:.3f} "
                    f"for another (margin {policy.margin:.3f})"
                ),
            )
    return Decision(entry=best, reason=f"similarity {best.similarity:.3f}")


def decide_near_duplicate(
    candidates: Sequence[Candidate], policy: NearDuplicatePolicy, now_ms: int
) -> Decision:
    """The entry a near-duplicate request may take: recent enough and similar enough."""
    since_ms = now_ms - policy.window_s * 1000
    recent = [c for c in candidates if since_ms <= c.created_ms <= now_ms]
    if not recent:
        return Decision(entry=None, reason=f"no entry in the last {policy.window_s} s")
    best = max(recent, key=lambda c: (c.similarity, c.created_ms))
    if best.similarity < policy.threshold:
        return Decision(
            entry=None,
            reason=f"best similarity {best.similarity:.3f} below {policy.threshold:.3f}",
        )
    return Decision(entry=best, reason=f"near-duplicate, similarity {best.similarity:.3f}")
