"""Prompt difficulty from its MiniLM embedding, and the chance each model answers it well.

The success model is a Rasch (one-parameter item response) model: model m answers prompt x
well with probability sigmoid(ability(m) - difficulty(x)). Abilities and difficulties are
fitted together from recorded outcomes of several models on the same prompts
(``fit_rasch``); a ridge regression from the prompt's all-MiniLM-L6-v2 embedding then
predicts the difficulty of a prompt never seen (``DifficultyModel``). Only the difficulty
is shipped (router/routing/difficulty.json, 385 numbers): it does not depend on which
models a deployment has, so it carries over from public benchmark models to the catalog's.
A model's ability on a task type comes from the deployment's own quality record
(router.routing.quality), read as its mean success over that task type's prompts:

    p(m, x) = sigmoid(logit(q(m, task)) - slope * (difficulty(x) - mean difficulty(task)))

so a model with recorded quality q keeps q on an average prompt of the task type and does
better on easier ones, worse on harder ones. ``slope`` (shipped with the weights) shrinks
the predicted spread to what held-out data supports.

Pure numpy, no I/O besides ``load``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
PACKAGED = "difficulty.json"
EMBEDDER = "minilm-static-256"
"""The vectors the shipped weights read (router.routing.static_embedder.NAME)."""
HEAD_CHARS = 256
TAIL_CHARS = 128
"""How bench/routing clips a prompt for MiniLM itself (`--features minilm`): its first 256 and
last 128 characters (about 100 tokens), as the router embedded prompts before it read static
vectors (which take a prompt's first 4,000 characters, static_embedder.MAX_CHARS)."""
_CLIP = 1e-3


def clip_text(text: str) -> str:
    """The part of a prompt MiniLM embeds in bench/routing's comparison (see HEAD_CHARS)."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]} ... {text[-TAIL_CHARS:]}"


def logit(p: float) -> float:
    """log(p / (1 - p)), with p clipped to [0.001, 0.999]."""
    p = min(max(p, _CLIP), 1.0 - _CLIP)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    """1 / (1 + exp(-z)), safe for large |z|."""
    return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))


def fit_rasch(
    quality: np.ndarray, *, iterations: int = 300, shrink: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """(difficulty per prompt, ability per model) from a prompts x models matrix of 0..1
    quality (NaN: not observed), by gradient ascent on the Bernoulli log-likelihood with a
    light L2 pull of difficulties toward 0 (a prompt every model got right stays finite)."""
    observed = ~np.isnan(quality)
    y = np.where(observed, quality, 0.0)
    rates = np.clip(y.sum(0) / np.maximum(observed.sum(0), 1), _CLIP, 1 - _CLIP)
    ability = np.log(rates / (1 - rates))
    difficulty = np.zeros(quality.shape[0])
    per_prompt = np.maximum(observed.sum(1), 1)
    per_model = np.maximum(observed.sum(0), 1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(ability[None, :] - difficulty[:, None])))
        residual = np.where(observed, y - p, 0.0)
        ability += 2.0 * residual.sum(0) / per_model
        difficulty -= 2.0 * (residual.sum(1) / per_prompt + shrink * difficulty)
    return difficulty, ability


@dataclass(frozen=True, kw_only=True)
class DifficultyModel:
    """Ridge regression from a unit-length prompt embedding to its Rasch difficulty."""

    weights: np.ndarray
    bias: float
    slope: float = 1.0
    """How much of the predicted difficulty spread to trust (0..1, from held-out data)."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Where it came from: data sources, licences, prompts, command."""

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        difficulty: np.ndarray,
        *,
        alpha: float = 3.0,
        slope: float = 1.0,
        meta: Mapping[str, Any] | None = None,
    ) -> DifficultyModel:
        """Ridge fit (intercept not penalised) of difficulty on vectors (prompts x dim)."""
        x = np.hstack([vectors, np.ones((len(vectors), 1))])
        penalty = np.eye(x.shape[1]) * alpha
        penalty[-1, -1] = 0.0
        solution = np.linalg.solve(x.T @ x + penalty, x.T @ difficulty)
        return cls(
            weights=solution[:-1].astype(np.float64),
            bias=float(solution[-1]),
            slope=slope,
            meta=dict(meta or {}),
        )

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """The predicted difficulty of each row of vectors (prompts x dim)."""
        return np.asarray(vectors @ self.weights + self.bias, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (weights rounded to 6 decimals)."""
        return {
            "format": FORMAT,
            "embedder": EMBEDDER,
            "dim": int(self.weights.shape[0]),
            "bias": round(self.bias, 6),
            "slope": round(self.slope, 4),
            "weights": [round(float(w), 6) for w in self.weights],
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DifficultyModel:
        """Rebuild from to_dict's data; raises ValueError on another layout or embedder."""
        if data.get("format") != FORMAT or data.get("embedder") != EMBEDDER:
            raise ValueError("difficulty weights were written for another layout or embedder")
        weights = np.asarray(data["weights"], dtype=np.float64)
        if weights.shape != (int(data["dim"]),):
            raise ValueError(f"expected {data['dim']} weights, got {weights.shape[0]}")
        return cls(
            weights=weights,
            bias=float(data["bias"]),
            slope=float(data.get("slope", 1.0)),
            meta=dict(data.get("meta", {})),
        )

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path | None = None) -> DifficultyModel:
        """Read the weights; by default those shipped with this package."""
        if path is None:
            text = resources.files("router.routing").joinpath(PACKAGED).read_text()
        else:
            text = path.read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))


def success_chance(
    quality: float, difficulty: float, mean_difficulty: float, slope: float
) -> float:
    """p(m, x) of the module docstring: a model's chance on one prompt from its task-level
    quality, the prompt's difficulty and the task type's mean difficulty."""
    return sigmoid(logit(quality) - slope * (difficulty - mean_difficulty))
