"""The learned router: from a prompt's text, how much a strong model would gain over a weak one.

Two logistic models over the same prompt features estimate the chance that the weak model
answers correctly and that the strong model does; their difference is the expected gain of
calling the strong model. ``complexity`` turns the gain into a 0..1 score by its rank among
the training prompts (out-of-fold), so a tier threshold reads as a share of calls: with
``complex_from`` 0.7, the 30% of prompts with the largest expected gain are complex.

Features come from the prompt only, as the router sees it at request time: hashed word
unigrams and bigrams (numbers folded to one token), L2-normalised, plus a few cues from
router.routing.features. Scoring is plain Python (no numpy); training is in
router.routing.training, which writes the weights this module loads.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from router.routing.features import text_cues

FORMAT = 1
HASH_BITS = 12
HASH_SIZE = 1 << HASH_BITS
DENSE = ("log_words", "numbers", "math", "multi_step", "code", "options")
"""Named features after the hashed ones, in this order."""
N_FEATURES = HASH_SIZE + len(DENSE)
PACKAGED_WEIGHTS = "prompt_router.json"

_WORD = re.compile(r"[a-z]+|\d+")
_OPTION = re.compile(r"^[ \t]*[A-D][.)]\s", re.MULTILINE)


def prompt_vector(text: str) -> dict[int, float]:
    """The sparse feature vector of a prompt: {feature index: value}."""
    words = ["#" if w.isdigit() else w for w in _WORD.findall(text.lower())]
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    vector: dict[int, float] = {}
    for gram in grams:
        index = zlib.crc32(gram.encode()) & (HASH_SIZE - 1)
        vector[index] = vector.get(index, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
    vector = {i: v / norm for i, v in vector.items()}
    cues = text_cues(text)
    dense = (
        math.log1p(len(words)) / 8.0,
        min(cues.numbers, 20) / 20.0,
        cues.math,
        cues.multi_step,
        cues.code,
        min(len(_OPTION.findall(text)), 4) / 4.0,
    )
    for offset, value in enumerate(dense):
        if value:
            vector[HASH_SIZE + offset] = value
    return vector


@dataclass(frozen=True, kw_only=True)
class LinearModel:
    """A logistic model: probability = sigmoid(bias + weights . features)."""

    weights: tuple[float, ...]
    bias: float

    def probability(self, vector: Mapping[int, float]) -> float:
        """The modelled probability for a feature vector."""
        z = self.bias + sum(self.weights[i] * v for i, v in vector.items())
        return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))


@dataclass(frozen=True, kw_only=True)
class PromptScore:
    """What the learned router says about one prompt."""

    p_weak: float
    """Chance the weak model answers correctly."""
    p_strong: float
    """Chance the strong model answers correctly."""
    gain: float
    """p_strong - p_weak: what calling the strong model is expected to add."""
    complexity: float
    """The gain's rank among training prompts, 0..1 (higher: more reason to go strong)."""


@dataclass(frozen=True, kw_only=True)
class PromptRouter:
    """Two logistic models and the gain distribution of the prompts they were trained on."""

    weak: LinearModel
    strong: LinearModel
    gain_quantiles: tuple[float, ...]
    """Sorted gains of training prompts at evenly spaced ranks, for complexity."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Where the weights came from: data source, commit, licence, split, command."""

    def score(self, text: str) -> PromptScore:
        """Score a prompt."""
        vector = prompt_vector(text)
        p_weak = self.weak.probability(vector)
        p_strong = self.strong.probability(vector)
        gain = p_strong - p_weak
        return PromptScore(p_weak=p_weak, p_strong=p_strong, gain=gain, complexity=self.rank(gain))

    def complexity(self, text: str) -> float:
        """The 0..1 complexity of a prompt (its expected gain's rank)."""
        return self.score(text).complexity

    def rank(self, gain: float) -> float:
        """Share of training prompts with a smaller gain, interpolated between quantiles."""
        q = self.gain_quantiles
        if len(q) < 2:
            return 0.5
        if gain <= q[0]:
            return 0.0
        if gain >= q[-1]:
            return 1.0
        hi = bisect.bisect_right(q, gain)
        lo = hi - 1
        span = q[hi] - q[lo]
        within = (gain - q[lo]) / span if span > 0 else 0.0
        return round((lo + within) / (len(q) - 1), 6)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; weights rounded to 5 decimals (the file stays small)."""
        return {
            "format": FORMAT,
            "hash_bits": HASH_BITS,
            "dense": list(DENSE),
            "meta": dict(self.meta),
            "weak": _model_dict(self.weak),
            "strong": _model_dict(self.strong),
            "gain_quantiles": [round(g, 6) for g in self.gain_quantiles],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptRouter:
        """Rebuild a router from to_dict's data; raises ValueError on a mismatched layout."""
        if data.get("format") != FORMAT or data.get("hash_bits") != HASH_BITS:
            raise ValueError("prompt router weights were written for another feature layout")
        if list(data.get("dense", ())) != list(DENSE):
            raise ValueError("prompt router weights name other dense features")
        return cls(
            weak=_model(data["weak"]),
            strong=_model(data["strong"]),
            gain_quantiles=tuple(float(g) for g in data["gain_quantiles"]),
            meta=dict(data.get("meta", {})),
        )

    def save(self, path: Path) -> None:
        """Write the router as JSON."""
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path | None = None) -> PromptRouter:
        """Read a router; by default the weights shipped with this package."""
        if path is None:
            text = resources.files("router.routing").joinpath(PACKAGED_WEIGHTS).read_text()
        else:
            text = path.read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))


def _model_dict(model: LinearModel) -> dict[str, Any]:
    return {"bias": round(model.bias, 6), "weights": [round(w, 5) for w in model.weights]}


def _model(raw: Mapping[str, Any]) -> LinearModel:
    weights: Sequence[float] = raw["weights"]
    if len(weights) != N_FEATURES:
        raise ValueError(f"expected {N_FEATURES} weights, got {len(weights)}")
    return LinearModel(weights=tuple(float(w) for w in weights), bias=float(raw["bias"]))
