"""Serving the API app with uvicorn inside a running process (the `api` service)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

SHUTDOWN_S = 2
"""How long open requests (a stream being written) get to finish when the server stops."""


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that runs it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install no signal handlers: `flipsync run` owns SIGTERM and SIGINT."""
        yield


class ApiServer:
    """An app served on host:port (port 0 picks a free one) until stopped."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        """The base URL it serves on."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind the port (an OSError if it is taken) and serve until stop()."""
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only for that
        # proto, and without it Nagle plus delayed ACKs add 40 ms to every keep-alive call.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            loop="none",  # the running loop
            lifespan="off",
            ws="none",
            log_config=None,  # leave the host program's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_S,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it stopped
                raise RuntimeError(f"the API server on {self.url} stopped at start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving: open requests finish, new ones are refused."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, SHUTDOWN_S + 1)
        self._server = self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
