"""Redis holds money: a configured Redis that may evict keys is refused at start (its URL and
policy named, exit 2), and one nearing its memory limit is reported while there is room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.embedded.redis_cluster import EmbeddedRedisCluster
from bus.redis_client import make_redis
from bus.redis_memory import EvictingRedis, MemoryWatch, refuse_evicting
from bus.settings import Settings
from flipsync.stack import Service, start_stack
from tests.test_cli_first_hour import flipsync


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[EmbeddedRedis, aioredis.Redis]]:
    """A Redis of this test's own, whose configuration the test may change."""
    server = EmbeddedRedis()
    await server.start()
    client = aioredis.Redis.from_url(server.url)
    try:
        yield server, client
    finally:
        await client.aclose()
        await server.stop()


@pytest.mark.parametrize("policy", ["volatile-lru", "allkeys-lru", "volatile-ttl"])
async def test_a_redis_that_may_evict_is_refused(
    own_redis: tuple[EmbeddedRedis, aioredis.Redis], policy: str
) -> None:
    server, client = own_redis
    await client.config_set("maxmemory-policy", policy)
    with pytest.raises(EvictingRedis) as refused:
        await refuse_evicting(client, server.url)
    assert server.url in str(refused.value)
    assert f"maxmemory-policy {policy}" in str(refused.value)
    assert "noeviction" in str(refused.value)


async def test_a_redis_that_never_evicts_is_accepted(
    own_redis: tuple[EmbeddedRedis, aioredis.Redis],
) -> None:
    server, client = own_redis
    await refuse_evicting(client, server.url)  # the embedded one is started noeviction


async def test_a_stack_does_not_start_its_money_services_on_an_evicting_redis(
    own_redis: tuple[EmbeddedRedis, aioredis.Redis], nats_server: EmbeddedNats
) -> None:
    server, client = own_redis
    await client.config_set("maxmemory-policy", "allkeys-lru")
    settings = Settings(nats_url=nats_server.url, redis_url=server.url, sim_latency_ms=0)
    with pytest.raises(EvictingRedis):
        await start_stack(settings, {Service.PROVIDER, Service.LEDGER})


async def test_the_command_says_so_in_one_line(
    own_redis: tuple[EmbeddedRedis, aioredis.Redis], tmp_path: Path
) -> None:
    server, client = own_redis
    await client.config_set("maxmemory-policy", "volatile-lru")
    env = {"REDIS_URL": server.url, "NATS_URL": "nats://127.0.0.1:1"}
    done = await asyncio.to_thread(flipsync, "run", "ledger", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"flipsync: the Redis at {server.url} may evict keys"), line


async def test_the_watch_reports_each_crossing_once(
    own_redis: tuple[EmbeddedRedis, aioredis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    server, client = own_redis
    watch = MemoryWatch(client, server.url)
    await client.config_set("maxmemory", "0")
    assert await watch.check() is None  # no limit: nothing to say
    used = int((await client.info("memory"))["used_memory"])
    caplog.set_level(logging.WARNING, logger="bus.redis_memory")

    await client.config_set("maxmemory", str(int(used / 0.85)))
    share = await watch.check()
    assert share is not None and 0.8 <= share < 0.95
    await watch.check()  # still over 80%: said once
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and server.url in warned[0].getMessage()
    assert "% full" in warned[0].getMessage()

    await client.config_set("maxmemory", str(int(used / 0.97)))
    await watch.check()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR]

    await client.config_set("maxmemory", str(used * 4))  # room again, then full again
    await watch.check()
    await client.config_set("maxmemory", str(int(used / 0.85)))
    await watch.check()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR, logging.WARNING]


async def test_the_watch_outlives_a_cluster_it_cannot_reach() -> None:
    """redis-py says a Redis Cluster it cannot reach with RedisClusterUnreachableError, which
    is no RedisError: the watch keeps going (and checks again once the cluster is back), and
    stopping it does not raise that error into the stack's stop."""
    cluster = EmbeddedRedisCluster(1)
    await cluster.start()
    client = make_redis(cluster.url, cluster=True)
    try:
        watch = MemoryWatch(client, cluster.url)
        await watch.check()  # reached once: the topology known
        for node in cluster.nodes:
            await node.stop()
        watch.start(every_s=0.05)
        await asyncio.sleep(3)  # a check fails in about 1.2 s (redis-py retries): two or more
        assert watch._task is not None and not watch._task.done()
        await watch.stop()
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
        await cluster.stop()
