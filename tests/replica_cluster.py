"""What the multi-process scenarios share: real nats-server and redis-server, a simulated
provider in this process, and `flipsync run router ledger` replicas as child processes
(tests/budget_scenario.py, tests/chaos_scenario.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.settings import Settings
from bus.streams import ensure_streams
from flipsync.children import ChildProcess, service_process
from simulator.server import SimulatedProvider


class ReplicaCluster:
    """Servers, a simulated provider and router+ledger replicas; started and stopped whole."""

    def __init__(self, sim: SimulatedProvider) -> None:
        self.nats_server, self.redis_server = EmbeddedNats(), EmbeddedRedis()
        self.sim = sim
        self.children: list[ChildProcess] = []
        self._broker: NatsBroker | None = None
        self.redis: aioredis.Redis | None = None

    @property
    def broker(self) -> NatsBroker:
        """This process's connection to the cluster's NATS."""
        assert self._broker is not None
        return self._broker

    def server_env(self) -> dict[str, str]:
        """The environment that points a replica at the cluster's servers and provider."""
        return {
            "NATS_URL": self.nats_server.url,
            "REDIS_URL": self.redis_server.url,
            "FLIPSYNC_SIM_BASE_URL": self.sim.base_url,
        }

    async def start_servers(self) -> None:
        """Start the servers and the provider, connect, and create the streams."""
        await self.nats_server.start()
        await self.redis_server.start()
        await self.sim.start()
        self._broker = make_broker(self.nats_server.url)
        self.redis = aioredis.Redis.from_url(self.redis_server.url)
        await self.broker.connect()
        await ensure_streams(self.broker.connection.jetstream(), Settings())

    async def start_replicas(
        self, env: dict[str, str], count: int, ready_s: float, *, logs: Path | None = None
    ) -> None:
        """Start count router+ledger replicas with env and wait until each is ready; with logs
        (a folder), replica i writes its output to logs/replica-i.log, for reading a failure."""
        self.children = [
            service_process(
                ["router", "ledger"],
                env,
                log_path=logs / f"replica-{i}.log" if logs is not None else None,
            )
            for i in range(count)
        ]
        await asyncio.gather(*(child.start(ready_within_s=ready_s) for child in self.children))

    async def stop(self) -> None:
        """Stop every process and server this cluster started."""
        for child in self.children:
            await child.stop()
        if self._broker is not None:
            await self._broker.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.sim.stop()
        await self.redis_server.stop()
        await self.nats_server.stop()
