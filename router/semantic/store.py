"""The semantic cache: answers of paraphrases, kept in Redis, searched in process.

SemanticCache is built of three parts, each in its own module: this one answers lookups and
stores answers; syncing.py keeps Redis and each replica's in-process index in step (where
things live, and why); learning.py holds the error bound that decides whether a lookup is
served, and the outcomes it learns from.

A question is embedded only when a lookup needs it: a lookup in a partition that holds no
entry embeds nothing (there is nothing to compare), and an answer is stored with its
question's vector only if a lookup computed it already, else with the question alone,
which each replica embeds when a lookup first searches that partition. Most partitions
are one product's questions and are never searched again: in bench/workflow, 6 of 681
lookups met a stored entry, and MiniLM on every eligible request was half the router's
CPU.

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

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus.messages import CachePolicy, Lever, LlmRequest, LlmResult
from router.levers.served import served_copy
from router.semantic.batching import BatchEmbedder
from router.semantic.calibrators import MAX_CALIBRATORS, Calibrators
from router.semantic.entities import conflict, describe
from router.semantic.entity_types import Entities
from router.semantic.entry_store import EntryStore
from router.semantic.index import LocalIndex
from router.semantic.learning import PAID_LEVERS, VERDICT_WINDOW_S, Lookup, served_hit
from router.semantic.minimal_pairs import differs
from router.semantic.policy import (
    Candidate,
    NearDuplicatePolicy,
    TaskPolicy,
    decide_near_duplicate,
)
from router.semantic.protocol import Clock, Embedder, Vectors
from router.semantic.request_view import RequestView, view
from router.semantic.syncing import Syncing

log = logging.getLogger(__name__)

VIEWS = 1024
"""Requests whose view is kept: a request's semantic lookup, near-duplicate lookup and store
each need it, and its entities and token count take as long as the rest of the lookup."""


class SemanticCache(Syncing):
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
        self._missed: OrderedDict[str, Lookup] = OrderedDict()
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
            served: Lookup | None = None
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
                await self._entries.mark_served(request.id, served_hit(served), VERDICT_WINDOW_S)
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
