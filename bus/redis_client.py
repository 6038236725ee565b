"""The one way a FlipSync process connects to Redis: one server, or a Redis Cluster.

Every key a script touches together carries the same hash tag (see the key builders), so the
same code runs on both; only the client differs.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from bus.redis_pipelining import AutoPipelinedRedis

MAX_CONNECTIONS = 64
CLUSTER_MAX_CONNECTIONS = 2048
"""Per node of a Redis Cluster (redis-py's cluster pool raises instead of waiting)."""


def make_redis(url: str, *, cluster: bool = False) -> aioredis.Redis:
    """A client of url: a RedisCluster when cluster, else an auto-pipelined client with a
    blocking pool (bus.redis_pipelining: the commands of one event-loop turn share a trip).

    The blocking pool: hundreds of concurrent requests wait for one of 64 connections rather
    than fail with MaxConnectionsError (redis-py's default pool raises past 100).
    """
    if cluster:
        # RedisCluster speaks the same command API (and register_script, pipeline); FlipSync
        # types its clients as Redis throughout, so it is handed on as one.
        # Its per-node pool cannot block: past max_connections it raises. A router works on
        # up to router_workers requests at once, so the bound is set well above that.
        client = RedisCluster.from_url(url, max_connections=CLUSTER_MAX_CONNECTIONS)
        return cast(aioredis.Redis, client)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=None
    )
    return AutoPipelinedRedis.from_pool(pool)  # owns the pool: aclose() closes it
