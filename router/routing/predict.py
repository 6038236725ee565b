"""Per-prompt success chances for the route stage: embed, predict difficulty, adjust quality.

``PromptPredictor`` embeds a request's text (static MiniLM word-piece vectors,
router.routing.static_embedder), predicts the prompt's difficulty
(router.routing.difficulty) and turns each model's task-level quality into its chance on
this prompt. Each task type's mean difficulty is a running mean of the prompts it has seen
(``MEAN_WINDOW``), so a model keeps its recorded quality on a typical prompt of its task
type whatever the task's absolute difficulty.

Embedding costs tens of microseconds per prompt (running MiniLM itself cost 2.5-4.5 ms), so
it runs on the caller's thread; the last ``CACHE_SIZE`` texts' difficulties are kept, so a
retry or a repeated task pays once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple, Protocol

import numpy as np

from bus.messages import LlmRequest
from router.routing.difficulty import DifficultyModel, sigmoid, success_chance
from router.routing.per_task import PerTask

MEAN_WINDOW = 500
"""Prompts over which a task type's mean difficulty is averaged (exponentially)."""
CACHE_SIZE = 2048


class TextEmbedder(Protocol):
    """What the predictor needs of an embedder: unit-length vectors, one row per text."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts."""
        ...


class PromptView(NamedTuple):
    """What value mode reads of a prompt (the route stage's view of it)."""

    difficulty: float
    """Predicted difficulty."""
    mean: float
    """The task type's running mean difficulty before this prompt."""
    complexity: float
    """0..1 reading of relative difficulty, for reasons and traces."""
    vector: np.ndarray
    """The prompt's static vector (what router.routing.neighbours compares)."""


class PromptPredictor:
    """Difficulty of prompts and models' chances on them (see the module docstring)."""

    def __init__(self, model: DifficultyModel, embedder: TextEmbedder) -> None:
        self._model = model
        self._embedder = embedder
        self._means: PerTask[float] = PerTask("mean difficulties")
        self._cache: OrderedDict[bytes, tuple[float, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def slope(self) -> float:
        """The shipped slope (trust in the predicted spread)."""
        return self._model.slope

    def difficulty_now(self, text: str) -> float:
        """The difficulty of a prompt, computed in this thread (cached)."""
        return self.view_now(text)[0]

    def view_now(self, text: str) -> tuple[float, np.ndarray]:
        """The difficulty of a prompt and its vector, computed in this thread (cached)."""
        key = _key(text)
        with self._lock:  # safe for callers on other threads (benchmarks, tools)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        return self._predicted(key, self._embedder.embed([text]))

    def difficulty_of(self, text: str, vector: np.ndarray) -> float:
        """The difficulty of a prompt from its precomputed vector (the embedder's vector of
        text, one row or a flat vector), remembered for text."""
        return self._predicted(_key(text), vector)[0]

    def _predicted(self, key: bytes, vector: np.ndarray) -> tuple[float, np.ndarray]:
        """Predict from a vector and remember (difficulty, flat vector) under key."""
        flat = np.asarray(vector).reshape(-1)
        view = (float(self._model.predict(flat.reshape(1, -1))[0]), flat)
        with self._lock:
            self._cache[key] = view
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return view

    def observe(self, task_type: str, difficulty: float) -> float:
        """Fold a prompt into its task type's running mean; returns the mean before it."""
        known = self._means.get(task_type)
        before = difficulty if known is None else known
        self._means.put(task_type, before + (difficulty - before) / MEAN_WINDOW)
        return before

    def mean(self, task_type: str) -> float | None:
        """The task type's running mean difficulty, or None before its first prompt."""
        return self._means.get(task_type)

    def chances(
        self, qualities: Mapping[str, float], difficulty: float, mean_difficulty: float
    ) -> dict[str, float]:
        """Each model's chance on the prompt, from its task-level quality."""
        return {
            model: success_chance(q, difficulty, mean_difficulty, self._model.slope)
            for model, q in qualities.items()
        }

    def complexity(self, difficulty: float, mean_difficulty: float) -> float:
        """A 0..1 reading of relative difficulty for reasons and traces (0.5: typical)."""
        return sigmoid(self._model.slope * (difficulty - mean_difficulty))


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def prompt_text(request: LlmRequest) -> str:
    """What the predictor reads of a request: its last user message (the current ask), or
    all its text when it has no user message."""
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        return message.text()
    return "\n".join(m.text() for m in request.messages)
