"""One real server binary run as a child process: free port, readiness, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import sysconfig
import tempfile
from pathlib import Path

from bus.errors import EmbeddedServerError

log = logging.getLogger(__name__)

LOWEST_PORT = 10_000
MIN_SPAN = 1_000
"""Fewest ports worth drawing from below the ephemeral range; with fewer, the kernel picks."""
START_ATTEMPTS = 4
"""Starts of a server on a port of our choosing: another process can bind the port between
our check and the server's bind, and then the server tries again on another."""
READY_PROBE_S = 1.0
"""How long a readiness probe waits for a connection and for the server's greeting."""


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel hands out to outgoing connections (Linux's setting, else IANA's)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49_152, 65_535


def port_is_free(port: int) -> bool:
    """Whether port on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(highest: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, drawn at random from below the
    ephemeral range (at most highest): a port the kernel picks for us lies in that range,
    where every outgoing connection on the machine may take it before our server binds it.
    A machine whose ephemeral range leaves too few ports below it gets the kernel's pick
    (ServerProcess.start moves to another port if that one is taken before the bind)."""
    top = min(65_535 if highest is None else highest, ephemeral_ports()[0] - 1)
    if top - LOWEST_PORT < MIN_SPAN:
        if highest is not None:
            raise OSError(f"too few ports between {LOWEST_PORT} and {top} to choose from")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.randint(LOWEST_PORT, top)
        if port_is_free(port):
            return port
    raise OSError(f"no free port between {LOWEST_PORT} and {top}")


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
    ready_log = ""
    """A line the server writes to its log once it accepts connections ("" for none)."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"flipsync-{self.name}-"))
        self._chosen = port is None
        """Whether we chose the port: only then may a failed first start move to another."""
        self.port = port or self.pick_port()
        self._proc: asyncio.subprocess.Process | None = None
        self.log_path = self.data_dir / f"{self.name}.log"

    def pick_port(self) -> int:
        """A free port for the server."""
        return free_port()

    def command(self) -> list[str]:
        """The argv that starts the server."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The server's environment; None means this process's own."""
        return None

    async def ready(self) -> bool:
        """Whether the server answers on its port."""
        return await self.greets(None)

    async def greets(self, probe: bytes | None, expect: bytes = b"") -> bool:
        """Whether whatever listens on the port answers probe (if any) with a line starting
        with expect within READY_PROBE_S: another process holding the port may accept and
        say nothing."""
        try:
            async with asyncio.timeout(READY_PROBE_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except (OSError, TimeoutError):
            return False
        try:
            if probe is None and not expect:
                return True
            async with asyncio.timeout(READY_PROBE_S):
                if probe:
                    writer.write(probe)
                    await writer.drain()
                return (await reader.readline()).startswith(expect)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @property
    def pid(self) -> int | None:
        """Process id of the running server."""
        return self._proc.pid if self._proc else None

    async def start(self, ready_within_s: float = 15.0) -> None:
        """Start the server and wait until it accepts connections. When another process took
        the port we chose before the server bound it, the first start moves to a new port
        (a restart keeps its port: clients know it)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            logged = self._log_size()
            if await self._start_once(ready_within_s, logged):
                return
            taken = self._port_taken(self._log_since(logged))
            if not (taken and self._chosen) or attempt == START_ATTEMPTS:
                tail = self.log_tail()
                await self.stop()
                raise EmbeddedServerError(self.name, f"not ready on port {self.port}", tail)
            await self._halt()
            taken_port, self.port = self.port, self.pick_port()
            log.info("%s: port %d was taken; starting on %d", self.name, taken_port, self.port)

    def _port_taken(self, log_text: str) -> bool:
        """Whether the server said that our client port (not, say, a route port) was in use."""
        return any(
            "address already in use" in line.lower() and f"127.0.0.1:{self.port}" in line
            for line in log_text.splitlines()
        )

    async def _start_once(self, ready_within_s: float, logged: int) -> bool:
        """Run the server once; whether it became ready (its log read from offset logged)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=self.environment(),
                start_new_session=True,  # a Ctrl-C to the demo must not kill it before we do
            )
        finally:
            out.close()
        deadline = asyncio.get_running_loop().time() + ready_within_s
        while asyncio.get_running_loop().time() < deadline:
            if self._proc.returncode is not None:
                return False
            # Our child's own log must say it is ready: another server squatting the port
            # would answer the probe while our child failed to bind it.
            if await self.ready() and self.ready_log in self._log_since(logged):
                self._chosen = False
                return True
            await asyncio.sleep(0.05)
        return False

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as saved:
                saved.seek(offset)
                return saved.read().decode(errors="replace")
        except OSError:
            return ""

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
        await self._halt(grace_s)
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def _halt(self, grace_s: float = 5.0) -> None:
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
