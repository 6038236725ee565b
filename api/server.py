"""Serving the API app with uvicorn inside a running process (the `api` service)."""

from __future__ import annotations

from fastapi import FastAPI

from bus.embedded.http_guard import ConnectionLimits, default_max_connections
from bus.embedded.http_server import InLoopServer
from bus.settings import Settings

SHUTDOWN_S = 2
"""How long open requests (a stream being written) get to finish when the server stops."""


class ApiServer(InLoopServer):
    """The API app served on host:port (port 0 picks a free one) until stopped."""

    def __init__(
        self, app: FastAPI, host: str, port: int, *, limits: ConnectionLimits | None = None
    ) -> None:
        super().__init__(app, host, port, graceful_s=SHUTDOWN_S, limits=limits)


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The API's connection limits (bus.embedded.http_guard) from settings' api_* fields."""
    window_s = ConnectionLimits.body_window_s
    return ConnectionLimits(
        header_timeout_s=settings.api_header_timeout_s,
        max_header_bytes=settings.api_max_header_bytes,
        body_window_s=window_s,
        body_min_bytes=round(settings.api_body_min_bytes_per_s * window_s),
        write_timeout_s=settings.api_write_timeout_s,
        max_connections=settings.api_max_connections or default_max_connections(),
    )
