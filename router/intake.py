"""What a decoded request must be before any stage sees it (a malformed result otherwise)."""

from __future__ import annotations

from bus.errors import WireError
from bus.messages import ErrorCode, ImagePart, LlmRequest
from router.validation import check_request_schema

MAX_OUTPUT_TOKENS = 1_000_000
"""No model answers more; a larger cap is a mistake, and would reserve absurd budgets."""
MAX_EPOCH_MS = 10**13
"""deadline_ms beyond this (the year 2286) is not a time: msgspec decodes integers of
thousands of digits, and one overflowed the deadline's float arithmetic (found by review:
ten deliveries, then an internal error, instead of a malformed result)."""
MAX_IMAGE_SIDE = 100_000
"""Largest declared image width or height, in pixels (token arithmetic stays in range)."""
IMAGE_URL_PREFIXES = ("https://", "data:image/")
"""What an image part may point at: the provider fetches a URL, so a caller's file: or
http: address of an internal host is refused, never passed on."""


async def check_request(request: LlmRequest) -> None:
    """Raise WireError(malformed) for a request no provider call should be made for."""
    if not request.messages:
        raise WireError(ErrorCode.MALFORMED, "the request has no messages")
    if not 1 <= request.max_output_tokens <= MAX_OUTPUT_TOKENS:
        reason = f"max_output_tokens must be from 1 to {MAX_OUTPUT_TOKENS}"
        raise WireError(ErrorCode.MALFORMED, f"{reason}, not {request.max_output_tokens}")
    if not 0.0 <= request.temperature <= 2.0:
        raise WireError(ErrorCode.MALFORMED, "temperature must be from 0 to 2")
    if not 0.0 <= request.quality_floor <= 1.0:
        raise WireError(ErrorCode.MALFORMED, "quality_floor must be from 0 to 1")
    if not -MAX_EPOCH_MS < request.deadline_ms < MAX_EPOCH_MS:
        raise WireError(ErrorCode.MALFORMED, "deadline_ms must be Unix epoch milliseconds")
    for message in request.messages:
        if isinstance(message.content, list):
            for part in message.content:
                if isinstance(part, ImagePart):
                    _check_image(part)
    await check_request_schema(request)  # a bad schema is refused before any call


def _check_image(part: ImagePart) -> None:
    """Raise WireError(malformed) for an image part a provider should not be sent."""
    if not part.url[:11].lower().startswith(IMAGE_URL_PREFIXES):
        raise WireError(ErrorCode.MALFORMED, "an image URL must be https: or data:image/...")
    for side in (part.width, part.height):
        if side is not None and not 1 <= side <= MAX_IMAGE_SIDE:
            raise WireError(
                ErrorCode.MALFORMED, f"an image's width and height must be 1 to {MAX_IMAGE_SIDE}"
            )
