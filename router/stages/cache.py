"""Exact and semantic cache: answer from a stored result of the same request (tenant-scoped).

Entries live in Redis under the tenant's own keys, with a TTL per task type. The embedded
Redis runs with noeviction (ledger and budget keys are money), so the cache bounds itself:
a per-tenant sorted set holds each entry's last use, and a put that takes the tenant over
its bound deletes the least recently used entries, in the same Lua script. A hit costs
nothing and keeps the stored answer's naive baseline, so the ledger shows what it saved.
Only ok answers of paid calls are stored, and never answers that call tools.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bus.codec import decode, encode
from bus.errors import WireError
from bus.messages import CachePolicy, Lever, LlmRequest, LlmResult
from router import keys
from router.context import RequestContext
from router.levers.served import served_copy
from router.pipeline import Handler

log = logging.getLogger(__name__)

STORED_LEVERS = frozenset({Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API})
"""Results of a paid call; what other levers served is a copy and is not stored again."""

# KEYS[1] entry, KEYS[2] tenant index. ARGV: value, ttl ms, now us, fingerprint, max entries,
# longest ttl ms, entry key prefix. Returns how many entries were evicted. The index scores are
# microseconds of last use: entries unused for longer than the longest TTL have expired.
_PUT_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - 1000 * tonumber(ARGV[6]))
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if excess > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #gone, 2 do
    redis.call('DEL', ARGV[7] .. gone[i])
  end
else
  excess = 0
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return excess
"""

# KEYS[1] entry, KEYS[2] tenant index. ARGV: now us, fingerprint. Returns the entry or nil.
_GET_LUA = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return value
"""


def _now_us() -> int:
    return time.time_ns() // 1000


class SemanticStore(Protocol):
    """A semantic cache: a stored answer of a request that means the same, for the same tenant."""

    async def get(self, request: LlmRequest) -> LlmResult | None:
        """A stored result that answers request, or None."""
        ...

    async def put(self, request: LlmRequest, result: LlmResult) -> None:
        """Keep result as the answer of request."""
        ...


class ShadowCheck(Protocol):
    """Re-asks a served semantic hit off the response path (router.semantic.shadow)."""

    def start(self, ctx: RequestContext, cached: LlmResult, call_next: Handler) -> bool:
        """Begin a check of the hit when it is chosen, without waiting for it."""
        ...

    async def drain(self) -> None:
        """Wait for the checks under way."""
        ...


class ExactCache:
    """Stored results by (tenant, fingerprint), bounded per tenant, least recently used evicted."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl_s: Mapping[str, int],
        default_ttl_s: int,
        max_entries: int,
    ) -> None:
        self._ttl_s = dict(ttl_s)
        self._default_ttl_s = default_ttl_s
        self._max_entries = max_entries
        self._longest_ms = max([default_ttl_s, *self._ttl_s.values()]) * 1000
        self._put = redis.register_script(_PUT_LUA)
        self._get = redis.register_script(_GET_LUA)

    def ttl_s(self, task_type: str) -> int:
        """How long an answer of this task type is kept; 0 means it is not cached."""
        return self._ttl_s.get(task_type, self._default_ttl_s)

    async def get(self, tenant: str, fingerprint: str) -> LlmResult | None:
        """The tenant's stored result for fingerprint, refreshing its last use; None on a miss."""
        entry, index = keys.cache_entry(tenant, fingerprint), keys.cache_index(tenant)
        raw = await self._get(keys=[entry, index], args=[_now_us(), fingerprint])
        if raw is None:
            return None
        try:
            return decode(raw, LlmResult)
        except WireError:
            log.warning("dropping an unreadable exact-cache entry %s", entry)
            return None

    async def put(self, tenant: str, fingerprint: str, result: LlmResult, task_type: str) -> int:
        """Store result for its TTL; returns how many old entries the bound evicted."""
        ttl_s = self.ttl_s(task_type)
        if ttl_s <= 0:
            return 0
        entry, index = keys.cache_entry(tenant, fingerprint), keys.cache_index(tenant)
        prefix = entry[: -len(fingerprint)]
        args: list[bytes | str | int] = [encode(result), ttl_s * 1000, _now_us(), fingerprint]
        args += [self._max_entries, self._longest_ms, prefix]
        evicted = await self._put(keys=[entry, index], args=args)
        return int(evicted)


class CacheStage:
    """Exact cache first, then the semantic one if configured; stores fresh ok answers."""

    name = "cache"

    def __init__(
        self,
        *,
        key: Callable[[LlmRequest], str],
        exact: ExactCache | None,
        semantic: SemanticStore | None = None,
        shadow: ShadowCheck | None = None,
    ) -> None:
        self._key = key
        self._exact = exact
        self._semantic = semantic
        self._shadow = shadow

    async def close(self) -> None:
        """Wait for the shadow checks of served hits under way (the service is stopping)."""
        if self._shadow is not None:
            await self._shadow.drain()

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """A stored answer when there is one, else the rest's answer (stored if it may be)."""
        request = ctx.request
        if request.cache_policy is CachePolicy.BYPASS:
            return await call_next(ctx)
        fingerprint = self._key(request)
        if request.cache_policy is CachePolicy.DEFAULT:
            hit = await self._lookup(request, fingerprint, ctx.disabled_levers)
            if hit is not None:
                stored, lever = hit
                if lever is Lever.SEMANTIC_CACHE and self._shadow is not None:
                    self._shadow.start(ctx, stored, call_next)  # off the response path
                if stored.request_id == request.id:
                    return stored  # already addressed (semantic), or a redelivery's own result
                reason = (
                    f"{lever.value.replace('_', ' ')} hit (answer of request {stored.request_id})"
                )
                return served_copy(stored, request, lever, reason, ctx.elapsed_ms())
        result = await call_next(ctx)
        if result.ok and result.lever in STORED_LEVERS and not result.tool_calls:
            await self._store(request, fingerprint, result, ctx.disabled_levers)
        return result

    async def _lookup(
        self, request: LlmRequest, fingerprint: str, off: frozenset[Lever] = frozenset()
    ) -> tuple[LlmResult, Lever] | None:
        try:  # off: the levers a flag switched off for this request
            if self._exact is not None and Lever.EXACT_CACHE not in off:
                stored = await self._exact.get(request.tenant, fingerprint)
                if stored is not None and stored.tenant == request.tenant and stored.ok:
                    return stored, Lever.EXACT_CACHE
            if self._semantic is not None and Lever.SEMANTIC_CACHE not in off:
                similar = await self._semantic.get(request)
                if similar is not None and similar.tenant == request.tenant and similar.ok:
                    return similar, Lever.SEMANTIC_CACHE
        except RedisError as exc:  # a cache that is down is a miss, not a failed request
            log.warning("cache lookup failed, treated as a miss: %s", exc)
        return None

    async def _store(
        self, request: LlmRequest, fingerprint: str, result: LlmResult, off: frozenset[Lever]
    ) -> None:
        try:  # off: an arm without a cache must not fill it for the other arm either
            if self._exact is not None and Lever.EXACT_CACHE not in off:
                await self._exact.put(request.tenant, fingerprint, result, request.task_type)
            if self._semantic is not None and Lever.SEMANTIC_CACHE not in off:
                await self._semantic.put(request, result)
        except RedisError as exc:
            log.warning("cache store failed, answer not cached: %s", exc)
