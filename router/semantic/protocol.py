"""The seams of the semantic cache: what the cache stage calls, and what the cache calls.

SemanticLookup is the interface the cache and dedup stages hold (router.stages.cache takes
any object with its get and put). SemanticCache (router.semantic.store) implements it, built
once at composition with a Redis client, the Settings and an Embedder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bus.messages import LlmRequest, LlmResult

Vectors = npt.NDArray[np.float32]
"""Unit-length embeddings, one row per text."""


class SemanticLookup(Protocol):
    """A tenant's stored answer of a request that means the same (entities equal)."""

    async def get(self, request: LlmRequest) -> LlmResult | None:
        """A hit: the cached result re-addressed to this request (its id, tenant, agent),
        lever SEMANTIC_CACHE, cost 0, baseline the naive cost of the cached answer. None on
        a miss, and always for a task type not marked safe."""
        ...

    async def put(self, request: LlmRequest, result: LlmResult) -> None:
        """Keep result as request's answer: only ok results, only for safe task types (and
        for task types that allow near-duplicates, for their short window)."""
        ...

    async def get_near_duplicate(self, request: LlmRequest) -> LlmResult | None:
        """The answer of a near-identical request (similarity >= the near-duplicate
        threshold, entities equal) stored within the window, re-addressed with lever DEDUP;
        None on a miss or for a task type that does not allow near-duplicates."""
        ...


class Embedder(Protocol):
    """Turns texts into unit-length vectors; the same text always gets the same vector."""

    @property
    def name(self) -> str:
        """The model's name, stored with each entry: vectors of two models never mix."""
        ...

    @property
    def dim(self) -> int:
        """Length of each vector."""
        ...

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads whole; a longer text is not cached semantically."""
        ...

    def token_count(self, text: str) -> int:
        """How many model tokens text takes, special tokens included."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length float32 row per text (CPU-bound: call it off the event loop)."""
        ...


class Clock(Protocol):
    """Wall-clock seconds since the epoch (time.time), a seam so tests can move time."""

    def __call__(self) -> float:
        """The current time."""
        ...
