"""The in-process vector index of one replica: one small index per (tenant, partition).

A partition holds only entries that may answer each other (same tenant, task type,
instructions and entities), so a lookup searches exactly the entries it could use, and no
search can ever reach another tenant's vectors. Most partitions are tiny (one order id, one
product), so a partition is searched exhaustively until it reaches `exact_below` entries,
then moves to an HNSW graph (usearch, cosine metric); the large ones are the questions with
no entities (support FAQs). Entries older than their TTL are never returned.

The index is a cache of what Redis holds (router.semantic.syncing rebuilds and refreshes it);
it is bounded by `max_entries`, the oldest dropped first. An entry may be held before its
vector is known (pending, with its question): the store embeds a partition's pending
questions only when a lookup first searches that partition, since most partitions are
never searched again (one product's questions).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from usearch.index import Index

from router.semantic.policy import Candidate
from router.semantic.protocol import Vectors

Slot = tuple[str, str]
"""(tenant, partition)."""
EntryKey = tuple[str, str]
"""(tenant, entry id): entry ids are scoped by tenant, so one tenant cannot shadow another's."""


@dataclass(frozen=True, kw_only=True)
class EntryMeta:
    """What a lookup needs to know of an entry without reading Redis."""

    tenant: str
    entry_id: str
    partition: str
    answer_key: str
    created_ms: int
    expires_ms: int
    actions: frozenset[str] = frozenset()
    unknown: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()


class PartitionIndex:
    """The vectors of one partition: exhaustive search while small, HNSW once large."""

    def __init__(self, dim: int, exact_below: int) -> None:
        self._dim = dim
        self._exact_below = exact_below
        self._labels: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._vectors: dict[int, Vectors] = {}
        self._matrix: Vectors | None = None
        self._matrix_labels: list[int] = []
        self._hnsw: Index | None = None
        self._next = 0

    def __len__(self) -> int:
        """Entries held."""
        return len(self._labels)

    @property
    def uses_hnsw(self) -> bool:
        """Whether searches go through the HNSW graph."""
        return self._hnsw is not None

    def add(self, entry_id: str, vector: Vectors) -> None:
        """Add (or replace) an entry's vector."""
        self.remove(entry_id)
        label = self._next
        self._next += 1
        self._labels[entry_id] = label
        self._ids[label] = entry_id
        self._vectors[label] = vector
        self._matrix = None
        if self._hnsw is not None:
            self._hnsw.add(label, vector)
        elif len(self._labels) >= self._exact_below:
            self._build_hnsw()

    def remove(self, entry_id: str) -> None:
        """Forget an entry; nothing happens if it is not there."""
        label = self._labels.pop(entry_id, None)
        if label is None:
            return
        del self._ids[label]
        del self._vectors[label]
        self._matrix = None
        if self._hnsw is not None:
            self._hnsw.remove(label)

    def search(self, vector: Vectors, count: int) -> list[tuple[str, float]]:
        """Up to count (entry id, cosine similarity), most similar first."""
        if not self._labels or count <= 0:
            return []
        if self._hnsw is not None:
            matches = self._hnsw.search(vector, min(count, len(self._labels)))
            return [
                (self._ids[int(label)], 1.0 - float(distance))
                for label, distance in zip(matches.keys, matches.distances, strict=True)
                if int(label) in self._ids
            ]
        if self._matrix is None:
            self._matrix_labels = list(self._vectors)
            self._matrix = np.stack([self._vectors[label] for label in self._matrix_labels])
        similarities = self._matrix @ vector
        order = np.argsort(-similarities, kind="stable")[:count]
        return [(self._ids[self._matrix_labels[i]], float(similarities[i])) for i in order.tolist()]

    def _build_hnsw(self) -> None:
        index = Index(ndim=self._dim, metric="cos", dtype="f32")
        labels = np.fromiter(self._vectors, dtype=np.uint64, count=len(self._vectors))
        index.add(labels, np.stack(list(self._vectors.values())), threads=1)
        self._hnsw = index


