"""Structured output where a provider's compatible endpoint ignores response_format.

Anthropic's OpenAI-compatible endpoint ignores response_format (its documentation lists it as
ignored), so for it the schema is stated in a system instruction instead; the answer is then
validated against the schema like every other (router.validation), and an invalid one is a
schema_invalid result that still costs.
"""

from __future__ import annotations

import json
from typing import Any

from bus.messages import LlmRequest

SCHEMA_BY_INSTRUCTIONS = frozenset({"anthropic"})
"""Provider kinds whose compatible endpoint ignores response_format."""


def schema_instruction(request: LlmRequest) -> str | None:
    """The instruction that asks for JSON matching the request's schema, or None."""
    schema = request.output_schema
    if schema is None:
        return None
    return (
        "Answer with one JSON value only, no prose and no code fence, that validates against "
        f"this JSON schema ({schema.name}): {json.dumps(schema.schema, sort_keys=True)}"
    )


def with_schema_instructions(
    request: LlmRequest, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """messages with the schema instruction as a leading system message (static, so it stays
    in the provider's cacheable prefix); unchanged when the request has no schema."""
    instruction = schema_instruction(request)
    if instruction is None:
        return messages
    return [{"role": "system", "content": instruction}, *messages]
