"""Training the learned router on RouteLLM's per-prompt correctness data (offline only).

The data (../shared/data/routellm, from lm-sys/RouteLLM @0b64fdaf routellm/evals/,
Apache-2.0) gives, per prompt of GSM8K and MMLU, whether gpt-4-1106-preview (strong) and
Mixtral-8x7B-Instruct (weak) answered correctly. The split is deterministic: a prompt is in
the test split when the first byte of its BLAKE2b digest is 0 mod 5 (about 20%), so equal
prompts always land together. Only the train split is used here.

Ship new weights with `.venv/bin/python -m router.routing.training` (about ten seconds);
it writes router/routing/prompt_router.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from router.routing.learned import (
    N_FEATURES,
    PACKAGED_WEIGHTS,
    LinearModel,
    PromptRouter,
    prompt_vector,
)

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "routellm"
SOURCE = {
    "source": "lm-sys/RouteLLM @0b64fdaf, routellm/evals/ (via shared/data/routellm)",
    "licence": "Apache-2.0",
    "strong": STRONG,
    "weak": WEAK,
}
REGULARISATION_C = 0.1
"""Inverse L2 strength; the best of 0.03, 0.1, 0.3, 1 and 3 by APGR on a train-only hold-out."""
FOLDS = 5
QUANTILES = 200


@dataclass(frozen=True, kw_only=True)
class Example:
    """One prompt and whether each model answered it correctly."""

    dataset: str
    """'gsm8k' or 'mmlu'."""
    prompt: str
    weak_ok: bool
    strong_ok: bool
    weak_response: str = ""
    """The weak model's logged answer (GSM8K only), for output-token counts."""
    strong_response: str = ""


def is_test(prompt: str) -> bool:
    """Whether a prompt belongs to the test split (deterministic, ~20%)."""
    return hashlib.blake2b(prompt.encode(), digest_size=8).digest()[0] % 5 == 0


def load_routellm(root: Path = DEFAULT_DATA) -> list[Example]:
    """Every GSM8K and MMLU example, in file order; raises OSError if the data is missing."""
    csv.field_size_limit(1 << 26)
    examples: list[Example] = []
    with (root / "gsm8k_responses.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            examples.append(
                Example(
                    dataset="gsm8k",
                    prompt=row["prompt"],
                    weak_ok=row[WEAK] == "True",
                    strong_ok=row[STRONG] == "True",
                    weak_response=row[f"{WEAK}_response"],
                    strong_response=row[f"{STRONG}_response"],
                )
            )
    for path in sorted((root / "mmlu").glob("mmlu_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                examples.append(
                    Example(
                        dataset="mmlu",
                        prompt=row["prompt"],
                        weak_ok=row[WEAK] == "True",
                        strong_ok=row[STRONG] == "True",
                    )
                )
    return examples


def split(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(train, test) by is_test."""
    train = [e for e in examples if not is_test(e.prompt)]
    test = [e for e in examples if is_test(e.prompt)]
    return train, test


def matrix(prompts: Sequence[str]) -> csr_matrix:
    """The feature matrix of prompts (rows in order)."""
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row, prompt in enumerate(prompts):
        for col, value in prompt_vector(prompt).items():
            rows.append(row)
            cols.append(col)
            values.append(value)
    return csr_matrix((values, (rows, cols)), shape=(len(prompts), N_FEATURES))


def fit(
    examples: Sequence[Example], *, c: float = REGULARISATION_C, folds: int = FOLDS
) -> PromptRouter:
    """Train both logistic models on examples; the gain ranks come from out-of-fold scores."""
    return fit_with_oof(examples, c=c, folds=folds)[0]


def fit_with_oof(
    examples: Sequence[Example], *, c: float = REGULARISATION_C, folds: int = FOLDS
) -> tuple[PromptRouter, np.ndarray]:
    """The router, and each example's out-of-fold expected gain (for calibrating thresholds)."""
    x = matrix([e.prompt for e in examples])
    y_weak = np.array([e.weak_ok for e in examples])
    y_strong = np.array([e.strong_ok for e in examples])
    weak, strong = _train(x, y_weak, c), _train(x, y_strong, c)
    fold_of = np.arange(len(examples)) % folds
    gains = np.zeros(len(examples))
    for k in range(folds):
        held, kept = fold_of == k, fold_of != k
        w = _train(x[kept], y_weak[kept], c)
        s = _train(x[kept], y_strong[kept], c)
        gains[held] = _predict(s, x[held]) - _predict(w, x[held])
    quantiles = np.quantile(gains, np.linspace(0.0, 1.0, QUANTILES + 1))
    router = PromptRouter(
        weak=weak,
        strong=strong,
        gain_quantiles=tuple(float(q) for q in quantiles),
        meta={**SOURCE, "train_prompts": len(examples), "c": c, "folds": folds},
    )
    return router, gains


def _train(x: csr_matrix, y: np.ndarray, c: float) -> LinearModel:
    positives, n = int(y.sum()), len(y)
    if positives in (0, n):  # one class only: a constant, smoothed (Laplace) rate
        rate = (positives + 1) / (n + 2)
        return LinearModel(weights=(0.0,) * N_FEATURES, bias=math.log(rate / (1 - rate)))
    model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
    return LinearModel(
        weights=tuple(float(w) for w in model.coef_[0]), bias=float(model.intercept_[0])
    )


def _predict(model: LinearModel, x: csr_matrix) -> np.ndarray:
    z = x @ np.asarray(model.weights) + model.bias
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def main(argv: Sequence[str] | None = None) -> int:
    """Train on the train split and write the packaged weights."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / PACKAGED_WEIGHTS)
    args = parser.parse_args(argv)
    train, _ = split(load_routellm(args.data))
    router = fit(train)
    router.save(args.out)
    print(f"trained on {len(train)} prompts; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
