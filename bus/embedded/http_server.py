"""An ASGI app served by uvicorn on the running event loop: the API and the simulated provider."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from bus.embedded.http_guard import ConnectionLimits, guarded


class _GuestServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the program it runs in (`flipsync run` owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


class InLoopServer:
    """Serves app on host:port (port 0 picks a free one) in this loop until stop(), each
    connection within limits (bus.embedded.http_guard)."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        graceful_s: float,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._graceful_s = graceful_s
        self.limits = limits or ConnectionLimits()
        self._server: _GuestServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        """The root URL it serves on."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections are open."""
        return 0 if self._server is None else len(self._server.server_state.connections)

    @property
    def running(self) -> bool:
        """Whether it was started and not stopped."""
        return self._task is not None

    async def start(self, ready_within_s: float = 10.0) -> None:
        """Bind the port (OSError if it is taken) and serve; RuntimeError if uvicorn does not
        come up within ready_within_s."""
        if self._task is not None:
            return
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only for that
        # proto, and without it Nagle plus delayed ACKs add 40 ms to every keep-alive call.
        # Binding here, not in uvicorn, turns a taken port into an OSError, not sys.exit().
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="none",  # the running loop
            http=guarded(self.limits),  # httptools, with timeouts and size and count limits
            lifespan="off",
            ws="none",
            log_config=None,  # leave the host program's logging alone
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, round(self._graceful_s)),
        )
        self._server = server = _GuestServer(config)
        self._sock = sock
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + ready_within_s
        while not server.started:
            if task.done():
                self._server = self._task = None
                self._close_socket()
                error = None if task.cancelled() else task.exception()
                raise RuntimeError(f"{self.url} stopped at start-up: {error!r}") from error
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError(f"{self.url} not serving after {ready_within_s}s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving: open requests get graceful_s to finish, new ones are refused."""
        server, task = self._server, self._task
        self._server = self._task = None
        try:
            if server is not None and task is not None:
                server.should_exit = True
                with contextlib.suppress(Exception):  # wait_for cancels it when too slow
                    await asyncio.wait_for(task, self._graceful_s + 1)
        finally:
            self._close_socket()

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
