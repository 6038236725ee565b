"""Every error the HTTP API answers, in one shape: OpenAI's, on /v1 and /api alike.

    {"error": {"message": "...", "type": "invalid_request_error", "param": null, "code": "..."}}

``message`` is the human reason, ``type`` OpenAI's kind of error (invalid_request_error,
authentication_error, permission_error, rate_limit_error, api_error: KIND_OF), ``param``
the parameter at fault or null, ``code`` a stable machine code (on /api never null; on /v1
OpenAI's own, which may be). /v1 must answer OpenAI's shape, since OpenAI SDK clients parse
it; /api answers the same one, so a client of both reads one shape, and a refusal says
both why and which (FastAPI's default {"detail": ...} carried only the reason).

What raises the errors, and where each is written:

    Exception
    ├── api.auth.AuthError                 401 no or a bad key, 403 another tenant's data
    ├── api.openai_errors.OpenAIError      a /v1 call refused or not answered
    ├── starlette HTTPException            any other route's refusal, and FastAPI's own 404
    │                                      (no such route) and 405 (no such method); its
    │                                      detail is the reason, or {"message", "code",
    │                                      "param"} for a route's own code
    ├── RequestValidationError             a query, path, form or body value FastAPI refused
    ├── RecursionError, UnicodeError,      input nested too deeply, not Unicode, not JSON
    │   msgspec.DecodeError
    └── anything else                      500 "internal error", never the exception's text
    (api.limits.BodyLimit writes 413 itself, before the app: a body over its limit)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from bus.limits import MAX_DEPTH

log = logging.getLogger(__name__)

KIND_OF: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}
"""OpenAI's type of an error by HTTP status; any other 4xx is invalid_request_error and
any 5xx api_error."""
CODE_OF: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    422: "invalid_value",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}
"""The code of an /api error whose route named none, by HTTP status."""
ROUTING_MESSAGES: dict[int, str] = {
    404: "no such route: the API's routes are listed at /docs",
    405: "this route does not take this method: the Allow header says which it takes",
}
"""The reason of FastAPI's own 404 and 405, whose detail is only the status' phrase."""
VALIDATION_LISTED = 5
"""How many of a request's validation errors its message names."""


def kind_of(status: int) -> str:
    """OpenAI's type of an error with this HTTP status."""
    return KIND_OF.get(status, "api_error" if status >= 500 else "invalid_request_error")


def code_of(status: int) -> str:
    """The code of an error with this HTTP status when nothing more precise was named."""
    return CODE_OF.get(status, f"http_{status}")


def error_body(
    message: str, *, kind: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """The body of every error the API answers: {"error": {message, type, param, code}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the API's one shape; type and code default to the status'."""
    body = error_body(
        message, kind=kind or kind_of(status), code=code or code_of(status), param=param
    )
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error of the app in the one shape: 4xx for what the client got wrong (with a
    short reason), a bare 500 for the rest."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail, status = exc.detail, exc.status_code
        code: str | None = None
        param: str | None = None
        if isinstance(detail, Mapping):
            message = str(detail.get("message", ""))
            code, param = detail.get("code"), detail.get("param")
        elif detail == HTTPStatus(status).phrase:  # FastAPI's own: no route, no method
            message = ROUTING_MESSAGES.get(status, str(detail))
        else:
            message = str(detail)
        return error_response(status, message, code=code, param=param, headers=exc.headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        # Never the input itself: it may be huge, or not even encodable (a lone surrogate).
        named = [_validation_error(e) for e in errors[:VALIDATION_LISTED]]
        more = len(errors) - VALIDATION_LISTED
        message = "invalid request: " + "; ".join(named)
        message += f" (and {more} more)" if more > 0 else ""
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ())]
        # The parameter without where it was (query, body...); none for a body that is not
        # JSON, whose location is a character offset.
        param = None if first.get("type") == "json_invalid" else ".".join(loc[1:] or loc)
        return error_response(
            422, _encodable(message), code="invalid_value", param=_encodable(param or "") or None
        )

    async def unreadable(request: Request, exc: Exception) -> JSONResponse:
        reason = {
            RecursionError: f"the input is nested deeper than {MAX_DEPTH} levels",
            UnicodeEncodeError: "the input holds text that is not valid Unicode (a lone "
            "surrogate?)",
        }.get(type(exc), "the input could not be read")
        return error_response(400, reason, code="unreadable_input")

    async def gone(request: Request, exc: Exception) -> Response:
        # The client closed, or the server closed a too-slow body (bus.embedded.http_guard):
        # nobody reads this answer, and nothing failed.
        log.info("%s %s: the client's connection closed before its body was in",
                 request.method, request.url.path)  # fmt: skip
        return Response(status_code=400)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error")

    app.add_exception_handler(StarletteHTTPException, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ClientDisconnect, gone)
    for kind in (RecursionError, UnicodeError, msgspec.DecodeError):
        app.add_exception_handler(kind, unreadable)
    app.add_exception_handler(Exception, internal)


def _validation_error(error: Mapping[str, Any]) -> str:
    """One validation error as "where: what" (query.start: Input should be a valid date...)."""
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid":  # its loc is (body, character offset)
        why = (error.get("ctx") or {}).get("error", "")
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"{loc[0] if loc else 'body'}: not valid JSON{at}: {why}"
    return f"{'.'.join(loc)}: {error.get('msg', '')}"


def _encodable(text: str) -> str:
    """text with any lone surrogate replaced, so that it can be sent."""
    return text.encode("utf-8", "replace").decode("utf-8")
