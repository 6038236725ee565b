"""bench/semantic_levers_tune: issue 15's two levers against the shipped score, tune split only.

The dense state's hit rate at the 1% bound is held by the score (docs/semantic-cache.md, "The
ceiling"). Two levers could lift it past a single threshold's ceiling; each replaces the
shipped confidence score (router.semantic.calibration.score) in a real cache stream, and the
shipped calibrator then learns its threshold on it, as in production:

- neighbourhood (vCache-like, per answer rather than per entry: a tune run's 1,131 lookups
  land on 808 distinct entries, 603 of them once, so an entry has no record of its own): the
  shipped score minus BETA * log((wrong + A) / (expected + A)), where wrong counts the
  verified lookups on the best entry's answer (as the best entry or as the right answer of
  another's wrong lookup) and expected sums the tenant's isotonic error curve at their scores;
- reranked: a logistic re-ranker over cheap features of the best entry (similarity, support,
  opposition, votes, margin to the best entry of another answer, word overlap with the
  request, length ratio, the best overlap among entries giving its answer, its answer's share
  of the eight nearest, distinct answers there), fitted on the seed split only (each seed
  looked up against the other seeds, and the seeds streamed into an empty cache).

Each variant runs the tune split's streams (bench.levers_semantic.stream's protocol) on a
clean Redis; the shipped score of every lookup is recorded in the same run, so each variant's
ceiling is set against the shipped score's ceiling on the same lookups (a run's cache state,
hence its ceiling, depends on what it served before). The report split is never read.

Run: `.venv/bin/python -m bench.semantic_levers_tune [--shuffle SEED]` (about 10 minutes).
The score is swapped with unittest.mock.patch for the span of one run: an experiment, so the
cache gets no seam for it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from unittest.mock import patch

import numpy as np
import redis.asyncio as aioredis
from sklearn.linear_model import LogisticRegression

from bench import levers_semantic as bench
from bench import semantic_questions as questions
from bench.semantic_ceiling import Ceiling
from bus.embedded import EmbeddedRedis
from router.semantic import store
from router.semantic.calibration import OPPOSITION_FLOOR, Scored, falling, score
from router.semantic.embedder import OnnxMiniLmEmbedder
from router.semantic.minimal_pairs import words
from router.semantic.policy import Candidate
from router.semantic.request_view import answer_key

FLOOR = 0.75
"""seller_chat's similarity floor (Settings().semantic.thresholds)."""
FEATURES = ("similarity", "support", "opposition", "votes", "margin", "overlap", "length",
            "agree_overlap", "share", "answers")  # fmt: skip
A, BETA = 1.0, 0.05
"""The neighbourhood's prior strength and weight (the best of a small grid on the tune
split's ceiling)."""
Scorer = Callable[[Sequence[Candidate]], Scored | None]


@dataclass(kw_only=True)
class Asking:
    """The question being looked up, for scorers that read more than the candidates."""

    words: tuple[str, ...] = ()
    tenant: str = ""


def _overlap(one: Sequence[str], other: Sequence[str]) -> float:
    a, b = set(one), set(other)
    return len(a & b) / max(1, len(a | b))


def features(asked: Sequence[str], candidates: Sequence[Candidate]) -> dict[str, float] | None:
    """The re-ranker's features of a lookup's best entry; None without candidates."""
    scored = score(candidates)
    if scored is None:
        return None
    best = scored.entry
    ranked = sorted(candidates, key=lambda c: (-c.similarity, c.entry_id))[:8]
    rival = max((c.similarity for c in candidates if c.answer_key != best.answer_key), default=0.0)
    agreeing = [c for c in ranked if c.answer_key == best.answer_key]
    return {
        "similarity": best.similarity,
        "support": scored.support,
        "opposition": scored.opposition,
        "votes": scored.votes,
        "margin": best.similarity - max(rival, OPPOSITION_FLOOR),
        "overlap": _overlap(asked, best.words),
        "length": min(len(asked), len(best.words)) / max(1, len(asked), len(best.words)),
        "agree_overlap": max(_overlap(asked, c.words) for c in agreeing),
        "share": sum(c.similarity for c in agreeing) / sum(c.similarity for c in ranked),
        "answers": len({c.answer_key for c in ranked}),
    }


