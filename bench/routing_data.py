"""The public per-prompt, per-model outcome data bench/routing measures on, as suites.

A suite is one set of models that all answered the same prompts: per prompt, the dataset it
comes from (the unit of leave-one-dataset-out), the quality of each model's answer (0..1:
correct or not, or a judge's grade) and what each call cost (integer micro-dollars).

- routellm: lm-sys/RouteLLM @0b64fdaf routellm/evals/ (Apache-2.0, via ../shared/data/routellm):
  gpt-4-1106-preview (priced as gpt-4o) and Mixtral-8x7B-Instruct (priced as gpt-4o-mini)
  on GSM8K, MMLU (57 subjects, grouped as MMLU groups them: STEM, humanities, social
  sciences, other) and MT-Bench first turns (GPT-4 judge's 1-10 grade, divided by 10).
- mmlupro: bench/data/routing_mmlupro.csv (bench.routing_mmlupro): ten models on MMLU-Pro
  questions from its four sources (original MMLU, STEM websites, TheoremQA, SciBench).
- A file of your own (``load_wide``): one row per prompt, columns ``prompt``, ``dataset``
  (or ``eval_name``), then per model ``<model>`` (quality 0..1) and ``<model>|total_cost``
  (USD). Reviewers can measure the router on data this repository never saw.

Tokens come from router.tokens: the prompt as one user message in, the logged answer out
(MMLU has no logged answers: its answer is one letter).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from bench.routing_mmlupro import DATA as MMLUPRO_DATA
from bench.routing_mmlupro import PRICES as MMLUPRO_PRICES
from bus.messages import Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.routing.training import STRONG, WEAK
from router.tokens import count_messages_tokens, count_text_tokens

ROUTELLM_DATA = next(
    (p / "shared" / "data" / "routellm" for p in Path(__file__).resolve().parents
     if (p / "shared" / "data" / "routellm").is_dir()),
    Path("../shared/data/routellm"),
)  # fmt: skip
"""../shared/data/routellm, from the nearest directory above this one that has it."""
ROUTELLM_PRICED_AS = {STRONG: "gpt-4o", WEAK: "gpt-4o-mini"}
MMLU_GROUPS = {
    "stem": (
        "abstract_algebra anatomy astronomy college_biology college_chemistry "
        "college_computer_science college_mathematics college_physics computer_security "
        "conceptual_physics electrical_engineering elementary_mathematics high_school_biology "
        "high_school_chemistry high_school_computer_science high_school_mathematics "
        "high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history "
        "high_school_world_history international_law jurisprudence logical_fallacies "
        "moral_disputes moral_scenarios philosophy prehistory professional_law world_religions"
    ),
    "social": (
        "econometrics high_school_geography high_school_government_and_politics "
        "high_school_macroeconomics high_school_microeconomics high_school_psychology "
        "human_sexuality professional_psychology public_relations security_studies sociology "
        "us_foreign_policy"
    ),
}
"""MMLU's own subject categories; every other subject is 'other'."""
_GROUP_OF = {s: g for g, subjects in MMLU_GROUPS.items() for s in subjects.split()}


@dataclass(frozen=True, kw_only=True)
class Suite:
    """Prompts that every model of the suite answered, with quality and cost per model."""

    name: str
    models: tuple[str, ...]
    prompts: tuple[str, ...]
    datasets: tuple[str, ...]
    """Per prompt, the dataset it comes from."""
    quality: np.ndarray
    """prompts x models, 0..1."""
    cost: np.ndarray
    """prompts x models, integer micro-dollars."""

    def __len__(self) -> int:
        return len(self.prompts)

    def names(self) -> list[str]:
        """The datasets, in first-seen order."""
        return list(dict.fromkeys(self.datasets))

    def subset(self, mask: np.ndarray) -> Suite:
        """The prompts where mask is true."""
        idx = np.flatnonzero(mask)
        return Suite(
            name=self.name,
            models=self.models,
            prompts=tuple(self.prompts[i] for i in idx),
            datasets=tuple(self.datasets[i] for i in idx),
            quality=self.quality[idx],
            cost=self.cost[idx],
        )


def _tokens_in(prompt: str) -> int:
    return count_messages_tokens([{"role": "user", "content": prompt}])


def _priced(catalog: PriceCatalog, model: str, tokens_in: int, tokens_out: int) -> int:
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    return cost_micro_usd(catalog.get(model), usage)


def load_routellm(root: Path = ROUTELLM_DATA, catalog: PriceCatalog | None = None) -> Suite:
    """GSM8K, MMLU by subject group and MT-Bench first turns; raises OSError without data."""
    catalog = catalog or PriceCatalog.load()
    csv.field_size_limit(1 << 26)
    models = (STRONG, WEAK)
    rows: list[tuple[str, str, list[float], list[int]]] = []

    def add(dataset: str, prompt: str, quality: list[float], outs: list[int]) -> None:
        tokens_in = _tokens_in(prompt)
        costs = [
            _priced(catalog, ROUTELLM_PRICED_AS[m], tokens_in, o)
            for m, o in zip(models, outs, strict=True)
        ]
        rows.append((dataset, prompt, quality, costs))

    with (root / "gsm8k_responses.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            add(
                "gsm8k",
                row["prompt"],
                [float(row[m] == "True") for m in models],
                [count_text_tokens(row[f"{m}_response"]) for m in models],
            )
    for path in sorted((root / "mmlu").glob("mmlu_*.csv")):
        group = _GROUP_OF.get(path.stem.removeprefix("mmlu_"), "other")
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                add(
                    f"mmlu_{group}",
                    row["prompt"],
                    [float(row[m] == "True") for m in models],
                    [1, 1],
                )
    for question, quality, outs in _mt_bench(root / "mt_bench_judgements.jsonl", models):
        add("mt_bench", question, quality, outs)
    return _suite("routellm", models, rows)


