"""Translation of FlipSync wire messages into the OpenAI chat request body."""

from __future__ import annotations

from typing import Any

from bus.messages import ChatMessage, ImagePart, LlmRequest, TextPart

TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})


def openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages in OpenAI's shape, image parts as image_url objects."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any]
        if isinstance(message.content, str):
            item = {"role": message.role, "content": message.content}
        else:
            parts: list[dict[str, Any]] = []
            for part in message.content:
                if isinstance(part, TextPart):
                    parts.append({"type": "text", "text": part.text})
                elif isinstance(part, ImagePart):
                    image = {"url": part.url, "detail": part.detail}
                    parts.append({"type": "image_url", "image_url": image})
            item = {"role": message.role, "content": parts}
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
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


def tool_fields(request: LlmRequest) -> dict[str, Any]:
    """tools and tool_choice for the body: empty when the request sends no tools."""
    if not request.tools:
        return {}
    choice = request.tool_choice or "auto"
    if choice not in TOOL_CHOICE_WORDS:
        return {
            "tools": request.tools,
            "tool_choice": {"type": "function", "function": {"name": choice}},
        }
    return {"tools": request.tools, "tool_choice": choice}
