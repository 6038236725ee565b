"""RateLimiter: each provider's requests and tokens per minute, shared by every replica.

A token bucket pair per provider in Redis (router.health.scripts.TAKE): a bucket holds a
minute's allowance and refills continuously, so a provider's limit holds across replicas.
A 429's retry-after pauses its provider+model for every replica the same way.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from router.health import keys, scripts
from router.providers.config import RateLimits

log = logging.getLogger(__name__)


class RateLimiter:
    """Takes capacity from a provider's shared buckets, or says how long to wait for it."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._take = redis.register_script(scripts.TAKE)
        self._pause = redis.register_script(scripts.PAUSE)

    async def try_take(
        self,
        provider: str,
        model: str,
        limits: RateLimits,
        tokens: int,
        *,
        now_ms: int | None = None,
    ) -> float:
        """Take one request and tokens; 0.0 when taken, else seconds to wait (nothing taken).
        now_ms: a fixed clock for the buckets (Redis TIME if None)."""
        clock = [] if now_ms is None else [int(now_ms)]
        try:
            wait_ms = await self._take(
                keys=[keys.bucket(provider), keys.pause(provider, model)],
                args=[
                    limits.requests_per_min or 0,
                    limits.tokens_per_min or 0,
                    max(tokens, 0),
                    *clock,
                ],
            )
        except RedisError:
            log.warning("rate limit of %s unknown: Redis failed", provider, exc_info=True)
            return 0.0
        return int(wait_ms) / 1000

    async def pause(self, provider: str, model: str, seconds: float) -> None:
        """Hold every replica's calls to provider+model for seconds (a 429's retry-after)."""
        if seconds <= 0:
            return
        try:
            # Only ever lengthened: a short retry-after must not cut a longer one.
            ms = max(int(seconds * 1000), 1)
            await self._pause(keys=[keys.pause(provider, model)], args=[ms])
        except RedisError:
            log.warning("pause of %s/%s not shared", provider, model, exc_info=True)
