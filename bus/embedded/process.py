"""One real server binary run as a child process: free port, readiness, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sysconfig
import tempfile
from pathlib import Path

from bus.errors import EmbeddedServerError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, *extra_dirs: Path) -> Path:
    """The server binary installed by our Python packages, else one on PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / name, *(d / name for d in extra_dirs)]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found is None:
        raise EmbeddedServerError(name, "binary not found; reinstall the project (make test)")
    return Path(found)


class ServerProcess:
    """A child server process on a free loopback port, stopped (and cleaned up) by stop()."""

    name = "server"

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"flipsync-{self.name}-"))
        self.port = port or free_port()
        self._proc: asyncio.subprocess.Process | None = None
        self.log_path = self.data_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        """The argv that starts the server."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The server's environment; None means this process's own."""
        return None

    async def ready(self) -> bool:
        """Whether the server answers on its port."""
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    @property
    def pid(self) -> int | None:
        """Process id of the running server."""
        return self._proc.pid if self._proc else None

    async def start(self, ready_within_s: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=self.environment(),
                start_new_session=True,  # a Ctrl-C to the demo must not kill it before we do
            )
        finally:
            log.close()
        deadline = asyncio.get_running_loop().time() + ready_within_s
        while asyncio.get_running_loop().time() < deadline:
            if self._proc.returncode is not None:
                break
            if await self.ready():
                return
            await asyncio.sleep(0.05)
        tail = self.log_tail()
        await self.stop()
        raise EmbeddedServerError(self.name, f"not ready on port {self.port}", tail)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def kill(self) -> None:
        """SIGKILL the server, as a crash would; its data dir stays (stop() still cleans up)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove a temporary data dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
