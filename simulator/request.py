"""Reading an OpenAI chat completion request body, with OpenAI's 400 answers for bad ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from simulator.errors import InvalidRequestError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
FORMATS = frozenset({"text", "json_object", "json_schema"})
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class ChatRequest:
    """The parts of a chat completion request the simulator acts on."""

    model: str
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = None
    """max_completion_tokens, else the older max_tokens; None means no limit."""
    stream: bool = False
    include_usage: bool = False
    """stream_options.include_usage: a last chunk carries the usage."""
    tools: tuple[dict[str, Any], ...] = ()
    """Tool definitions: prompt tokens ahead of the messages, as providers count them."""
    tool_choice: str | dict[str, Any] | None = None
    """"none", "auto", "required" or {"type": "function", "function": {"name": ...}}."""

    @property
    def format_type(self) -> str:
        """ "text", "json_object" or "json_schema"."""
        return str(self.response_format["type"]) if self.response_format else "text"

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The requested JSON schema, if the response_format is json_schema."""
        if self.format_type != "json_schema" or self.response_format is None:
            return None
        schema = self.response_format["json_schema"].get("schema")
        return schema if isinstance(schema, dict) else None


def parse_chat_request(body: bytes) -> ChatRequest:
    """A ChatRequest from the raw body; raises InvalidRequestError as OpenAI would answer 400."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("You must provide a model parameter.", param="model")
    if data.get("n") not in (None, 1):
        raise InvalidRequestError("Only n=1 is supported by the simulator.", param="n")
    stream = _optional(data, "stream", bool, False)
    options = _optional(data, "stream_options", dict, {})
    return ChatRequest(
        model=model,
        messages=_messages(data.get("messages")),
        response_format=_response_format(data.get("response_format")),
        max_tokens=_max_tokens(data),
        stream=stream,
        include_usage=stream and options.get("include_usage") is True,
        tools=_tools(data.get("tools")),
        tool_choice=_tool_choice(data.get("tool_choice")),
    )


def _tool_choice(value: object) -> str | dict[str, Any] | None:
    if value is None or value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return value
    raise InvalidRequestError(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a function.",
        param="tool_choice",
    )


def _tools(value: object) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        raise InvalidRequestError("Invalid 'tools': expected an array of objects.", param="tools")
    return tuple(value)


def _optional(data: dict[str, Any], key: str, kind: type[T], default: T) -> T:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise InvalidRequestError(f"Invalid type for '{key}'.", param=key, code="invalid_type")
    return value


def _max_tokens(data: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(f"Invalid '{key}': expected an integer >= 1.", param=key)
        return value
    return None


def _messages(value: object) -> list[dict[str, Any]]:
    if value is None:
        raise InvalidRequestError(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(
            "Invalid 'messages': expected a non-empty array.", param="messages", code="empty_array"
        )
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequestError(
                f"Invalid 'messages[{i}]': expected an object with a valid role.",
                param=f"messages[{i}]",
            )
        _check_content(message.get("content"), f"messages[{i}].content")
    return value


def _check_content(content: object, param: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequestError(f"Invalid '{param}': expected a string or an array.", param=param)
    for j, part in enumerate(content):
        ok = isinstance(part, dict) and (
            (part.get("type") == "text" and isinstance(part.get("text"), str))
            or (
                part.get("type") == "image_url"
                and isinstance(part.get("image_url"), dict)
                and isinstance(part["image_url"].get("url"), str)
            )
        )
        if not ok:
            raise InvalidRequestError(
                f"Invalid '{param}[{j}]': expected a text or image_url part.",
                param=f"{param}[{j}]",
            )


def _response_format(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in FORMATS:
        raise InvalidRequestError(
            "Invalid 'response_format': type must be text, json_object or json_schema.",
            param="response_format",
        )
    if value["type"] == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequestError(
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema",
                code="missing_required_parameter",
            )
        if not isinstance(spec.get("schema", {}), dict):
            raise InvalidRequestError(
                "Invalid 'response_format.json_schema.schema': expected an object.",
                param="response_format.json_schema.schema",
            )
    return value