@dataclass
class Reranker:
    """A logistic model of whether the best entry's answer is right; its logit is the score."""

    asking: Asking
    model: LogisticRegression = field(
        default_factory=lambda: LogisticRegression(C=10, max_iter=5000)
    )

    def fit(self, lookups: list[tuple[dict[str, float], bool]]) -> None:
        """Fit on (features, right) of lookups at or above the similarity floor."""
        kept = [(f, right) for f, right in lookups if f["similarity"] >= FLOOR]
        self.model.fit(np.array([[f[n] for n in FEATURES] for f, _ in kept]), [r for _, r in kept])

    def score(self, candidates: Sequence[Candidate]) -> Scored | None:
        """The shipped Scored with the model's logit as its score."""
        scored, found = score(candidates), features(self.asking.words, candidates)
        if scored is None or found is None:
            return None
        logit = self.model.decision_function(np.array([[found[n] for n in FEATURES]]))[0]
        return replace(scored, score=float(logit))


@dataclass
class Neighbourhood:
    """Each answer's verified record against what the tenant's error curve expected of it."""

    asking: Asking
    expected: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    wrong: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    seen: dict[str, list[tuple[float, bool]]] = field(default_factory=lambda: defaultdict(list))

    def learn(self, tenant: str, scored: Scored, right_key: str) -> None:
        """Fold one verified lookup (its shipped score) into its answers' records."""
        ok = scored.entry.answer_key == right_key
        expected = self._error(tenant, scored.score)
        for key in {scored.entry.answer_key, right_key} if not ok else {right_key}:
            self.expected[tenant, key] += expected
            self.wrong[tenant, key] += not ok
        self.seen[tenant].append((scored.score, ok))

    def _error(self, tenant: str, at: float) -> float:
        ordered = sorted(self.seen[tenant], key=lambda o: -o[0])
        if not ordered:
            return 0.0
        scores = np.array([s for s, _ in ordered])
        error = falling(np.array([0.0 if ok else 1.0 for _, ok in ordered]))
        return float(error[min(int(np.searchsorted(-scores, -at)), len(error) - 1)])

    def score(self, candidates: Sequence[Candidate]) -> Scored | None:
        """The shipped score, lowered where the best entry's answer was wrong more than
        expected, raised where less."""
        scored = score(candidates)
        if scored is None:
            return None
        key = (self.asking.tenant, scored.entry.answer_key)
        ratio = (self.wrong[key] + A) / (self.expected[key] + A)
        return replace(scored, score=scored.score - BETA * math.log(ratio))


async def run(
    cache: store.SemanticCache,
    warm: list[questions.Question],
    queried: list[questions.Question],
    *,
    dense: bool,
    scorer: Scorer,
    asking: Asking,
    hood: Neighbourhood | None,
) -> dict[str, Any]:
    """bench.levers_semantic.stream's protocol, recording both scores' ceilings."""
    mine, shipped = Ceiling(min_similarity=FLOOR), Ceiling(min_similarity=FLOOR)
    tallies = {name: questions.Tally() for name in ("banking77", "bitext")}
    hits = 0
    for n, (q, is_warm) in enumerate([(q, True) for q in warm] + [(q, False) for q in queried]):
        req = bench.request(q, n, label="warm" if is_warm else "tune")
        asking.words, asking.tenant = words(q.text), q.set
        candidates = await cache.candidates(req)
        right = answer_key(bench.answered(req, q))
        if not is_warm:
            for ceiling, scoring in ((mine, scorer), (shipped, score)):
                ceiling.questions += 1
                found = scoring(candidates)
                if found is not None and found.entry.similarity >= FLOOR:
                    ceiling.scored.append((found.score, found.entry.answer_key == right))
        hit = await cache.get(req)
        labelled = hit is None
        if not is_warm:
            tallies[q.set].add(q, hit.content if hit is not None else None)
        if hit is None:
            if dense or is_warm:
                await cache.put(req, bench.answered(req, q))
            else:
                await cache.learn(req, bench.answered(req, q))
        elif not is_warm:
            hits += 1
            if hits % round(1 / bench.SHADOW_RATE) == 0:
                await cache.verify(req.id, hit.content == q.answer, "shadow")
                labelled = True
        known = score(candidates)
        if hood is not None and labelled and known is not None:
            hood.learn(q.set, known, right)
    total = questions.merged(tallies).figures()
    return {
        "precision": total["precision"],
        "hit_rate": total["hit_rate"],
        "by_set": {k: t.figures()["hit_rate"] for k, t in tallies.items()},
        "ceiling": mine.figures(0.01)["hit_rate"],
        "shipped_score_ceiling_same_run": shipped.figures(0.01)["hit_rate"],
    }


