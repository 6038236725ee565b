"""Errors of the simulated provider, each answered in OpenAI's error shape.

SimError                      any error of the simulated provider
├── ApiError                  an answer in OpenAI's error shape (status, message, type, param, code)
│   ├── InvalidRequestError   400: the body is not a valid chat completion request
│   └── ModelNotFoundError    404: the model is not offered by this provider
└── StartError                the in-process server did not come up
"""

from __future__ import annotations


class SimError(Exception):
    """Base of every simulated provider error."""


class ApiError(SimError):
    """An error the simulator answers with its status and OpenAI's error JSON."""

    status = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, object]:
        """OpenAI's error JSON: {"error": {"message", "type", "param", "code"}}."""
        return error_body(self.message, self.type, param=self.param, code=self.code)


class InvalidRequestError(ApiError):
    """The request body is not a valid chat completion request (HTTP 400)."""

    status = 400
    type = "invalid_request_error"


class ModelNotFoundError(ApiError):
    """The requested model is not offered (HTTP 404, code model_not_found)."""

    status = 404
    type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        message = f"The model `{model}` does not exist or you do not have access to it."
        super().__init__(message, param="model", code="model_not_found")
        self.model = model


class StartError(SimError):
    """The in-process simulated provider did not start listening."""

    def __init__(self, port: int, reason: str) -> None:
        super().__init__(f"simulated provider on port {port} did not start: {reason}")
        self.port = port
        self.reason = reason


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, object]:
    """OpenAI's error JSON shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
