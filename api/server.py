"""Serving the API app with uvicorn inside a running process (the `api` service)."""

from __future__ import annotations

from fastapi import FastAPI

from bus.embedded.http_guard import ConnectionLimits
from bus.embedded.http_server import InLoopServer

SHUTDOWN_S = 2
"""How long open requests (a stream being written) get to finish when the server stops."""


class ApiServer(InLoopServer):
    """The API app served on host:port (port 0 picks a free one) until stopped."""

    def __init__(
        self, app: FastAPI, host: str, port: int, *, limits: ConnectionLimits | None = None
    ) -> None:
        super().__init__(app, host, port, graceful_s=SHUTDOWN_S, limits=limits)
