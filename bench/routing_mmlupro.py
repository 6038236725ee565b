"""The MMLU-Pro sample of bench/routing: ten models' per-question correctness, by source.

Source: TIGER-AI-Lab/MMLU-Pro @f418b11 (Apache-2.0), eval_results/model_outputs_*_5shots.zip:
each model's answer to every MMLU-Pro question, with the predicted letter and (for most
models) the generated text. MMLU-Pro's questions come from four different sources, which
bench/routing treats as four datasets for leave-one-dataset-out: original MMLU (ori_mmlu),
STEM websites (stemez), TheoremQA and SciBench.

`python -m bench.routing_mmlupro --derive MIRROR` (MIRROR: a checkout or bare mirror of the
repository) writes bench/data/routing_mmlupro.csv: every TheoremQA and SciBench question
and 900 each of ori_mmlu and stemez (seed 14), only questions every model answered. Columns:
`id, dataset, category, prompt` (question plus lettered options, as the RouteLLM MMLU file
writes them), then per model `<model>` (1 correct, 0 not: a missing answer is wrong) and
`<model>|out` (output tokens of its logged answer, router.tokens; the model's median where
the log has no text).

Prices (USD per 1M input/output tokens) are public list prices of late 2024 (Google AI
Studio pay-as-you-go up to 128k tokens, AI21, DeepSeek, Together AI serverless, Azure AI
for Phi-3-mini), rounded; good enough to order the models and weigh their costs.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import random
import statistics
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from router.tokens import count_text_tokens

DATA = Path(__file__).parent / "data" / "routing_mmlupro.csv"
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gemini-1.5-pro-002": (Decimal("1.25"), Decimal("5.00")),
    "jamba-1.5-large": (Decimal("2.00"), Decimal("8.00")),
    "Meta-Llama-3_1-70B-Instruct": (Decimal("0.88"), Decimal("0.88")),
    "Qwen1.5-72B-Chat": (Decimal("0.90"), Decimal("0.90")),
    "Mixtral-8x7B-Instruct-v0.1": (Decimal("0.60"), Decimal("0.60")),
    "DeepSeek-Coder-V2": (Decimal("0.14"), Decimal("0.28")),
    "Mistral-7B-Instruct-v0.2": (Decimal("0.20"), Decimal("0.20")),
    "Meta-Llama-3_1-8B-Instruct": (Decimal("0.18"), Decimal("0.18")),
    "Phi-3-mini-4k-instruct": (Decimal("0.13"), Decimal("0.52")),
    "gemini-1.5-flash-002": (Decimal("0.075"), Decimal("0.30")),
}
"""USD per 1M (input, output) tokens of each model in the sample."""
MODELS = tuple(PRICES)
SOURCES = ("ori_mmlu", "stemez", "theoremQA", "scibench")
SAMPLE = {"ori_mmlu": 900, "stemez": 900}
"""Questions kept per source (all of the others)."""
SEED = 14
LETTERS = "ABCDEFGHIJ"


def prompt_of(question: str, options: Sequence[str]) -> str:
    """The question with lettered options, ending in 'Answer:' (RouteLLM's MMLU layout)."""
    lines = [question.strip()]
    lines += [f"{LETTERS[i]}. {str(o).strip()}" for i, o in enumerate(options)]
    return "\n".join([*lines, "Answer:"])


def _answers(mirror: Path, model: str) -> list[dict[str, object]]:
    name = f"eval_results/model_outputs_{model}_5shots.zip"
    if (mirror / name).is_file():
        raw = (mirror / name).read_bytes()
    else:
        raw = subprocess.run(
            ["git", "-C", str(mirror), "show", f"HEAD:{name}"], check=True, capture_output=True
        ).stdout
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        data = json.loads(archive.read(archive.namelist()[0]))
    return [row for row in data if isinstance(row, dict)]


def derive(mirror: Path, out: Path = DATA) -> int:
    """Write the sample from a checkout or mirror of MMLU-Pro; returns the rows written."""
    by_model: dict[str, dict[str, dict[str, object]]] = {}
    for model in MODELS:
        by_model[model] = {str(r["question_id"]): r for r in _answers(mirror, model)}
    common = set.intersection(*(set(rows) for rows in by_model.values()))
    first = by_model[MODELS[0]]
    groups: dict[str, list[str]] = {s: [] for s in SOURCES}
    for qid in sorted(common, key=int):
        source = str(first[qid]["src"]).split("-")[0]
        if source in groups:
            groups[source].append(qid)
    rng = random.Random(SEED)
    chosen: list[str] = []
    for source, ids in groups.items():
        keep = SAMPLE.get(source)
        chosen += sorted(rng.sample(ids, keep) if keep and keep < len(ids) else ids, key=int)
    tokens: dict[str, dict[str, int]] = {}
    for model in MODELS:
        counts = {}
        for qid in chosen:
            row = by_model[model][qid]
            text = row.get("model_outputs") or row.get("generated_text") or ""
            if text:
                counts[qid] = count_text_tokens(str(text))
        median = int(statistics.median(counts.values())) if counts else 200
        tokens[model] = {qid: counts.get(qid, median) for qid in chosen}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["id", "dataset", "category", "prompt"]
        for model in MODELS:
            header += [model, f"{model}|out"]
        writer.writerow(header)
        for qid in chosen:
            row = first[qid]
            options = ast.literal_eval(str(row["options"]))
            line: list[object] = [
                qid,
                str(row["src"]).split("-")[0],
                row["category"],
                prompt_of(str(row["question"]), options),
            ]
            for model in MODELS:
                answer = by_model[model][qid]
                line += [int(answer.get("pred") == answer["answer"]), tokens[model][qid]]
            writer.writerow(line)
    return len(chosen)


def main(argv: Sequence[str] | None = None) -> int:
    """Derive the sample (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--derive", type=Path, required=True, metavar="MIRROR")
    args = parser.parse_args(argv)
    rows = derive(args.derive)
    print(f"wrote {rows} questions to {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
