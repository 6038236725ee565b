"""The labelled questions bench/levers_semantic asks: banking77 and bitext samples, their
splits, tallies of hits, and an embedder that embeds each text once.

The samples are in bench/data (see its README); `python -m bench.levers_semantic --derive`
re-cuts them from ../shared/data with a fixed seed.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.semantic.embedder import OnnxMiniLmEmbedder
from router.semantic.protocol import Vectors

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PER_INTENT = {"banking77": 60, "bitext": 40}
"""Questions sampled per intent (24 with --quick). The sample files hold 60 per intent."""
SAMPLED = 60
SEED_SHARE, TUNE_SHARE = 0.6, 0.2


@dataclass(frozen=True, kw_only=True)
class Question:
    """One labelled question of a set."""

    set: str
    text: str
    intent: str
    entity: str
    """The labelled entity ("order_id=00123842"), or "" when it names none."""

    @property
    def answer(self) -> str:
        """The answer a support bot gives: one per intent, naming the entity."""
        return f"answer for {self.intent}" + (f" [{self.entity}]" if self.entity else "")


@dataclass(kw_only=True)
class Tally:
    """Hits and their correctness over a set of questions."""

    questions: int = 0
    hits: int = 0
    correct: int = 0
    entity_wrong: int = 0

    def add(self, question: Question, answer: str | None) -> None:
        """Count one question and the answer the cache gave it (None for a miss)."""
        self.questions += 1
        if answer is None:
            return
        self.hits += 1
        self.correct += answer == question.answer
        given = answer.partition(" [")[2].rstrip("]")
        self.entity_wrong += question.set == "bitext" and given != question.entity

    def figures(self) -> dict[str, Any]:
        """precision, hit rate and counts."""
        return {
            "precision": round(self.correct / self.hits, 4) if self.hits else None,
            "hit_rate": round(self.hits / self.questions, 4) if self.questions else 0.0,
            "hits": self.hits,
            "correct_hits": self.correct,
            "questions": self.questions,
            "entity_wrong_hits": self.entity_wrong,
        }


class MemoEmbedder:
    """The real embedder, remembering vectors so the bench embeds each text once."""

    def __init__(self, inner: OnnxMiniLmEmbedder) -> None:
        self._inner = inner
        self._memo: dict[str, Vectors] = {}
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens

    def token_count(self, text: str) -> int:
        """As the real embedder."""
        return self._inner.token_count(text)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """As the real embedder, one text at a time (fastest on a busy CPU), remembered."""
        for text in texts:
            if text not in self._memo:
                self._memo[text] = self._inner.embed([text])[0]
        return _stack([self._memo[t] for t in texts])


def _stack(rows: list[Vectors]) -> Vectors:
    import numpy as np

    stacked: Vectors = np.stack(rows).astype(np.float32)
    return stacked


def load(per_intent: dict[str, int]) -> dict[str, list[Question]]:
    """The committed samples, at most per_intent questions per intent."""
    sets: dict[str, list[Question]] = {}
    for name in ("banking77", "bitext"):
        with (DATA / f"semantic_{name}.csv").open(newline="", encoding="utf-8") as f:
            rows = [Question(set=name, **row) for row in csv.DictReader(f)]
        kept: dict[str, int] = defaultdict(int)
        sets[name] = []
        for q in rows:
            kept[q.intent] += 1
            if kept[q.intent] <= per_intent[name]:
                sets[name].append(q)
    return sets


def split(questions: list[Question]) -> tuple[list[Question], list[Question], list[Question]]:
    """Per intent, in sample order: 60% seed, 20% tune, 20% report."""
    by_intent: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_intent[q.intent].append(q)
    seed, tune, report = [], [], []
    for group in by_intent.values():
        a = round(len(group) * SEED_SHARE)
        b = a + round(len(group) * TUNE_SHARE)
        seed += group[:a]
        tune += group[a:b]
        report += group[b:]
    return seed, tune, report


def merged(tallies: dict[str, Tally]) -> Tally:
    """One tally of several."""
    overall = Tally()
    for tally in tallies.values():
        for key in ("questions", "hits", "correct", "entity_wrong"):
            setattr(overall, key, getattr(overall, key) + getattr(tally, key))
    return overall


def derive() -> None:
    """Re-cut bench/data/semantic_*.csv from ../shared/data (fixed seed)."""
    rng = random.Random(77)
    with (SHARED / "banking77" / "train.csv").open(newline="", encoding="utf-8") as f:
        banking = [(r["text"], r["category"], "") for r in csv.DictReader(f)]
    name = "bitext_customer_service/Bitext_Sample_Customer_Service_Training_Dataset.csv"
    with (SHARED / name).open(newline="", encoding="utf-8") as f:
        bitext = [
            (r["utterance"], r["intent"],
             f"{r['entity_type']}={r['entity_value'].strip().lstrip('#').lower()}"
             if r["entity_type"] else "")
            for r in csv.DictReader(f)
        ]  # fmt: skip
    for set_name, rows in (("banking77", banking), ("bitext", bitext)):
        by_intent: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row in rows:
            by_intent[row[1]].append(row)
        with (DATA / f"semantic_{set_name}.csv").open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["text", "intent", "entity"])
            for intent in sorted(by_intent):
                group = by_intent[intent]
                rng.shuffle(group)
                out.writerows(group[:SAMPLED])
