"""bench/levers_semantic: the semantic cache's precision, hit rate and entity traps.

Protocol, on two labelled sets of real customer questions (samples in bench/data, see its
README; `--derive` re-cuts them from ../shared/data):
- banking77: paraphrases of 77 intents. bitext: 27 intents whose questions carry order ids,
  amounts, invoice ids, names, cities and plans ("cancel order 113542617735902" and "cancel
  order 732201349959" are the same intent but must never share an answer).
- A fixed shuffle samples each intent's questions (60 of banking77's, 40 of bitext's) and
  splits them: 60% seed the cache (each stored through SemanticCache.put with its intent's
  answer, the entity included for bitext), 20% tune the thresholds, 20% are reported.
  Nothing tuned sees the reported part.
- Tuning picks, on the tune split, the threshold and margin with the highest hit rate at
  precision >= 99% and no wrong entity hit. The reported figures come from a second cache
  built with those values (it rebuilds its index from Redis, as a new replica does), each
  reported question going through SemanticCache.get on a real redis-server.
- A hit is correct when the cached answer is the question's own intent's (and, on bitext,
  for the same labelled entity). precision = correct hits / hits; hit rate = hits / questions;
  entity_wrong_hits = hits whose labelled entity differs from the question's.

Run: `.venv/bin/python -m bench.levers_semantic [--quick]`. Writes bench/results/semantic.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.report import table, write
from bus.embedded import EmbeddedRedis
from bus.messages import ChatMessage, Lever, LlmRequest, LlmResult, Status
from bus.settings import Settings
from router.semantic.embedder import OnnxMiniLmEmbedder
from router.semantic.policy import (
    Candidate,
    NearDuplicatePolicy,
    TaskPolicy,
    decide,
    decide_near_duplicate,
)
from router.semantic.protocol import Vectors
from router.semantic.store import SemanticCache

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASK = "seller_chat"
SYSTEM = "You answer customers' questions for an online shop and its bank."
PER_INTENT = {"banking77": 60, "bitext": 40}
"""Questions sampled per intent (24 with --quick). The sample files hold 60 per intent."""
SAMPLED = 60
SEED_SHARE, TUNE_SHARE = 0.6, 0.2
THRESHOLDS = [round(0.6 + 0.025 * i, 3) for i in range(15)]
MARGINS = [0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2]
TARGET_PRECISION = 0.99


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


def request(q: Question, n: int) -> LlmRequest:
    """The request a question arrives as; each set is its own tenant."""
    return LlmRequest(
        id=f"{q.set}-{n}",
        tenant=q.set,
        agent="support",
        task_type=TASK,
        messages=[
            ChatMessage(role="system", content=SYSTEM),
            ChatMessage(role="user", content=q.text),
        ],
    )


def answered(req: LlmRequest, q: Question) -> LlmResult:
    """The paid answer a seeded question got."""
    return LlmResult(
        request_id=req.id, tenant=req.tenant, agent=req.agent, status=Status.OK,
        content=q.answer, lever=Lever.ROUTED, cost_micro_usd=150, baseline_micro_usd=2500,
    )  # fmt: skip


def sweep(
    cands: list[tuple[Question, list[Candidate]]], answers: dict[str, str]
) -> dict[tuple[float, float], Tally]:
    """Tallies of every (threshold, margin) from precomputed candidates."""
    tallies = {(t, m): Tally() for t in THRESHOLDS for m in MARGINS}
    for (t, m), tally in tallies.items():
        policy = TaskPolicy(threshold=t, margin=m)
        for q, found in cands:
            entry = decide(found, policy).entry
            tally.add(q, answers[entry.entry_id] if entry else None)
    return tallies


def choose(tallies: dict[tuple[float, float], Tally]) -> tuple[float, float]:
    """The most hits at the target precision with no wrong entity hit (ties: stricter)."""
    ok = [
        (tally.hits, t, m)
        for (t, m), tally in tallies.items()
        if tally.hits and tally.correct / tally.hits >= TARGET_PRECISION and not tally.entity_wrong
    ]
    if not ok:
        return max(THRESHOLDS), max(MARGINS)
    _hits, t, m = max(ok, key=lambda x: (x[0], x[1], x[2]))
    return t, m


def _cache(redis: aioredis.Redis, embedder: MemoEmbedder, t: float, m: float) -> SemanticCache:
    config = Settings().semantic
    return SemanticCache(
        redis,
        embedder,
        policies={TASK: TaskPolicy(threshold=t, margin=m)},
        near_duplicates=NearDuplicatePolicy(task_types=frozenset({TASK})),
        neighbours=config.neighbours,
        max_entries=100_000,
        log_max_entries=100_000,
        exact_below=config.exact_below,
    )


async def measure(per_intent: dict[str, int]) -> dict[str, Any]:
    """Seed, tune and report on a fresh redis-server; returns every figure."""
    sets = load(per_intent)
    server = EmbeddedRedis()
    await server.start()
    redis = aioredis.Redis.from_url(server.url)
    try:
        started = time.perf_counter()
        embedder = MemoEmbedder(OnnxMiniLmEmbedder(threads=1))
        load_s = time.perf_counter() - started
        texts = [q.text for qs in sets.values() for q in qs]
        started = time.perf_counter()
        embedder.embed(texts)
        embed_ms = (time.perf_counter() - started) * 1000 / len(texts)

        seeder = _cache(redis, embedder, 1.0, 0.0)
        answers: dict[str, str] = {}
        parts = {name: split(qs) for name, qs in sets.items()}
        for seed, _tune, _report in parts.values():
            for n, q in enumerate(seed):
                req = request(q, n)
                await seeder.put(req, answered(req, q))
                answers[req.id] = q.answer
        tune = [(q, await seeder.candidates(request(q, 10**6 + n)))
                for _s, qs, _r in parts.values() for n, q in enumerate(qs)]  # fmt: skip
        report = [(q, await seeder.candidates(request(q, 2 * 10**6 + n)))
                  for _s, _t, qs in parts.values() for n, q in enumerate(qs)]  # fmt: skip
        t, m = choose(sweep(tune, answers))

        replica = _cache(redis, embedder, t, m)  # a new replica: its index comes from Redis
        await replica.start()
        tallies = {name: Tally() for name in parts}
        lookups_ms: list[float] = []
        for n, (q, _found) in enumerate(report):
            started = time.perf_counter()
            hit = await replica.get(request(q, 3 * 10**6 + n))
            lookups_ms.append((time.perf_counter() - started) * 1000)
            tallies[q.set].add(q, hit.content if hit is not None else None)
    finally:
        await redis.aclose()
        await server.stop()

    overall = Tally()
    for tally in tallies.values():
        for key in ("questions", "hits", "correct", "entity_wrong"):
            setattr(overall, key, getattr(overall, key) + getattr(tally, key))
    config = Settings().semantic
    default_t, default_m = config.thresholds[TASK], config.margins.get(TASK, 0.1)
    curve = sweep(report, answers)
    near = Tally()
    near_policy = NearDuplicatePolicy(task_types=frozenset({TASK}))
    now_ms = int(time.time() * 1000)
    for q, found in report:
        entry = decide_near_duplicate(found, near_policy, now_ms).entry
        near.add(q, answers[entry.entry_id] if entry else None)
    traps = _traps(parts["bitext"])
    result = overall.figures()
    return {
        "semantic_precision": result["precision"],
        "semantic_hit_rate": result["hit_rate"],
        "entity_wrong_hits": result["entity_wrong_hits"],
        "tuned": {"task_type": TASK, "threshold": t, "margin": m, "on": "tune split"},
        "defaults": {"threshold": default_t, "margin": default_m,
                     **curve[(default_t, default_m)].figures()},  # fmt: skip
        "report_split": {"all": result, **{k: v.figures() for k, v in tallies.items()}},
        "entity_trap_questions": traps,
        "near_duplicate_0.95": near.figures(),
        "trade_off": [
            {"threshold": t_, "margin": m_, **curve[(t_, m_)].figures()}
            for t_ in (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
            for m_ in (0.0, 0.05, 0.1, 0.15)
        ],
        "sample": {"per_intent": per_intent, "seed": sum(len(p[0]) for p in parts.values()),
                   "tune": len(tune), "report": len(report)},  # fmt: skip
        "model": {"name": embedder.name, "load_s": round(load_s, 2),
                  "embed_ms_per_text": round(embed_ms, 2),
                  "lookup_ms_p50_excl_embedding": round(statistics.median(lookups_ms), 3)},
    }  # fmt: skip


def _traps(part: tuple[list[Question], list[Question], list[Question]]) -> int:
    """Reported bitext questions whose intent has seeds with another entity value."""
    seed, _tune, report = part
    seen: dict[str, set[str]] = defaultdict(set)
    for q in seed:
        seen[q.intent].add(q.entity)
    return sum(1 for q in report if q.entity and seen[q.intent] - {q.entity})


def semantic_figures(quick: bool = False) -> dict[str, Any]:
    """Every figure of this benchmark (bench.levers reads the top-level keys)."""
    per_intent = dict.fromkeys(PER_INTENT, 24) if quick else PER_INTENT
    return asyncio.run(measure(per_intent))


def render(f: dict[str, Any]) -> str:
    """The printed table."""
    rows = [
        ("precision (report split)", f"{f['semantic_precision']}"),
        ("hit rate (report split)", f"{f['semantic_hit_rate']}"),
        ("entity wrong hits", f"{f['entity_wrong_hits']} of {f['entity_trap_questions']} traps"),
        ("tuned threshold / margin", f"{f['tuned']['threshold']} / {f['tuned']['margin']}"),
    ]
    for name in ("banking77", "bitext"):
        s = f["report_split"][name]
        rows.append((f"  {name}", f"precision {s['precision']}, hit rate {s['hit_rate']}, "
                     f"{s['hits']}/{s['questions']} hits"))  # fmt: skip
    d = f["defaults"]
    rows.append(("Settings defaults", f"{d['threshold']}/{d['margin']}: precision "
                 f"{d['precision']}, hit rate {d['hit_rate']}"))  # fmt: skip
    n = f["near_duplicate_0.95"]
    rows.append(("near-duplicate 0.95", f"precision {n['precision']}, hit rate {n['hit_rate']}"))
    rows += [(k, str(v)) for k, v in f["model"].items()]
    rows.append(("trade-off (threshold, margin)", "precision / hit rate / entity wrong"))
    rows += [
        (f"  {r['threshold']:.2f}, {r['margin']:.2f}",
         f"{r['precision']} / {r['hit_rate']} / {r['entity_wrong_hits']}")
        for r in f["trade_off"]
    ]  # fmt: skip
    return table(rows, "semantic cache (bench/levers_semantic)")


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


def main() -> None:
    """Run, print the table, write bench/results/semantic.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 questions per intent")
    parser.add_argument("--derive", action="store_true", help="re-cut the samples first")
    args = parser.parse_args()
    if args.derive:
        derive()
    started = time.perf_counter()
    figures = semantic_figures(quick=args.quick)
    figures["run_s"] = round(time.perf_counter() - started, 1)
    print(render(figures))
    print(f"wrote {write('semantic', figures)} in {figures['run_s']} s")


if __name__ == "__main__":
    main()
