"""Translation of FlipSync wire messages into the OpenAI chat request body."""

from __future__ import annotations

from typing import Any

from bus.messages import ChatMessage, ImagePart, LlmRequest, TextPart


def openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages in OpenAI's shape, image parts as image_url objects."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                image = {"url": part.url, "detail": part.detail}
                parts.append({"type": "image_url", "image_url": image})
        out.append({"role": message.role, "content": parts})
    return out


def response_format(request: LlmRequest) -> dict[str, Any] | None:
    """OpenAI response_format for a request with an output schema, else None."""
    schema = request.output_schema
    if schema is None:
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.name, "schema": schema.schema, "strict": schema.strict},
    }
