"""Nearest recorded outcomes: each model's chance moved toward what it did on similar prompts.

A replica keeps, per (task type, model), the prompt vectors (the static vectors the
difficulty prediction reads, router.routing.predict) and outcomes of the last ``memory``
answers a verdict is known of. The route stage remembers each routed request's vector by
request id (the last ``pending`` of them); a verdict naming that request id (an agent's
validator or explicit feedback, a failed cascade rung, a shadow evaluation) then files the
vector under the answering model with its outcome, once per model and kind of verdict.
Past one replica (router.routing.neighbour_share): every replica hears every verdict, the
one that routed the request files it, and what it files reaches the other replicas and
outlives restarts through a bounded Redis stream.

A model's chance on a new prompt becomes ``(c * chance + sum(w * y)) / (c + sum(w))``
over its k most similar remembered prompts, w the cosine similarity (clipped at 0) to the
power ``power``: the prediction counts as c answers, so a model with few or distant
neighbours keeps it, and one that failed on prompts like this loses them. k, c and power
are what bench/routing's calibration chooses on every public dataset (``NeighbourSettings``
defaults); held out, they lifted the online router's mean APGR from 0.56 to 0.65
(docs/routing.md).

Memory: ``memory`` x dimensions x 4 bytes per (task type, model) pair with a verdict
(256 KB at 256 x 256), at most ``rings`` pairs in all (task types and model names come
from messages), plus ``pending`` vectors (2 MB at 2,048). Reading it is one
matrix-vector product over the task type's rings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

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
    rings: int = 256
    """(task type, model) pairs kept in all: task types and model names come from messages,
    so an outcome for a pair beyond this is not kept (64 MB at most at 256 x 256)."""

    def __post_init__(self) -> None:
        if min(self.k, self.memory, self.pending, self.rings) < 1:
            raise ValueError("k, memory, pending and rings must be at least 1")
        if self.c <= 0 or self.power <= 0:
            raise ValueError("c and power must be positive")


class _TaskRings:
    """One task type's last outcomes, one ring per model, stacked so one product reads all."""

    def __init__(self, size: int, dims: int) -> None:
        self.size = size
        self.rows: dict[str, int] = {}
        self.vectors = np.zeros((0, size, dims), dtype=np.float32)
        self.outcomes = np.zeros((0, size), dtype=np.float32)
        self.counts = np.zeros(0, dtype=np.int64)

    def add(self, model: str, vector: np.ndarray, outcome: float) -> None:
        row = self.rows.get(model)
        if row is None:  # a new model on this task type: grow by one ring (rare)
            row = self.rows[model] = len(self.counts)
            dims = self.vectors.shape[2]
            self.vectors = np.concatenate(
                [self.vectors, np.zeros((1, self.size, dims), np.float32)]
            )
            self.outcomes = np.concatenate([self.outcomes, np.zeros((1, self.size), np.float32)])
            self.counts = np.append(self.counts, 0)
        slot = int(self.counts[row] % self.size)
        self.vectors[row, slot] = vector
        self.outcomes[row, slot] = outcome
        self.counts[row] += 1

    def filled(self, model: str) -> int:
        row = self.rows.get(model)
        return 0 if row is None else int(min(self.counts[row], self.size))


Filed = Callable[[str, str, np.ndarray, float], None]
"""Told of each outcome filed here: task type, model, prompt vector, outcome (0 to 1)."""


@dataclass(slots=True)
class _Pending:
    task_type: str
    vector: np.ndarray
    filed: set[tuple[str, str]] = field(default_factory=set)
    """(model, kind of verdict) pairs filed for this request."""


