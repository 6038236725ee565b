"""Nearest recorded outcomes: each model's chance moved toward what it did on similar prompts.

A replica keeps, per (task type, model), the prompt vectors (the static vectors the
difficulty prediction reads, router.routing.predict) and outcomes of the last ``memory``
answers it learned a verdict of, in process (no Redis: each replica learns from the
requests it routed). The route stage remembers each routed request's vector by request id
(the last ``pending`` of them); a quality signal naming that request id (the agents'
verdict through the quality consumer, a failed cascade rung, a shadow evaluation) then
files the vector under the answering model with its outcome.

A model's chance on a new prompt becomes ``(c * chance + sum(w * y)) / (c + sum(w))``
over its k most similar remembered prompts, w the cosine similarity (clipped at 0) to the
power ``power``: the prediction counts as c answers, so a model with few or distant
neighbours keeps it, and one that failed on prompts like this loses them. k, c and power
are what bench/routing's calibration chooses on every public dataset (``NeighbourSettings``
defaults); held out, they lifted the online router's mean APGR from 0.56 to 0.65
(docs/routing.md).

Memory: ``memory`` x dimensions x 4 bytes per (task type, model) pair with a verdict
(256 KB at 256 x 256), plus ``pending`` vectors (2 MB at 2,048).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class NeighbourSettings:
    """How the nearest outcomes are read and how many are kept."""

    k: int = 32
    """Neighbours read per model."""
    c: float = 16.0
    """Answers' worth of the prediction the neighbours move."""
    power: float = 1.0
    """Exponent on the similarities (above 1: nearer prompts weigh more)."""
    memory: int = 256
    """Outcomes kept per (task type, model), the last ones."""
    pending: int = 2048
    """Routed requests whose vector is kept until their verdict arrives."""

    def __post_init__(self) -> None:
        if self.k < 1 or self.memory < 1 or self.pending < 1:
            raise ValueError("k, memory and pending must be at least 1")
        if self.c <= 0 or self.power <= 0:
            raise ValueError("c and power must be positive")


class _Ring:
    """The last outcomes of one (task type, model): vectors and 0..1 outcomes."""

    def __init__(self, size: int, dims: int) -> None:
        self.vectors = np.zeros((size, dims), dtype=np.float32)
        self.outcomes = np.zeros(size, dtype=np.float32)
        self.count = 0

    def add(self, vector: np.ndarray, outcome: float) -> None:
        slot = self.count % len(self.outcomes)
        self.vectors[slot] = vector
        self.outcomes[slot] = outcome
        self.count += 1

    def filled(self) -> int:
        return min(self.count, len(self.outcomes))


class OutcomeMemory:
    """A replica's recorded outcomes by prompt vector, per (task type, model) (module doc)."""

    def __init__(self, settings: NeighbourSettings | None = None) -> None:
        self._s = settings or NeighbourSettings()
        self._pending: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._lock = threading.Lock()  # signals may land on other threads (tests, tools)

    @property
    def settings(self) -> NeighbourSettings:
        """How this memory reads and keeps outcomes."""
        return self._s

    def remember(self, request_id: str, task_type: str, vector: np.ndarray) -> None:
        """Keep a routed request's prompt vector until a verdict on it arrives."""
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            self._pending[request_id] = (task_type, flat)
            self._pending.move_to_end(request_id)
            if len(self._pending) > self._s.pending:
                self._pending.popitem(last=False)

    def observe(self, request_id: str, model: str, good: bool | float) -> bool:
        """File a verdict on a request this replica routed under the answering model; False
        when the request is not known here (routed elsewhere, or long ago)."""
        with self._lock:
            known = self._pending.get(request_id)
            if known is None or not model:
                return False
            task_type, vector = known
            ring = self._rings.get((task_type, model))
            if ring is None:
                ring = self._rings[(task_type, model)] = _Ring(self._s.memory, len(vector))
            ring.add(vector, float(good))
            return True

    def recorded(self, task_type: str, model: str) -> int:
        """How many outcomes of a model on a task type are kept."""
        with self._lock:
            ring = self._rings.get((task_type, model))
            return 0 if ring is None else ring.filled()

    def blend(
        self, task_type: str, vector: np.ndarray, chances: Mapping[str, float]
    ) -> dict[str, float]:
        """Each model's chance moved toward its nearest recorded outcomes (module doc)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        out = dict(chances)
        with self._lock:
            for model, chance in chances.items():
                ring = self._rings.get((task_type, model))
                if ring is None or ring.count == 0 or len(query) != ring.vectors.shape[1]:
                    continue
                n = ring.filled()
                sims = (ring.vectors[:n] @ query).clip(0.0) ** self._s.power
                outcomes = ring.outcomes[:n]
                if n > self._s.k:
                    near = np.argpartition(-sims, self._s.k - 1)[: self._s.k]
                    sims, outcomes = sims[near], outcomes[near]
                c = self._s.c
                out[model] = float((c * chance + float(sims @ outcomes)) / (c + float(sims.sum())))
        return out
