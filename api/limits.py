"""The API's guards against hostile input: bounded bodies and 4xx for the client's mistakes.

- BodyLimit: a body over its path's limit is a 413 before the app reads it (by its
  Content-Length, or by counting a chunked body as it arrives).
- install_error_handlers: bad JSON, deep nesting, lone surrogates and pydantic validation
  errors are 4xx with a short reason; anything else is a 500 that says only "internal
  error" (never an exception's text: it may hold internal paths, addresses or data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.limits import MAX_DEPTH

log = logging.getLogger(__name__)
JSON_BODY_LIMIT = 4 * 1024 * 1024
"""Largest JSON body (chat, OpenAI calls): no LLM request may be larger (max_request_bytes)."""


class BodyTooLargeError(Exception):
    """A body passed its path's limit while it was read."""


class BodyLimit:
    """ASGI middleware: 413 for a body over limit_for(path, method) bytes."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse by Content-Length, or count the body as the app reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"], scope["method"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except BodyTooLargeError:
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"the request body is over the limit of {limit} bytes"}, 413)


def install_error_handlers(app: FastAPI) -> None:
    """4xx for what the client got wrong, a bare 500 for the rest."""

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()[:20]
        ]  # never the input itself: it may not even be encodable (a lone surrogate)
        return JSONResponse({"detail": _encodable(errors)}, 422)

    async def unreadable(request: Request, exc: Exception) -> JSONResponse:
        reason = {
            RecursionError: f"the input is nested deeper than {MAX_DEPTH} levels",
            UnicodeEncodeError: "the input holds text that is not valid Unicode (a lone "
            "surrogate?)",
        }.get(type(exc), "the input could not be read")
        return JSONResponse({"detail": reason}, 400)

    async def gone(request: Request, exc: Exception) -> Response:
        # The client closed, or the server closed a too-slow body (bus.embedded.http_guard):
        # nobody reads this answer, and nothing failed.
        log.info("%s %s: the client's connection closed before its body was in",
                 request.method, request.url.path)  # fmt: skip
        return Response(status_code=400)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, 500)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ClientDisconnect, gone)
    for kind in (RecursionError, UnicodeError, msgspec.DecodeError):
        app.add_exception_handler(kind, unreadable)
    app.add_exception_handler(Exception, internal)


def _encodable(value: object) -> object:
    """value with any lone surrogate in its strings replaced, so that it can be sent."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {str(_encodable(k)): _encodable(v) for k, v in value.items()}
    return value


def bad_request(reason: str) -> HTTPException:
    """A 400 with a short reason."""
    return HTTPException(400, reason)