def _mt_bench(path: Path, models: Sequence[str]) -> list[tuple[str, list[float], list[int]]]:
    """First-turn MT-Bench questions with each model's grade / 10 and answer tokens."""
    by_question: dict[str, dict[str, tuple[str, float, int]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if str(row["turn"]) != "1":
            continue
        text = row["user_prompt"]
        question = re.search(r"\[Question\]\n(.*?)\n\n\[The Start of", text, re.S)
        answer = re.search(
            r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]",
            text,
            re.S,
        )
        if question is None or answer is None:
            continue
        by_question.setdefault(str(row["question_id"]), {})[row["model"]] = (
            question.group(1).strip(),
            float(row["score"]) / 10.0,
            count_text_tokens(answer.group(1)),
        )
    out = []
    for _, answers in sorted(by_question.items(), key=lambda kv: int(kv[0])):
        if all(m in answers for m in models):
            out.append(
                (
                    answers[models[0]][0],
                    [answers[m][1] for m in models],
                    [answers[m][2] for m in models],
                )
            )
    return out


def load_mmlupro(path: Path = MMLUPRO_DATA) -> Suite:
    """The MMLU-Pro sample (bench.routing_mmlupro), priced at the models' list prices."""
    models = tuple(MMLUPRO_PRICES)
    rows: list[tuple[str, str, list[float], list[int]]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            tokens_in = _tokens_in(row["prompt"])
            costs = [_list_price(m, tokens_in, int(row[f"{m}|out"])) for m in models]
            rows.append((row["dataset"], row["prompt"], [float(row[m]) for m in models], costs))
    return _suite("mmlupro", models, rows)


def _list_price(model: str, tokens_in: int, tokens_out: int) -> int:
    price_in, price_out = MMLUPRO_PRICES[model]
    return round(price_in * tokens_in + price_out * tokens_out)  # USD/1M tokens = micro-USD


def load_wide(path: Path, name: str = "custom") -> Suite:
    """A suite from a CSV of the layout in the module docstring (costs in USD)."""
    csv.field_size_limit(1 << 26)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        models = tuple(f.removesuffix("|total_cost") for f in fields if f.endswith("|total_cost"))
        rows = []
        for row in reader:
            dataset = row.get("dataset") or row.get("eval_name") or "all"
            quality = [float(row[m]) for m in models]
            costs = [round(Decimal(row[f"{m}|total_cost"]) * 1_000_000) for m in models]
            rows.append((dataset, row["prompt"], quality, costs))
    return _suite(name, models, rows)


def _suite(
    name: str, models: tuple[str, ...], rows: Sequence[tuple[str, str, list[float], list[int]]]
) -> Suite:
    return Suite(
        name=name,
        models=models,
        prompts=tuple(r[1] for r in rows),
        datasets=tuple(r[0] for r in rows),
        quality=np.array([r[2] for r in rows], dtype=np.float64),
        cost=np.array([r[3] for r in rows], dtype=np.int64),
    )


PER_DATASET = 400
"""Prompts kept per dataset (a seeded sample; MT-Bench has 80): embedding all 18,000 would
take hours on the loaded 2-core machine the figures come from; 400 bound APGR within about
±0.1 (the bootstrap interval in the results says how well)."""
SAMPLE_SEED = 14
CACHE = Path.home() / ".cache" / "flipsync" / "routing"


def thinned(suite: Suite, per_dataset: dict[str, int], seed: int = SAMPLE_SEED) -> Suite:
    """At most per_dataset[d] prompts of each named dataset (a seeded sample), all others."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(suite), dtype=bool)
    datasets = np.array(suite.datasets)
    for name, limit in per_dataset.items():
        idx = np.flatnonzero(datasets == name)
        if len(idx) > limit:
            keep[idx] = False
            keep[rng.choice(idx, size=limit, replace=False)] = True
    return suite.subset(keep)


def embeddings(suite: Suite, *, threads: int = 2, batch: int = 32) -> np.ndarray:
    """MiniLM vectors of the suite's prompts as the router embeds them (clip_text), cached
    under ~/.cache/flipsync/routing by a digest of the prompts."""
    import hashlib

    from router.routing.difficulty import clip_text
    from router.semantic.embedder import OnnxMiniLmEmbedder

    texts = [clip_text(p) for p in suite.prompts]
    digest = hashlib.blake2b("\x00".join(texts).encode(), digest_size=12).hexdigest()
    path = CACHE / f"{suite.name}-{digest}.npy"
    if path.is_file():
        return np.asarray(np.load(path), dtype=np.float32)
    embedder = OnnxMiniLmEmbedder(threads=threads)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding per batch
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        vectors[idx] = embedder.embed([texts[i] for i in idx])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
