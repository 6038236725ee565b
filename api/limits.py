"""The API's guards against hostile input: bounded bodies and 4xx for the client's mistakes.

- BodyLimit: a body over its path's limit is a 413 before the app reads it (by its
  Content-Length, or by counting a chunked body as it arrives).
- api.errors.install_error_handlers: bad JSON, deep nesting, lone surrogates and pydantic
  validation errors are 4xx with a short reason; anything else is a 500 that says only
  "internal error" (never an exception's text: it may hold internal paths, addresses or
  data).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

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
    return error_response(413, f"the request body is over the limit of {limit} bytes")