class OutcomeMemory:
    """A replica's recorded outcomes by prompt vector, per (task type, model) (module doc)."""

    def __init__(self, settings: NeighbourSettings | None = None) -> None:
        self._s = settings or NeighbourSettings()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._tasks: dict[str, _TaskRings] = {}
        self._rings = 0  # (task type, model) pairs kept, over every task type
        self._lock = threading.Lock()  # signals may land on other threads (tests, tools)
        self._listeners: list[Filed] = []

    @property
    def settings(self) -> NeighbourSettings:
        """How this memory reads and keeps outcomes."""
        return self._s

    def remember(self, request_id: str, task_type: str, vector: np.ndarray) -> None:
        """Keep a routed request's prompt vector until a verdict on it arrives."""
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            self._pending[request_id] = _Pending(task_type, flat)
            self._pending.move_to_end(request_id)
            if len(self._pending) > self._s.pending:
                self._pending.popitem(last=False)

    def listen(self, filed: Filed) -> None:
        """Also tell filed of every outcome observe() files (not of those add() is given)."""
        self._listeners.append(filed)

    def observe(
        self, request_id: str, model: str, good: bool | float, kind: str = "validator"
    ) -> bool:
        """File a verdict on a request this replica routed under the answering model; False
        when the request is not known here (routed elsewhere, or long ago), or a verdict of
        this kind on this model was filed for it already (a redelivery, a repeated signal)."""
        with self._lock:
            known = self._pending.get(request_id)
            if known is None or not model or (model, kind) in known.filed:
                return False
            if not self._file(known.task_type, model, known.vector, float(good)):
                return False
            known.filed.add((model, kind))
        for filed in self._listeners:
            filed(known.task_type, model, known.vector, float(good))
        return True

    def add(self, task_type: str, model: str, vector: np.ndarray, outcome: float) -> bool:
        """File an outcome another replica filed (router.routing.neighbour_share); False
        when it is not kept (the rings are full, or its vector has other dimensions)."""
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            rings = self._tasks.get(task_type)
            if rings is not None and rings.vectors.shape[2] != len(flat):
                return False  # a replica on another embedding: not comparable
            return self._file(task_type, model, flat, outcome)

    def _file(self, task_type: str, model: str, vector: np.ndarray, outcome: float) -> bool:
        rings = self._tasks.get(task_type)
        new_ring = rings is None or model not in rings.rows
        if new_ring and self._rings >= self._s.rings:
            return False  # full: a hostile stream of names grows nothing
        if rings is None or rings.vectors.shape[2] != len(vector):
            if rings is not None:
                self._rings -= len(rings.rows)
            rings = self._tasks[task_type] = _TaskRings(self._s.memory, len(vector))
            new_ring = True
        self._rings += new_ring
        rings.add(model, vector, outcome)
        return True

    def recorded(self, task_type: str, model: str) -> int:
        """How many outcomes of a model on a task type are kept."""
        with self._lock:
            rings = self._tasks.get(task_type)
            return 0 if rings is None else rings.filled(model)

    def blend(
        self, task_type: str, vector: np.ndarray, chances: Mapping[str, float]
    ) -> dict[str, float]:
        """Each model's chance moved toward its nearest recorded outcomes (module doc)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        out = dict(chances)
        with self._lock:
            rings = self._tasks.get(task_type)
            if rings is None or len(query) != rings.vectors.shape[2]:
                return out
            known = [(m, rings.rows[m]) for m in chances if m in rings.rows]
            if not known:
                return out
            size = rings.size
            # One product for every model's ring (no copy), then each model's own rows.
            every = (rings.vectors.reshape(-1, len(query)) @ query).reshape(-1, size)
            rows = np.array([row for _, row in known])
            sims = every[rows].clip(0.0) ** self._s.power
            filled = np.minimum(rings.counts[rows], size)
            sims[np.arange(size)[None, :] >= filled[:, None]] = 0.0
            outcomes = rings.outcomes[rows]
        k = self._s.k
        if size > k:
            near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            sims = np.take_along_axis(sims, near, 1)
            outcomes = np.take_along_axis(outcomes, near, 1)
        weight = sims.sum(1)
        moved = (sims * outcomes).sum(1)
        c = self._s.c
        for (model, _), w, y in zip(known, weight, moved, strict=True):
            out[model] = (c * chances[model] + float(y)) / (c + float(w))
        return out
