"""Leases renewed off the event loop (bus.liveness), on a real redis-server.

The loop is blocked on purpose (time.sleep in a coroutine: a burst's CPU work does the same
to every beat waiting on it). Renewed from the thread, a live process's lease survives the
stall; renewed on the loop, it lapses; a loop stalled past the stall limit is taken as
wedged and its leases lapse too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedRedis
from bus.liveness import LoopLiveness, Renewal, ThreadLiveness, thread_liveness
from bus.messages import now_ms
from cost_ledger.budgets import keys
from cost_ledger.budgets.scripts import Code
from tests.test_budget_store import ACME, day_counter, make_store, tenant_budget

ZSET = "test:leases"
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
TTL_MS = 2000


@pytest.fixture
async def keeper(redis_server: EmbeddedRedis) -> AsyncIterator[ThreadLiveness]:
    """A started ThreadLiveness on the session's Redis."""
    running = thread_liveness(redis_server.url)
    running.start()
    yield running
    await running.stop()


async def _lease(redis: aioredis.Redis, member: str) -> Renewal:
    """A lease in ZSET expiring TTL_MS from now, and its renewal (every 0.3 s)."""
    seconds, micros = await redis.time()
    await redis.zadd(ZSET, {member: seconds * 1000 + micros // 1000 + TTL_MS})
    return Renewal(script=RENEW, keys=(ZSET,), args=(member, TTL_MS), every_s=0.3)


async def _expired(redis: aioredis.Redis, member: str) -> bool:
    seconds, micros = await redis.time()
    score = await redis.zscore(ZSET, member)
    assert score is not None
    return score < seconds * 1000 + micros // 1000


async def _block_loop(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - the point: a loop that runs nothing else


async def test_a_lease_survives_a_blocked_loop_when_renewed_off_the_loop(
    redis_client: aioredis.Redis, keeper: ThreadLiveness
) -> None:
    key = keeper.add(await _lease(redis_client, "thread"))
    on_loop = LoopLiveness(redis_client)
    on_loop_key = on_loop.add(await _lease(redis_client, "loop"))
    await _block_loop(2 * TTL_MS / 1000)
    keeper.remove(key)  # before the loop runs anything: the beat overdue would renew late
    on_loop.remove(on_loop_key)
    assert not await _expired(redis_client, "thread")
    assert await _expired(redis_client, "loop")  # its beats could not run
    assert keeper.renewed > 0


async def test_a_wedged_loop_lets_its_leases_lapse(redis_server: EmbeddedRedis) -> None:
    wedged = thread_liveness(redis_server.url)
    wedged.stall_limit_s = 0.5
    wedged.start()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        wedged.add(await _lease(client, "wedged"))
        await _block_loop(2 * TTL_MS / 1000)
        assert await _expired(client, "wedged")
    finally:
        await wedged.stop()
        await client.aclose()


async def test_a_lease_found_gone_stops_renewing_and_says_so(
    redis_client: aioredis.Redis, keeper: ThreadLiveness
) -> None:
    lost = asyncio.Event()
    keeper.add(await _lease(redis_client, "taken"), lost.set)
    await redis_client.zrem(ZSET, "taken")  # settled, reaped or taken by another
    await asyncio.wait_for(lost.wait(), timeout=5)
    assert await redis_client.zscore(ZSET, "taken") is None  # XX: never put back


async def test_a_budget_reservation_outlives_a_stall_longer_than_its_ttl(
    redis_client: aioredis.Redis, keeper: ThreadLiveness
) -> None:
    store = await make_store(redis_client, [tenant_budget(1000)], ttl_s=1.5, liveness=keeper)
    assert (await store.reserve("busy", ACME, 600)).code is Code.RESERVED
    held = store.hold("busy", ACME)
    await _block_loop(3.0)
    assert await store.sweep() == 0
    assert await redis_client.exists(keys.reservation("t:acme", "busy"))
    assert (await store.reserve("other", ACME, 600)).code is Code.WAIT  # its room still held
    settled = await store.settle("busy", ACME, cost=500, messages=0, at_ms=now_ms())
    assert settled.held
    store.unhold(held)
    assert await store.counter(day_counter("tenant:acme")) == (500, 0)
