"""A NATS cluster of embedded nats-servers on loopback, for tests and local trials."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path

from bus.embedded.nats_server import ClusterNode, EmbeddedNats
from bus.embedded.process import free_port


class EmbeddedNatsCluster:
    """size nats-servers with JetStream, routed to each other, each with its own store dir."""

    def __init__(self, size: int = 3, name: str = "flipsync", extra_config: str = "") -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="flipsync-nats-cluster-"))
        route_ports = [free_port() for _ in range(size)]
        routes = [f"nats://127.0.0.1:{port}" for port in route_ports]
        self.nodes = [
            EmbeddedNats(
                self.data_dir / f"n{i + 1}",
                extra_config=extra_config,
                cluster=ClusterNode(name, f"n{i + 1}", port, routes),
            )
            for i, port in enumerate(route_ports)
        ]

    @property
    def urls(self) -> list[str]:
        """Client URLs of every node (give a client all of them)."""
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> EmbeddedNats:
        """The node with that server name."""
        for node in self.nodes:
            if node.cluster is not None and node.cluster.server_name == server_name:
                return node
        raise KeyError(server_name)

    async def start(self) -> None:
        """Start every node at once (JetStream waits for its peers to elect a meta leader)."""
        try:
            await asyncio.gather(*(node.start() for node in self.nodes))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every node and remove the cluster's data."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await node.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