async def seed_lookups(
    redis: aioredis.Redis, embedder: questions.MemoEmbedder, seeds: list[questions.Question]
) -> list[tuple[dict[str, float], bool]]:
    """The re-ranker's training lookups, from the seed split only: each seed before it is
    stored into a cache filling from empty, then each seed against all the other seeds."""
    await redis.flushdb()
    cache = bench._cache(redis, embedder)
    out: list[tuple[dict[str, float], bool]] = []
    requests = [bench.request(q, n, label="fit") for n, q in enumerate(seeds)]
    for filling in (True, False):
        for q, req in zip(seeds, requests, strict=True):
            candidates = [c for c in await cache.candidates(req) if c.entry_id != req.id]
            found = features(words(q.text), candidates)
            if found is not None:
                out.append((found, _right(candidates, req, q)))
            if filling:
                await cache.put(req, bench.answered(req, q))
    return out


def _right(candidates: list[Candidate], req: Any, q: questions.Question) -> bool:
    best = score(candidates)
    return best is not None and best.entry.answer_key == answer_key(bench.answered(req, q))


async def measure(shuffle: int | None) -> dict[str, dict[str, Any]]:
    """Every variant's tune-split figures, each state on a clean Redis."""
    parts = {name: questions.split(qs) for name, qs in questions.load(questions.PER_INTENT).items()}
    seeds = [q for p in parts.values() for q in p[0]]
    queried = [q for p in parts.values() for q in p[1]]
    if shuffle is not None:
        random.Random(shuffle).shuffle(queried)
    server = EmbeddedRedis()
    await server.start()
    redis = aioredis.Redis.from_url(server.url)
    embedder = questions.MemoEmbedder(OnnxMiniLmEmbedder(threads=1))
    asking = Asking()
    reranker = Reranker(asking)
    out: dict[str, dict[str, Any]] = {}
    try:
        reranker.fit(await seed_lookups(redis, embedder, seeds))
        for variant in ("shipped", "reranked", "neighbourhood"):
            for state in ("dense", "sparse"):
                await redis.flushdb()
                hood = Neighbourhood(asking) if variant == "neighbourhood" else None
                scorer: Scorer = (
                    score if variant == "shipped"
                    else reranker.score if hood is None else hood.score
                )  # fmt: skip
                warm = bench._first_per_intent(seeds) if state == "sparse" else seeds
                with patch.object(store, "score", scorer):
                    out[f"{variant} {state}"] = figures = await run(
                        bench._cache(redis, embedder), warm, queried,
                        dense=state == "dense", scorer=scorer, asking=asking, hood=hood,
                    )  # fmt: skip
                print(f"{variant} {state}: {figures}", flush=True)
    finally:
        await redis.aclose()
        await server.stop()
    return out


def main() -> None:
    """Run every variant on the tune split and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffle", type=int, help="ask the tune questions in this seed's order")
    asyncio.run(measure(parser.parse_args().shuffle))


if __name__ == "__main__":
    main()