class LocalIndex:
    """Every partition this replica knows, with each entry's metadata, bounded in size."""

    def __init__(self, dim: int, *, exact_below: int, max_entries: int) -> None:
        self._dim = dim
        self._exact_below = exact_below
        self._max_entries = max_entries
        self._partitions: dict[Slot, PartitionIndex] = {}
        self._pending: dict[Slot, dict[str, str]] = {}
        self._meta: OrderedDict[EntryKey, EntryMeta] = OrderedDict()

    def __len__(self) -> int:
        """Entries held across all partitions."""
        return len(self._meta)

    def __contains__(self, key: object) -> bool:
        """Whether a (tenant, entry id) is held."""
        return key in self._meta

    def meta(self, tenant: str, entry_id: str) -> EntryMeta | None:
        """An entry's metadata, if held."""
        return self._meta.get((tenant, entry_id))

    def partition(self, tenant: str, partition: str) -> PartitionIndex | None:
        """One partition's index, if it has entries with vectors."""
        return self._partitions.get((tenant, partition))

    def holds(self, tenant: str, partition: str) -> bool:
        """Whether one partition has any entry, with its vector or pending."""
        slot = (tenant, partition)
        return slot in self._partitions or slot in self._pending

    def pending(self, tenant: str, partition: str, now_ms: int) -> list[tuple[str, str]]:
        """One partition's live entries still without a vector: (entry id, question) pairs;
        expired ones are forgotten, not handed out to be embedded."""
        waiting = list(self._pending.get((tenant, partition), {}).items())
        live = []
        for entry_id, question in waiting:
            if self._meta[(tenant, entry_id)].expires_ms <= now_ms:
                self.remove(tenant, entry_id)
            else:
                live.append((entry_id, question))
        return live

    def add_pending(self, meta: EntryMeta, question: str) -> None:
        """Add an entry whose vector is not known yet (fill() adds it once embedded),
        dropping the oldest entries beyond the bound."""
        key = (meta.tenant, meta.entry_id)
        self.remove(*key)
        self._pending.setdefault((meta.tenant, meta.partition), {})[meta.entry_id] = question
        self._meta[key] = meta
        self._bound()

    def fill(self, tenant: str, entry_id: str, vector: Vectors) -> None:
        """Give a pending entry its vector; nothing if it is not pending (any more)."""
        meta = self._meta.get((tenant, entry_id))
        if meta is None:
            return
        slot = (tenant, meta.partition)
        if entry_id not in self._pending.get(slot, {}):
            return
        self._drop_pending(slot, entry_id)
        index = self._partitions.get(slot)
        if index is None:
            index = self._partitions[slot] = PartitionIndex(self._dim, self._exact_below)
        index.add(entry_id, vector)

    def add(self, meta: EntryMeta, vector: Vectors) -> None:
        """Add an entry, dropping the oldest entries beyond the bound."""
        key = (meta.tenant, meta.entry_id)
        self.remove(*key)
        slot = (meta.tenant, meta.partition)
        index = self._partitions.get(slot)
        if index is None:
            index = self._partitions[slot] = PartitionIndex(self._dim, self._exact_below)
        index.add(meta.entry_id, vector)
        self._meta[key] = meta
        self._bound()

    def _bound(self) -> None:
        while len(self._meta) > self._max_entries:
            tenant, entry_id = next(iter(self._meta))
            self.remove(tenant, entry_id)

    def remove(self, tenant: str, entry_id: str) -> None:
        """Forget an entry (expired, evicted, or gone from Redis)."""
        meta = self._meta.pop((tenant, entry_id), None)
        if meta is None:
            return
        slot = (tenant, meta.partition)
        if entry_id in self._pending.get(slot, {}):
            self._drop_pending(slot, entry_id)
            return
        index = self._partitions[slot]
        index.remove(entry_id)
        if not len(index):
            del self._partitions[slot]

    def _drop_pending(self, slot: Slot, entry_id: str) -> None:
        waiting = self._pending[slot]
        del waiting[entry_id]
        if not waiting:
            del self._pending[slot]

    def nearest(
        self, tenant: str, partition: str, vector: Vectors, count: int, now_ms: int
    ) -> list[Candidate]:
        """The live entries of one tenant's partition nearest to vector, most similar first."""
        index = self._partitions.get((tenant, partition))
        if index is None:
            return []
        found: list[Candidate] = []
        expired: list[str] = []
        for entry_id, similarity in index.search(vector, count):
            meta = self._meta[(tenant, entry_id)]
            if meta.expires_ms <= now_ms:
                expired.append(entry_id)
                continue
            found.append(
                Candidate(
                    entry_id=entry_id,
                    similarity=similarity,
                    answer_key=meta.answer_key,
                    created_ms=meta.created_ms,
                    actions=meta.actions,
                    unknown=meta.unknown,
                    words=meta.words,
                )
            )
        for entry_id in expired:
            self.remove(tenant, entry_id)
        return found
