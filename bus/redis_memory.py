"""Redis holds money: it must never evict, and its operator must hear before it fills.

Budget counters, reservations, settle markers and the ledger's seen markers live in Redis
(about 795 bytes per request kept for weeks: bench/results/redis_memory.json,
docs/capacity.md). A server that evicts under memory pressure (any maxmemory-policy but
noeviction; managed Redis often defaults to volatile-lru, which takes exactly those keys,
all of which expire) would lose them silently: budgets reset, events counted twice. So a
configured Redis that may evict is refused at start, naming its URL and policy. One that
never evicts refuses writes once full, and every request then fails: MemoryWatch says so in
the log while there is still room (80%, then 95% of maxmemory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

NEVER_EVICTS = "noeviction"
LEVELS = (0.8, 0.95)
"""Shares of maxmemory whose crossing is logged: a warning, then an error."""
EVERY_S = 60.0
"""How often MemoryWatch reads INFO memory."""


class EvictingRedis(ValueError):
    """The Redis at a URL may evict keys, which would lose money kept there."""

    def __init__(self, url: str, policy: str) -> None:
        """url: as the operator gave it (redacted); policy: its maxmemory-policy."""
        self.url = url
        self.policy = policy
        super().__init__(
            f"the Redis at {url} may evict keys (maxmemory-policy {policy}): FlipSync keeps "
            "budget counters and ledger markers there, and losing them would reset budgets "
            "and count spend twice; set maxmemory-policy noeviction (FlipSync's caches bound "
            "their own size)"
        )


async def memory_infos(client: aioredis.Redis) -> list[dict[str, Any]]:
    """INFO memory of each server behind client: one, or each node of a Redis Cluster."""
    if isinstance(client, RedisCluster):
        by_node = await client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        if "used_memory" in by_node:  # a cluster of one primary
            return [by_node]
        return [node for node in by_node.values() if isinstance(node, dict)]
    info: dict[str, Any] = await client.info("memory")
    return [info]


async def refuse_evicting(client: aioredis.Redis, url: str) -> None:
    """Raise EvictingRedis when a server behind client may evict keys. A server that does
    not allow INFO (some managed services rename it) is logged and accepted."""
    try:
        infos = await memory_infos(client)
    except RedisError as exc:
        log.warning("could not read the eviction policy of the Redis at %s (%s): make sure "
                    "it is noeviction", url, exc)  # fmt: skip
        return
    for info in infos:
        policy = str(info.get("maxmemory_policy", NEVER_EVICTS))
        if policy != NEVER_EVICTS:
            raise EvictingRedis(url, policy)


class MemoryWatch:
    """Logs when a Redis with a memory limit passes 80% and 95% of it (once per crossing,
    and again after it fell back under), with what to do."""

    def __init__(self, client: aioredis.Redis, url: str) -> None:
        """client: the Redis to watch; url: how to name it (redacted)."""
        self._client = client
        self._url = url
        self._level = 0
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> float | None:
        """Read INFO memory once and log a crossing; the fullest server's used share of its
        maxmemory, or None when no server has a limit."""
        shares = [
            int(info["used_memory"]) / int(info["maxmemory"])
            for info in await memory_infos(self._client)
            if int(info.get("maxmemory", 0)) > 0
        ]
        if not shares:
            return None
        share = max(shares)
        level = sum(share >= at for at in LEVELS)
        if level > self._level:
            log.log(
                logging.WARNING if level == 1 else logging.ERROR,
                "the Redis at %s is %.0f%% full (used_memory of maxmemory); at 100%% it "
                "refuses writes and every request fails: raise maxmemory (docs/capacity.md "
                "sizes it per request rate)",
                self._url,
                share * 100,
            )
        self._level = level
        return share

    def start(self, every_s: float = EVERY_S) -> None:
        """Check every every_s seconds until stop()."""
        self._task = asyncio.ensure_future(self._run(every_s))

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, every_s: float) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # it only reports: an unreachable Redis Cluster raises
                # RedisClusterUnreachableError, no RedisError, and a task that died of it
                # would stop watching for good and raise it again into stop()
                log.debug("reading Redis memory failed", exc_info=True)
            await asyncio.sleep(every_s)
