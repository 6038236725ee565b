"""Per-provider rate limits in Redis: one budget of requests and tokens for every replica.

The bucket tests pass the scripts a fixed clock (now_ms), so their figures are exact and do not
depend on how fast a loaded machine runs them.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from router.health import RateLimiter
from router.providers.config import RateLimits

T0 = 5_000_000
"""A fixed clock, in milliseconds."""


async def test_two_limiters_share_one_requests_per_minute_budget(
    redis_client: aioredis.Redis,
) -> None:
    limits = RateLimits(requests_per_min=10)
    one, two = RateLimiter(redis_client), RateLimiter(redis_client)
    waits = [
        await (one if i % 2 else two).try_take("p", "m", limits, 0, now_ms=T0) for i in range(16)
    ]
    assert waits == [0.0] * 10 + [6.0] * 6  # the next request refills in 6 s
    assert await one.try_take("p", "m", limits, 0, now_ms=T0 + 5_999) == 0.001
    assert await two.try_take("p", "m", limits, 0, now_ms=T0 + 6_000) == 0


async def test_tokens_per_minute_counts_each_call_s_tokens(redis_client: aioredis.Redis) -> None:
    limits = RateLimits(tokens_per_min=1000)
    limiter = RateLimiter(redis_client)
    assert await limiter.try_take("p", "m", limits, 400, now_ms=T0) == 0
    assert await limiter.try_take("p", "m", limits, 400, now_ms=T0) == 0
    wait = await limiter.try_take("p", "m", limits, 400, now_ms=T0)
    assert wait == 12.0  # 200 left: 200 more take 12 s
    assert await RateLimiter(redis_client).try_take("p", "m", limits, 150, now_ms=T0) == 0
    # Bigger than the bucket: it waits for a full bucket rather than forever.
    assert await limiter.try_take("p", "m", limits, 5000, now_ms=T0) == 57.0
    assert await limiter.try_take("p", "m", limits, 5000, now_ms=T0 + 57_000) == 0


async def test_the_bucket_refills_over_time(redis_client: aioredis.Redis) -> None:
    limits = RateLimits(requests_per_min=60)  # one request a second once empty
    limiter = RateLimiter(redis_client)
    taken = 0
    while (wait := await limiter.try_take("p", "m", limits, 0, now_ms=T0)) == 0:
        taken += 1
    assert taken == 60 and wait == 1.0  # a full bucket, then one a second
    assert await limiter.try_take("p", "m", limits, 0, now_ms=T0 + 999) > 0
    assert await limiter.try_take("p", "m", limits, 0, now_ms=T0 + 1_000) == 0
    assert await limiter.try_take("p", "m", limits, 0, now_ms=T0 + 1_000) == 1.0


async def test_without_a_clock_the_buckets_run_on_redis_time(
    redis_client: aioredis.Redis,
) -> None:
    limits = RateLimits(requests_per_min=1)
    limiter = RateLimiter(redis_client)
    assert await limiter.try_take("p", "m", limits, 0) == 0
    assert await limiter.try_take("p", "m", limits, 0) > 30  # lower bounds only: no flake


async def test_providers_do_not_share_buckets_and_unlimited_means_no_wait(
    redis_client: aioredis.Redis,
) -> None:
    limiter = RateLimiter(redis_client)
    limits = RateLimits(requests_per_min=1)
    assert await limiter.try_take("p", "m", limits, 0, now_ms=T0) == 0
    assert await limiter.try_take("p", "m", limits, 0, now_ms=T0) == 60.0
    assert await limiter.try_take("q", "m", limits, 0, now_ms=T0) == 0
    for _ in range(100):
        assert await limiter.try_take("r", "m", RateLimits(), 10**6) == 0


async def test_a_retry_after_pause_holds_every_replica_and_only_grows(
    redis_client: aioredis.Redis,
) -> None:
    one, two = RateLimiter(redis_client), RateLimiter(redis_client)
    await one.pause("p", "m", 30)
    await one.pause("p", "m", 0.05)  # a shorter retry-after does not cut it
    wait = await two.try_take("p", "m", RateLimits(), 0)
    assert 20 < wait <= 30  # however slow this machine is, far above 0.05 s
    assert await two.try_take("p", "other-model", RateLimits(), 0) == 0
    started = time.monotonic()  # before the pause starts: it cannot end sooner than 0.1 s
    await one.pause("p", "short", 0.1)
    while await two.try_take("p", "short", RateLimits(), 0):  # noqa: ASYNC110 - Redis-held state
        await asyncio.sleep(0.02)
    assert time.monotonic() - started >= 0.09  # lower bound only (Redis's clock granularity)
