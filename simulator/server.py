"""SimulatedProvider: the simulated provider served by uvicorn inside the caller's event loop."""

from __future__ import annotations

import errno
from types import TracebackType

from bus.embedded.http_server import InLoopServer
from bus.embedded.process import free_port
from simulator.app import create_app
from simulator.config import Faults, SimConfig
from simulator.errors import StartError
from simulator.state import SimState, SimStats

HOST = "127.0.0.1"
SHUTDOWN_S = 1.0
"""How long running requests get to finish when the simulated provider stops."""
PORT_TRIES = 5
"""Ports tried, when the provider chooses its own and finds it taken at the bind."""


class SimulatedProvider:
    """An OpenAI-compatible simulated provider on a free loopback port, on the running loop."""

    def __init__(self, config: SimConfig | None = None, *, port: int | None = None) -> None:
        self.config = config or SimConfig()
        self.state = SimState(self.config)
        self.app = create_app(self.config, self.state)
        self._http = InLoopServer(self.app, HOST, port or free_port(), graceful_s=SHUTDOWN_S)
        self._port_chosen = port is None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._http.port

    @property
    def url(self) -> str:
        """The server's root URL, under which /_sim/stats and the other admin paths live."""
        return self._http.url

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to give a client, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.url}/v1"

    async def start(self, ready_within_s: float = 10.0) -> None:
        """Listen on the port and serve until stop(); raises StartError if it cannot. A port
        it chose itself and found taken at the bind (another server took it since: a Redis
        Cluster node's bus port is its port + 10000) is given up for another, so its URL is
        final once started."""
        for tries_left in reversed(range(PORT_TRIES)):
            try:
                await self._http.start(ready_within_s)
                return
            except OSError as exc:
                if not (self._port_chosen and exc.errno == errno.EADDRINUSE and tries_left):
                    raise StartError(self.port, str(exc)) from exc
                self._http.port = free_port()
            except RuntimeError as exc:
                raise StartError(self.port, str(exc)) from exc

    async def stop(self) -> None:
        """Stop serving; requests still running get about a second to finish."""
        await self._http.stop()

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
