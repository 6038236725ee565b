"""What a decoded request must be before any stage sees it (a malformed result otherwise)."""

from __future__ import annotations

from bus.errors import WireError
from bus.messages import ErrorCode, LlmRequest
from router.validation import check_request_schema

MAX_OUTPUT_TOKENS = 1_000_000
"""No model answers more; a larger cap is a mistake, and would reserve absurd budgets."""


async def check_request(request: LlmRequest) -> None:
    """Raise WireError(malformed) for a request no provider call should be made for."""
    if not request.messages:
        raise WireError(ErrorCode.MALFORMED, "the request has no messages")
    if not 1 <= request.max_output_tokens <= MAX_OUTPUT_TOKENS:
        reason = f"max_output_tokens must be from 1 to {MAX_OUTPUT_TOKENS}"
        raise WireError(ErrorCode.MALFORMED, f"{reason}, not {request.max_output_tokens}")
    if not 0.0 <= request.temperature <= 2.0:
        raise WireError(ErrorCode.MALFORMED, "temperature must be from 0 to 2")
    await check_request_schema(request)  # a bad schema is refused before any call
