"""Per-provider rate limits in Redis: one budget of requests and tokens for every replica."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from router.health import RateLimiter
from router.providers.config import RateLimits


async def test_two_limiters_share_one_requests_per_minute_budget(
    redis_client: aioredis.Redis,
) -> None:
    limits = RateLimits(requests_per_min=10)
    one, two = RateLimiter(redis_client), RateLimiter(redis_client)
    waits = [await (one if i % 2 else two).try_take("p", "m", limits, 0) for i in range(16)]
    assert waits[:10] == [0.0] * 10
    assert all(5.0 <= w <= 6.01 for w in waits[10:])  # the next request refills in 6 s


async def test_tokens_per_minute_counts_each_call_s_tokens(redis_client: aioredis.Redis) -> None:
    limits = RateLimits(tokens_per_min=1000)
    limiter = RateLimiter(redis_client)
    assert await limiter.try_take("p", "m", limits, 400) == 0
    assert await limiter.try_take("p", "m", limits, 400) == 0
    wait = await limiter.try_take("p", "m", limits, 400)  # 200 left: 200 more take 12 s
    assert wait == pytest.approx(12.0, abs=0.1)
    assert await RateLimiter(redis_client).try_take("p", "m", limits, 150) == 0  # fits
    assert await limiter.try_take("p", "m", limits, 5000) > 0  # bigger than the bucket:
    # it waits for a full bucket rather than forever


async def test_the_bucket_refills_over_time(redis_client: aioredis.Redis) -> None:
    limits = RateLimits(requests_per_min=60)  # one request a second once empty
    limiter = RateLimiter(redis_client)
    taken = 0
    while (wait := await limiter.try_take("p", "m", limits, 0)) == 0:
        taken += 1
    assert 60 <= taken <= 62  # a full bucket, plus what refilled while it was drained
    assert 0 < wait <= 1.0
    await asyncio.sleep(wait + 0.02)
    assert await limiter.try_take("p", "m", limits, 0) == 0


async def test_providers_do_not_share_buckets_and_unlimited_means_no_wait(
    redis_client: aioredis.Redis,
) -> None:
    limiter = RateLimiter(redis_client)
    limits = RateLimits(requests_per_min=1)
    assert await limiter.try_take("p", "m", limits, 0) == 0
    assert await limiter.try_take("p", "m", limits, 0) > 0
    assert await limiter.try_take("q", "m", limits, 0) == 0
    for _ in range(100):
        assert await limiter.try_take("r", "m", RateLimits(), 10**6) == 0


async def test_a_retry_after_pause_holds_every_replica_and_only_grows(
    redis_client: aioredis.Redis,
) -> None:
    one, two = RateLimiter(redis_client), RateLimiter(redis_client)
    await one.pause("p", "m", 0.3)
    await one.pause("p", "m", 0.05)  # a shorter retry-after does not cut it
    wait = await two.try_take("p", "m", RateLimits(), 0)
    assert 0.2 < wait <= 0.3
    assert await two.try_take("p", "other-model", RateLimits(), 0) == 0
    started = time.monotonic()
    while await two.try_take("p", "m", RateLimits(), 0):  # noqa: ASYNC110 - Redis-held state
        await asyncio.sleep(0.02)
    assert 0.2 < time.monotonic() - started < 0.5
