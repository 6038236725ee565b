"""Where the semantic cache's state lives, and how each replica keeps up with it. Part of
SemanticCache (store.py), which sets the attributes declared here.

Where things live, and why:
- Redis holds the truth, shared by every router replica: each entry under its tenant's own
  key (vector, question, cached result, TTL), a per-tenant sorted set that bounds the
  tenant's entries (the oldest are deleted in the same Lua script that stores a new one, as
  the embedded Redis never evicts), and one stream, the log, of every entry's vector and
  metadata without its answer.
- Each replica keeps an in-process index (router.semantic.index) built from the log: on
  start it reads the whole log, and before every lookup it reads what was added since (one
  non-blocking XREAD), so an answer stored by one replica serves the next request on any
  other. The embedded Redis 6.2 has no vector search module, and an in-process HNSW answers
  in microseconds; Redis stays the only state, so a replica can die at any time.
- A hit is read from Redis, never from memory: an entry evicted or expired there is gone.
"""

from __future__ import annotations

import asyncio

from bus.messages import LlmRequest, LlmResult
from router.semantic import keys, records
from router.semantic.batching import BatchEmbedder
from router.semantic.entities import describe
from router.semantic.index import LocalIndex
from router.semantic.learning import Learning
from router.semantic.protocol import Clock, Embedder, Vectors
from router.semantic.request_view import RequestView, answer_key

LOG_BATCH = 1000
"""Log records read per XREAD."""


class Syncing(Learning):
    """SemanticCache's reads and writes of Redis, and the in-process index that follows them."""

    _embedder: Embedder
    _vectors: BatchEmbedder
    _clock: Clock
    _index: LocalIndex
    _log_cursor: str
    _obs_cursor: str
    _sync_lock: asyncio.Lock

    async def start(self) -> None:
        """Rebuild the in-process index from Redis's log before the first lookup."""
        await self.sync()

    async def sync(self, *, wait: bool = True) -> int:
        """Add the entries other replicas stored since the last sync; returns how many.

        With wait=False (lookups) it returns at once when another sync is already reading:
        concurrent lookups do not queue behind one another for the same records.
        """
        if not wait and self._sync_lock.locked():
            return 0
        async with self._sync_lock:
            added = 0
            while True:
                messages = await self._entries.read_log(self._log_cursor, LOG_BATCH)
                for message_id, raw in messages:
                    self._log_cursor = message_id
                    added += self._learn(raw)
                if len(messages) < LOG_BATCH:
                    break
            while True:
                messages = await self._entries.read_log(
                    self._obs_cursor, LOG_BATCH, keys.OBSERVATIONS
                )
                for message_id, raw in messages:
                    self._obs_cursor = message_id
                    self._fold(raw)
                if len(messages) < LOG_BATCH:
                    return added

    async def _fill(self, tenant: str, partition: str) -> None:
        """Embed the partition's pending questions (together, batched with other requests'
        embeddings) and index them."""
        pending = self._index.pending(tenant, partition, self._now_ms())
        if not pending:
            return
        vectors = await asyncio.gather(*(self._vectors.vector(question) for _, question in pending))
        for (entry_id, _), vector in zip(pending, vectors, strict=True):
            self._index.fill(tenant, entry_id, vector)

    async def _read(
        self, tenant: str, entry_id: str, seen: RequestView
    ) -> records.StoredEntry | None:
        entry = await self._entries.read(tenant, entry_id)
        if (
            entry is None
            or entry.record.tenant != tenant
            or entry.record.partition != seen.partition
            or entry.result.tenant != tenant
            or not entry.result.ok
        ):
            self._index.remove(tenant, entry_id)  # expired, evicted or unreadable
            return None
        return entry

    async def _store(
        self,
        request: LlmRequest,
        result: LlmResult,
        seen: RequestView,
        vector: Vectors | None,
        ttl_s: int,
    ) -> None:
        created_ms = self._now_ms()
        record = records.LogRecord(
            tenant=request.tenant,
            entry_id=request.id,
            task_type=request.task_type,
            partition=seen.partition,
            answer_key=answer_key(result),
            created_ms=created_ms,
            expires_ms=created_ms + ttl_s * 1000,
            model=self._embedder.name,
            vector=b"" if vector is None else records.vector_bytes(vector),
            v=records.RECORD_VERSION if vector is not None else records.QUESTION_VERSION,
            actions=sorted(seen.entities.actions),
            unknown=sorted(seen.entities.unknown),
            words=list(seen.words),
            question="" if vector is not None else seen.text,
        )
        entry = records.StoredEntry(
            record=record, question=seen.text, entities=describe(seen.entities), result=result
        )
        await self._entries.put(entry, ttl_s)
        if vector is None:
            self._index.add_pending(record.meta(), seen.text)
        else:
            self._index.add(record.meta(), vector)

    def _learn(self, raw: bytes | None) -> int:
        record = records.decode_log(raw) if raw is not None else None
        if record is None or record.model != self._embedder.name:
            return 0
        if record.expires_ms <= self._now_ms():
            return 0
        held = self._index.meta(record.tenant, record.entry_id)
        if held is not None and held.created_ms == record.created_ms:
            return 0  # this replica stored it, or read it already
        if record.vector:
            self._index.add(record.meta(), record.array())
        elif record.question:
            self._index.add_pending(record.meta(), record.question)
        else:
            return 0
        return 1

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
