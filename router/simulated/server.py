"""SimulatedProvider: the simulated provider served by uvicorn inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from bus.embedded.process import free_port
from router.simulated.app import create_app
from router.simulated.config import Faults, SimConfig
from router.simulated.errors import StartError
from router.simulated.state import SimState, SimStats

HOST = "127.0.0.1"
SHUTDOWN_S = 5.0
"""Longest wait for uvicorn to stop before its task is cancelled."""


class _GuestServer(uvicorn.Server):
    """A uvicorn server that leaves signals (Ctrl-C) to the program it runs in."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


class SimulatedProvider:
    """An OpenAI-compatible simulated provider on a free loopback port, on the running loop."""

    def __init__(self, config: SimConfig | None = None, *, port: int | None = None) -> None:
        self.config = config or SimConfig()
        self.port = port or free_port()
        self.state = SimState(self.config)
        self.app = create_app(self.config, self.state)
        self._server: _GuestServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        """The server's root URL, under which /_sim/stats and the other admin paths live."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to give a client, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.url}/v1"

    async def start(self, ready_within_s: float = 10.0) -> None:
        """Listen on the port and serve until stop(); raises StartError if it cannot."""
        if self._task is not None:
            return
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only for that
        # proto, and without it Nagle plus delayed ACKs add 40 ms to every keep-alive call.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            # Binding here, not in uvicorn, turns a taken port into an OSError we can report
            # instead of uvicorn's sys.exit().
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, self.port))
        except OSError as exc:
            sock.close()
            raise StartError(self.port, str(exc)) from exc
        config = uvicorn.Config(
            self.app,
            host=HOST,
            port=self.port,
            loop="none",
            lifespan="off",
            ws="none",
            log_config=None,  # leave the host program's logging alone
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
        self._server = server = _GuestServer(config)
        self._sock = sock
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]), name="sim-provider")
        deadline = asyncio.get_running_loop().time() + ready_within_s
        while not server.started:
            if task.done():
                self._server = self._task = None
                sock.close()
                error = None if task.cancelled() else task.exception()
                raise StartError(self.port, f"uvicorn stopped: {error!r}") from error
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise StartError(self.port, f"not serving after {ready_within_s}s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving; requests still running get about a second to finish."""
        server, task, sock = self._server, self._task, self._sock
        self._server = self._task = self._sock = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(task, SHUTDOWN_S)
        except TimeoutError:
            pass  # wait_for has cancelled it
        finally:
            if sock is not None:
                sock.close()

    async def stats(self) -> SimStats:
        """A snapshot of the counters, as GET /_sim/stats reports them."""
        return self.state.stats.copy()

    async def reset(self) -> None:
        """Zero the counters, empty the prompt cache and reseed, as POST /_sim/reset."""
        self.state.reset()

    async def set_faults(self, faults: Faults) -> None:
        """Replace the fault rates at run time, as PUT /_sim/faults."""
        self.state.set_faults(faults)

    async def __aenter__(self) -> SimulatedProvider:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
