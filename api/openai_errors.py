"""Errors of the OpenAI-compatible endpoint, in OpenAI's JSON shape, and the HTTP status each
error code of an LlmResult maps to."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from api.errors import error_body
from bus.messages import ErrorCode, LlmResult

STATUS_OF: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.MALFORMED: (400, "invalid_request_error"),
    ErrorCode.OVERSIZED: (400, "invalid_request_error"),
    ErrorCode.UNSUPPORTED_VERSION: (400, "invalid_request_error"),
    ErrorCode.UNKNOWN_AGENT: (400, "invalid_request_error"),
    # 402, not 429: OpenAI clients retry a 429, and a spent budget does not come back soon.
    ErrorCode.OVER_BUDGET: (402, "insufficient_quota"),
    ErrorCode.PROVIDER_RATE_LIMITED: (429, "rate_limit_error"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
    ErrorCode.PROVIDER_ERROR: (502, "api_error"),
    ErrorCode.SCHEMA_INVALID: (502, "api_error"),
    ErrorCode.INTERNAL: (500, "api_error"),
}


class OpenAIError(Exception):
    """A request the endpoint refuses or could not answer, with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The error as OpenAI answers it: {"error": {message, type, param, code}}."""
        body = error_body(self.message, kind=self.kind, code=self.code, param=self.param)
        return JSONResponse(body, status_code=self.status, headers=self.headers)

    @classmethod
    def of_result(cls, result: LlmResult, headers: dict[str, str]) -> OpenAIError:
        """The error an error result becomes; its code is the result's error code."""
        code = result.error_code or ErrorCode.INTERNAL
        status, kind = STATUS_OF.get(code, (500, "api_error"))
        return cls(status, result.reason or code.value, kind=kind, code=code.value, headers=headers)
