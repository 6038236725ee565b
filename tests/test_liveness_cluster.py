"""Leases renewed off the loop on a Redis Cluster with a primary that hangs (bus.liveness).

Each renewal there is its own call (cluster pipelines take no scripts). Made one after the
other in one thread, one primary that stopped answering held up every lease behind it and
leases on healthy primaries lapsed (found by a review helper); on a pool of threads, only its
own leases wait. Its own module: it reconfigures and SIGSTOPs a primary of its own cluster.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bus.embedded.redis_cluster import EmbeddedRedisCluster
from bus.liveness import LoopLiveness, Renewal, thread_liveness
from bus.redis_client import make_redis
from tests.test_liveness import RENEW


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[EmbeddedRedisCluster]:
    """Three primaries of this module's own (one is reconfigured and stopped)."""
    running = EmbeddedRedisCluster(primaries=3)
    await running.start()
    yield running
    await running.stop()


TTL_MS = 2000


def _tag_on(cluster: EmbeddedRedisCluster, node: int) -> str:
    n = len(cluster.nodes)
    for i in range(100000):
        slot = key_slot(f"{{k{i}}}".encode()[1:-1])
        if slot * n // 16384 == node:
            return f"{{k{i}}}"
    raise AssertionError


async def _lease(client: aioredis.Redis, key: str, member: str) -> Renewal:
    seconds, micros = await client.time()
    await client.zadd(key, {member: seconds * 1000 + micros // 1000 + TTL_MS})
    return Renewal(script=RENEW, keys=(key,), args=(member, TTL_MS), every_s=0.3)


async def _left_ms(client: aioredis.Redis, key: str, member: str) -> float:
    seconds, micros = await client.time()
    score = await client.zscore(key, member)
    assert score is not None
    return score - (seconds * 1000 + micros // 1000)


async def test_a_hung_primary_holds_up_only_its_own_leases(
    cluster: EmbeddedRedisCluster,
) -> None:
    for node in cluster.nodes:  # the healthy primaries keep serving their slots
        plain = aioredis.Redis.from_url(node.url)
        await plain.config_set("cluster-require-full-coverage", "no")
        await plain.aclose()
    client = make_redis(cluster.url, cluster=True)
    keeper = thread_liveness(cluster.url, cluster=True)
    keeper.start()
    on_loop = LoopLiveness(client)
    healthy, stalled = _tag_on(cluster, 0) + ":leases", _tag_on(cluster, 2) + ":leases"
    try:
        keeper.add(await _lease(client, healthy, "thread"))
        on_loop.add(await _lease(client, healthy, "loop"))
        for i in range(2):  # two leases on the primary that stops answering
            keeper.add(await _lease(client, stalled, f"s{i}"))
        pid = cluster.nodes[2].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # a primary that hangs (GC pause, swapping, partition)
        t0 = time.monotonic()
        try:
            await asyncio.sleep(4.0)  # twice the TTL; the loop is idle, the thread free
            left_thread = await _left_ms(client, healthy, "thread")
            left_loop = await _left_ms(client, healthy, "loop")
        finally:
            os.kill(pid, signal.SIGCONT)
        stalled_for = time.monotonic() - t0
        assert left_loop > 0
        assert left_thread > 0, f"a healthy primary's lease lapsed in {stalled_for:.1f}s"
    finally:
        await keeper.stop()
        await client.aclose()
