"""The semantic cache: answers of paraphrases, kept in Redis, searched in process.

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
- A question is embedded only when a lookup needs it: a lookup in a partition that holds no
  entry embeds nothing (there is nothing to compare), and an answer is stored with its
  question's vector only if a lookup computed it already, else with the question alone,
  which each replica embeds when a lookup first searches that partition. Most partitions
  are one product's questions and are never searched again: in bench/workflow, 6 of 681
  lookups met a stored entry, and MiniLM on every eligible request was half the router's
  CPU.

Whether a lookup is served is the error bound's call (router.semantic.calibration): each
miss that a paid call then answers is an observation (would the best entry's answer have
been right?), shared through a second stream so that every replica learns from all of
them; verify() adds the outcome of a served hit (a validator, explicit feedback, a shadow
check). Each replica also counts the scores of its own lookups that a threshold decides
(Calibrator.lookup, not shared: a sample of the same traffic), so that the bound weighs
each score by how often it is served. Candidates whose question clashes with the request's
(opposite intents, different unknown names: entities.conflict) are dropped before scoring;
a best entry alike but for a word that changes the question (minimal_pairs.differs) is
refused, teaches nothing and is not counted.

Near-duplicate dedup is a mode of the same store: entries of task types that allow it are
kept at least for the window, and get_near_duplicate looks for one stored within the window
at the stricter threshold, served with lever DEDUP.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus.messages import CachePolicy, Lever, LlmRequest, LlmResult
from router.levers.served import served_copy
from router.semantic import keys, records
from router.semantic.batching import BatchEmbedder
from router.semantic.calibration import Calibrator, Scored, judge, score
from router.semantic.calibrators import MAX_CALIBRATORS, Calibrators
from router.semantic.entities import conflict, describe
from router.semantic.entity_types import Entities
from router.semantic.entry_store import EntryStore
from router.semantic.index import LocalIndex
from router.semantic.minimal_pairs import differs
from router.semantic.policy import (
    Candidate,
    Decision,
    NearDuplicatePolicy,
    TaskPolicy,
    decide_near_duplicate,
)
from router.semantic.protocol import Clock, Embedder, Vectors
from router.semantic.request_view import RequestView, answer_key, view

log = logging.getLogger(__name__)

PAID_LEVERS = frozenset(
    {Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API, Lever.TRIMMED}
)
"""Results of a paid call; a copy another lever served is never stored again."""
LOG_BATCH = 1000
"""Log records read per XREAD."""
VIEWS = 1024
"""Requests whose view is kept: a request's semantic lookup, near-duplicate lookup and store
each need it, and its entities and token count take as long as the rest of the lookup."""
VERDICT_WINDOW_S = 3600
"""How long a served hit waits in Redis for a verdict (validators answer in seconds; later
feedback is not learned from): bounds the keys a busy cache keeps, as Redis never evicts."""
PENDING = 20_000
"""Missed lookups remembered until their paid answer arrives, and entries whose wrong
answers this replica remembers."""


class _Lookup(NamedTuple):
    """One scored lookup, remembered until its outcome is known."""

    tenant: str
    task_type: str
    entry_id: str
    answer_key: str
    score: float


class SemanticCache:
    """Tenant-scoped semantic cache and near-duplicate store over Redis (see module doc)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        embedder: Embedder,
        *,
        policies: dict[str, TaskPolicy],
        near_duplicates: NearDuplicatePolicy,
        neighbours: int = 32,
        max_entries: int = 10_000,
        quotas: Mapping[str, int] | None = None,
        log_max_entries: int = 50_000,
        exact_below: int = 256,
        max_calibrators: int = MAX_CALIBRATORS,
        clock: Clock = time.time,
    ) -> None:
        self._embedder = embedder
        # Batched with other requests' embeddings (router.semantic.batching).
        self._vectors = embedder if isinstance(embedder, BatchEmbedder) else BatchEmbedder(embedder)
        self._policies = dict(policies)
        self._near = near_duplicates
        self._neighbours = neighbours
        self._clock = clock
        self._index = LocalIndex(embedder.dim, exact_below=exact_below, max_entries=log_max_entries)
        self._log_cursor = "0-0"
        self._sync_lock = asyncio.Lock()
        # The request weakly: it may be 4 MiB of earlier turns, and VIEWS of them would stay.
        self._views: OrderedDict[str, tuple[weakref.ref[LlmRequest], RequestView | None]] = (
            OrderedDict()
        )
        self._obs_cursor = "0-0"
        self._calibrators = Calibrators(max_calibrators)
        self._wrong_at: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._missed: OrderedDict[str, _Lookup] = OrderedDict()
        ttls = [p.ttl_s for p in self._policies.values()] + [near_duplicates.window_s]
        self._entries = EntryStore(
            redis,
            max_entries=max_entries,
            log_max_entries=log_max_entries,
            longest_ttl_s=max(ttls),
            quotas=quotas,
            task_types=[*self._policies, *near_duplicates.task_types],
        )

    @property
    def index(self) -> LocalIndex:
        """This replica's in-process index (for inspection and benchmarks)."""
        return self._index

    def safe(self, task_type: str) -> bool:
        """Whether the semantic cache may serve this task type."""
        return task_type in self._policies

    async def start(self) -> None:
        """Rebuild the in-process index from Redis's log before the first lookup."""
        await self.sync()

    async def get(self, request: LlmRequest) -> LlmResult | None:
        """A paraphrase's cached answer re-addressed to request (SEMANTIC_CACHE), or None."""
        policy = self._policies.get(request.task_type)
        if policy is None or request.cache_policy is not CachePolicy.DEFAULT:
            return None
        return await self._lookup(request, Lever.SEMANTIC_CACHE, policy)

    async def get_near_duplicate(self, request: LlmRequest) -> LlmResult | None:
        """A near-identical recent request's answer re-addressed to request (DEDUP), or None."""
        if request.task_type not in self._near.task_types:
            return None
        if request.cache_policy is not CachePolicy.DEFAULT:
            return None  # BYPASS and REFRESH both ask for a fresh answer
        return await self._lookup(request, Lever.DEDUP, None)

    async def put(self, request: LlmRequest, result: LlmResult) -> None:
        """Store an ok answer of a paid call, for a safe or near-duplicate task type."""
        await self.learn(request, result)
        policy = self._policies.get(request.task_type)
        near = request.task_type in self._near.task_types
        if (policy is None and not near) or request.cache_policy is CachePolicy.BYPASS:
            return
        if not result.ok or result.tool_calls or result.lever not in PAID_LEVERS:
            return
        seen = self._view(request)
        if seen is None:
            return
        ttl_s = max(policy.ttl_s if policy else 0, self._near.window_s if near else 0)
        if ttl_s <= 0:
            return
        try:  # embedded now only if a lookup did already; else when a lookup needs it
            await self._store(request, result, seen, self._vectors.known(seen.text), ttl_s)
        except RedisError as exc:
            log.warning("semantic cache store failed, answer not cached: %s", exc)

    async def learn(self, request: LlmRequest, result: LlmResult) -> bool:
        """Label request's missed lookup with its paid answer: would the best entry have been
        right? True when an observation was recorded (put calls it; call it alone for an
        answer that is not to be stored)."""
        missed = self._missed.pop(request.id, None)
        if missed is None or not result.ok or result.lever not in PAID_LEVERS:
            return False
        tenant, task_type, entry_id, key, at = missed
        await self.observe(tenant, task_type, entry_id, at, answer_key(result) == key, "miss")
        return True

    async def verify(
        self, request_id: str, correct: bool, source: str = "validator", *, tenant: str = ""
    ) -> bool:
        """Record whether a served semantic hit was right (a validator, explicit feedback or
        a shadow check said so), on any replica: the hit is kept in Redis under its request
        id until its first verdict. False when no hit of that request (of tenant, if given)
        awaits one."""
        served = await self._entries.take_served(request_id)
        if served is None:
            return False
        if tenant and served.tenant != tenant:  # another tenant's request id: never its
            await self._entries.mark_served(request_id, served, VERDICT_WINDOW_S)  # verdict
            return False
        await self.observe(
            served.tenant, served.task_type, served.entry_id, served.score, correct, source
        )
        return True

    def calibrator(self, tenant: str, task_type: str) -> Calibrator | None:
        """The observations of one tenant and task type (for inspection and benchmarks)."""
        return self._calibrators.get(tenant, task_type)

    async def candidates(self, request: LlmRequest) -> list[Candidate]:
        """The live entries of request's partition nearest to it that may answer it: no
        entity clash, no minimal pair that changes it (benchmarks, diagnostics)."""
        seen = self._view(request)
        if seen is None:
            return []
        await self.sync()
        if not self._index.holds(seen.tenant, seen.partition):
            return []
        await self._fill(seen.tenant, seen.partition)
        vector = await self._vectors.vector(seen.text)
        found = self._compatible(seen, vector, self._now_ms())
        return [c for c in found if differs(seen.words, c.words) is None]

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

    async def _lookup(
        self, request: LlmRequest, lever: Lever, policy: TaskPolicy | None
    ) -> LlmResult | None:
        started = time.monotonic()
        seen = self._view(request)
        if seen is None:
            return None
        try:
            await self.sync(wait=False)
            if not self._index.holds(seen.tenant, seen.partition):
                return None  # nothing stored to compare with: no embedding
            await self._fill(seen.tenant, seen.partition)
            vector = await self._vectors.vector(seen.text)
            now_ms = self._now_ms()
            candidates = self._compatible(seen, vector, now_ms)
            served: _Lookup | None = None
            if policy is not None:  # kept longer for near-duplicates, not served longer
                since_ms = now_ms - policy.ttl_s * 1000
                candidates = [c for c in candidates if c.created_ms > since_ms]
                decision, served = self._decide(request, seen, candidates, policy)
            else:  # a near-duplicate is never a minimal pair that changes the question
                candidates = [c for c in candidates if differs(seen.words, c.words) is None]
                decision = decide_near_duplicate(candidates, self._near, now_ms)
            if decision.entry is None:
                return None
            stored = await self._read(request.tenant, decision.entry.entry_id, seen)
            if stored is None:
                return None
            if served is not None and policy is not None:  # kept for its verdict
                await self._entries.mark_served(request.id, _served_hit(served), VERDICT_WINDOW_S)
        except RedisError as exc:
            log.warning("semantic cache lookup failed, treated as a miss: %s", exc)
            return None
        label = "semantic cache" if lever is Lever.SEMANTIC_CACHE else "near-duplicate"
        reason = (
            f"{label} hit: {decision.reason} to request {decision.entry.entry_id} "
            f"(entities {describe(seen.entities)})"
        )
        latency_ms = (time.monotonic() - started) * 1000
        return served_copy(stored.result, request, lever, reason, latency_ms)

    def _compatible(self, seen: RequestView, vector: Vectors, now_ms: int) -> list[Candidate]:
        """The nearest live entries of seen's partition that do not clash with it (opposite
        intents, different unknown names: entities.conflict). A minimal pair is not dropped
        here but refused once it is the best (_decide): dropping it would make a farther
        entry the best, and the lookup would be judged on another question."""
        nearest = self._index.nearest(seen.tenant, seen.partition, vector, self._neighbours, now_ms)
        return [
            c
            for c in nearest
            if conflict(seen.entities, Entities(actions=c.actions, unknown=c.unknown)) is None
        ]

    def _decide(
        self,
        request: LlmRequest,
        seen: RequestView,
        candidates: list[Candidate],
        policy: TaskPolicy,
    ) -> tuple[Decision, _Lookup | None]:
        """The error bound's decision, and the lookup when it is served (to keep for its
        verdict); a lookup not served is remembered so that its paid answer teaches.

        A best entry alike but for a word that changes the question (minimal_pairs.differs)
        is refused and teaches nothing: the error bound is learned over the lookups it may
        serve, and such a lookup is never one of them."""
        scored = score(candidates)
        if scored is None:
            return Decision(entry=None, reason="no cached entry with these entities"), None
        pair = differs(seen.words, scored.entry.words)
        if pair is not None:
            return Decision(entry=None, reason=f"nearest entry is a minimal pair: {pair}"), None
        tenant, task_type = request.tenant, request.task_type
        calibrator = self._calibrators.of(tenant, task_type)
        if scored.entry.similarity >= policy.threshold:
            calibrator.lookup(scored.score)  # the traffic a threshold would serve from
        verdict = judge(
            scored,
            calibrator,
            error_bound=policy.error_bound,
            confidence=policy.confidence,
            entry_wrong_at=self._wrong_at.get((tenant, scored.entry.entry_id)),
            min_similarity=policy.threshold,
        )
        lookup = _remember(request, scored)
        if verdict.serve:
            return Decision(entry=scored.entry, reason=verdict.reason), lookup
        self._miss(request.id, lookup)
        return Decision(entry=None, reason=verdict.reason), None

    def _miss(self, request_id: str, lookup: _Lookup) -> None:
        """Remember a lookup not served until its paid answer labels it (learn)."""
        self._missed[request_id] = lookup
        while len(self._missed) > PENDING:
            self._missed.popitem(last=False)

    async def observe(
        self, tenant: str, task_type: str, entry_id: str, at: float, correct: bool, source: str
    ) -> None:
        """Share one verified outcome (score at, right or wrong) with every replica."""
        observation = records.Observation(
            tenant=tenant,
            task_type=task_type,
            entry_id=entry_id,
            score=at,
            correct=correct,
            source=source,
        )
        try:
            await self._entries.observe(observation)
        except RedisError as exc:
            log.warning("semantic cache observation not shared: %s", exc)
            self._fold(records.encode(observation))  # this replica learns it at least

    def _fold(self, raw: bytes | None) -> None:
        observation = records.decode_observation(raw) if raw is not None else None
        if observation is None:
            return
        calibrator = self._calibrators.of(observation.tenant, observation.task_type)
        calibrator.observe(observation.score, observation.correct)
        if not observation.correct:
            key = (observation.tenant, observation.entry_id)
            self._wrong_at[key] = max(self._wrong_at.get(key, -1.0), observation.score)
            self._wrong_at.move_to_end(key)
            if len(self._wrong_at) > PENDING:
                self._wrong_at.popitem(last=False)

    def _view(self, request: LlmRequest) -> RequestView | None:
        kept = self._views.get(request.id)
        if kept is not None and kept[0]() is request:  # the same request, not a changed copy
            return kept[1]
        seen = view(request, self._embedder.name)
        if seen is not None and self._embedder.token_count(seen.text) > self._embedder.max_tokens:
            seen = None
        self._views[request.id] = (weakref.ref(request), seen)
        if len(self._views) > VIEWS:
            self._views.popitem(last=False)
        return seen

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


def _remember(request: LlmRequest, scored: Scored) -> _Lookup:
    return _Lookup(
        tenant=request.tenant,
        task_type=request.task_type,
        entry_id=scored.entry.entry_id,
        answer_key=scored.entry.answer_key,
        score=scored.score,
    )


def _served_hit(lookup: _Lookup) -> records.ServedHit:
    return records.ServedHit(
        tenant=lookup.tenant,
        task_type=lookup.task_type,
        entry_id=lookup.entry_id,
        answer_key=lookup.answer_key,
        score=lookup.score,
    )
