"""An OpenAI chat completion request body, read into the LlmRequest the router pipeline takes.

Mapped: messages (text and image_url parts, assistant tool_calls, tool answers), temperature,
max_completion_tokens (or the older max_tokens), response_format (json_schema, json_object),
tools and tool_choice, model (as the model hint; "flipsync-auto" leaves routing free), user
(the end user, for message quotas), stream and stream_options.include_usage. FlipSync's own
knobs come as headers: X-FlipSync-Agent, X-FlipSync-Task-Type, X-FlipSync-Priority,
X-FlipSync-Cache, X-FlipSync-Workflow, X-FlipSync-Workspace and X-FlipSync-Project (an API
key bound to a workspace or project fixes those: see api.auth); an Idempotency-Key header
makes the request id stable, so a retried call is answered once (the id digests the key,
the body and the knob headers, so a key reused for a different call is a different
request). Unset, temperature is 0 (not OpenAI's 1), which lets identical calls share the
exact cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.openai_errors import OpenAIError
from bus import subjects
from bus.codec import encode
from bus.messages import (
    DEFAULT_PROJECT,
    DEFAULT_WORKSPACE,
    CachePolicy,
    ChatMessage,
    ImagePart,
    LlmRequest,
    OutputSchema,
    Part,
    Priority,
    TextPart,
)
from bus.settings import Settings

AUTO_MODEL = "flipsync-auto"
"""The model name that asks for no particular model: routing picks it."""
AGENT_HEADER = "x-flipsync-agent"
TASK_TYPE_HEADER = "x-flipsync-task-type"
PRIORITY_HEADER = "x-flipsync-priority"
CACHE_HEADER = "x-flipsync-cache"
WORKFLOW_HEADER = "x-flipsync-workflow"
WORKSPACE_HEADER = "x-flipsync-workspace"
PROJECT_HEADER = "x-flipsync-project"
IDEMPOTENCY_HEADER = "idempotency-key"
DEFAULT_TASK_TYPE = "general"
E = TypeVar("E", Priority, CachePolicy)
MAX_TOOLS = 128
"""Most tools a call may offer (OpenAI's own limit)."""
# A list field stops at its first bad item: pydantic otherwise writes one error per item,
# and a 4 MB body of a million wrong items took seconds of the event loop to describe
# (only the first error is ever reported).
FailFast = Field(fail_fast=True)
Tools = Annotated[list[dict[str, Any]], Field(max_length=MAX_TOOLS, fail_fast=True)]


class _ImageUrl(BaseModel):
    url: str
    detail: str = "auto"


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: _ImageUrl | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | Annotated[list[_Part], FailFast] | None = None
    tool_calls: Annotated[list[dict[str, Any]], FailFast] | None = None
    tool_call_id: str | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """The fields of a chat completion request the endpoint acts on; others are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1, fail_fast=True)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None
    tools: Tools | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    n: int | None = None
    user: str | None = None


@dataclass(frozen=True)
class ChatCall:
    """One OpenAI-compatible call: the request to send, and how to answer."""

    request: LlmRequest
    stream: bool
    include_usage: bool


def read_call(
    body: object,
    headers: Mapping[str, str],
    *,
    tenant: str,
    settings: Settings,
    is_model: Callable[[str], bool] | None = None,
    place: tuple[str, str] = (DEFAULT_WORKSPACE, DEFAULT_PROJECT),
) -> ChatCall:
    """The call a parsed JSON body and its headers describe, made in place (workspace,
    project: see named_place); raises OpenAIError (400, or 404 model_not_found for a model
    that is neither flipsync-auto nor one is_model knows, or 413 for a request larger on the
    wire than the router takes: Settings.max_request_bytes)."""
    try:
        parsed = ChatCompletionBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise OpenAIError(400, f"Invalid request: {param}: {first['msg']}", param=param) from None
    if parsed.n not in (None, 1):
        raise OpenAIError(400, "Only n=1 is supported.", param="n")
    model = parsed.model if is_model is None else known_model(parsed.model, is_model)
    limit = parsed.max_completion_tokens or parsed.max_tokens
    request = LlmRequest(
        id=_request_id(tenant, headers.get(IDEMPOTENCY_HEADER), body, headers),
        tenant=tenant,
        agent=_agent(headers.get(AGENT_HEADER), settings),
        workflow_id=_token(headers, WORKFLOW_HEADER, ""),
        task_type=_token(headers, TASK_TYPE_HEADER, DEFAULT_TASK_TYPE),
        messages=[_message(m, i) for i, m in enumerate(parsed.messages)],
        output_schema=_output_schema(parsed.response_format),
        temperature=parsed.temperature if parsed.temperature is not None else 0.0,
        priority=_choice(headers, PRIORITY_HEADER, Priority, Priority.INTERACTIVE),
        cache_policy=_choice(headers, CACHE_HEADER, CachePolicy, CachePolicy.DEFAULT),
        deadline_ms=int((time.time() + settings.openai_timeout_s) * 1000),
        model_hint="" if model == AUTO_MODEL else model,
        tools=parsed.tools or [],
        **_tool_choice(parsed.tool_choice, bool(parsed.tools)),
        tags={"user": parsed.user, "source": "openai"} if parsed.user else {"source": "openai"},
        workspace=place[0],
        project=place[1],
    )
    if limit is not None:
        request = msgspec.structs.replace(request, max_output_tokens=limit)
    stream = bool(parsed.stream)
    if stream:
        request = msgspec.structs.replace(request, stream=True)
    _check_size(request, settings.max_request_bytes)
    options = parsed.stream_options
    return ChatCall(
        request=request,
        stream=stream,
        include_usage=stream and bool(options and options.include_usage),
    )


def _check_size(request: LlmRequest, limit: int) -> None:
    """OpenAIError 413 for a request the router would refuse as oversized.

    A body under the 4 MiB HTTP limit can encode larger (every message gains its default
    fields: 110,000 one-letter messages in 3.7 MB were a 7 MB LlmRequest); the router then
    refused it and its dead letter, a third larger again, was over NATS' max_payload, so the
    request was redelivered ten times and lost: no answer, no dead letter, a 504 after
    openai_timeout_s."""
    size = len(encode(request))
    if size > limit:
        raise OpenAIError(
            413,
            f"the request is {size} bytes as FlipSync sends it, over the limit of {limit}",
            code="request_too_large",
        )


MAX_QUOTED_MODEL = 80
"""How much of an unknown model name an error repeats (a body may name a 4 MB one)."""


def quoted_model(model: str) -> str:
    """A model name as an error repeats it: whole when short, else its start and its length."""
    if len(model) <= MAX_QUOTED_MODEL:
        return model
    return f"{model[:MAX_QUOTED_MODEL]}... ({len(model)} characters)"


def known_model(model: str, is_model: Callable[[str], bool]) -> str:
    """The catalog model a call names: itself, or the model a dated snapshot name stands for
    ("gpt-4o-mini-2024-07-18" is "gpt-4o-mini"); flipsync-auto as is. Any other name is
    OpenAI's 404 model_not_found, never silently answered by another model."""
    if model == AUTO_MODEL or is_model(model):
        return model
    undated = _SNAPSHOT.sub("", model)
    if undated != model and is_model(undated):
        return undated
    raise OpenAIError(
        404,
        f"The model `{quoted_model(model)}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")

KNOB_HEADERS = (AGENT_HEADER, TASK_TYPE_HEADER, PRIORITY_HEADER, CACHE_HEADER, WORKFLOW_HEADER)
"""The headers that change the request, digested with the body under an Idempotency-Key."""
PLACE_HEADERS = (WORKSPACE_HEADER, PROJECT_HEADER)
"""Knob headers digested only when sent (so ids of calls without them stay as they were)."""


def named_place(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The workspace and project the headers name (None: not named); OpenAIError (400) for
    a value that is not 1 to 64 letters, digits, _ and -."""
    workspace = _token(headers, WORKSPACE_HEADER, "") or None
    project = _token(headers, PROJECT_HEADER, "") or None
    return workspace, project


def _request_id(
    tenant: str, idempotency_key: str | None, body: object, headers: Mapping[str, str]
) -> str:
    """A fresh id, or with an Idempotency-Key one stable for the same key, body and knobs:
    a key reused for a different call gets that call's own answer, never the first's."""
    if not idempotency_key:
        return f"oa-{uuid.uuid4().hex}"
    knobs = {name: headers.get(name, "") for name in KNOB_HEADERS}
    knobs.update({name: headers[name] for name in PLACE_HEADERS if headers.get(name)})
    call = json.dumps([body, knobs], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{tenant}\0{idempotency_key}\0{call}".encode())
    return "oa-" + digest.hexdigest()[:40]


def _token(headers: Mapping[str, str], name: str, default: str) -> str:
    """A header that names something (a task type, a workflow): letters, digits, _ and -."""
    value = headers.get(name)
    if not value:
        return default
    try:
        return subjects.token(value)
    except ValueError as exc:
        raise OpenAIError(400, f"{name}: {exc}", param=name) from None


def _agent(named: str | None, settings: Settings) -> str:
    if not named or named == settings.openai_agent:
        return settings.openai_agent
    if named not in settings.extra_agents:
        allowed = sorted({settings.openai_agent} | settings.extra_agents)
        raise OpenAIError(
            400,
            f"unknown agent {named!r} in X-FlipSync-Agent; allowed: {', '.join(allowed)}",
            param=AGENT_HEADER,
            code="unknown_agent",
        )
    return named


def _choice(headers: Mapping[str, str], name: str, kind: type[E], default: E) -> E:
    value = headers.get(name)
    if not value:
        return default
    try:
        return kind(value.lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise OpenAIError(400, f"{name} must be one of {allowed}", param=name) from None


def _message(message: _Message, index: int) -> ChatMessage:
    content: str | list[Part]
    if message.content is None or isinstance(message.content, str):
        content = message.content or ""
    else:
        content = [
            _part(part, f"messages.{index}.content.{j}") for j, part in enumerate(message.content)
        ]
    return ChatMessage(
        role=message.role,
        content=content,
        tool_calls=message.tool_calls or [],
        tool_call_id=message.tool_call_id or "",
    )


def _part(part: _Part, where: str) -> Part:
    if part.type == "text" and part.text is not None:
        return TextPart(text=part.text)
    if part.type == "image_url" and part.image_url is not None:
        return ImagePart(url=part.image_url.url, detail=part.image_url.detail)
    raise OpenAIError(
        400, f"Invalid {where}: a {part.type} part without its {part.type}", param=where
    )


def _output_schema(response_format: dict[str, Any] | None) -> OutputSchema | None:
    if response_format is None or response_format.get("type") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return OutputSchema(name="json_object", schema={"type": "object"}, strict=False)
    spec = response_format.get("json_schema")
    if kind != "json_schema" or not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise OpenAIError(
            400,
            "Invalid response_format: type must be text, json_object or json_schema (with a name)",
            param="response_format",
        )
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise OpenAIError(400, "response_format.json_schema.schema must be an object",
                          param="response_format.json_schema.schema")  # fmt: skip
    return OutputSchema(name=spec["name"], schema=schema, strict=spec.get("strict") is not False)


def _tool_choice(choice: str | dict[str, Any] | None, has_tools: bool) -> dict[str, Any]:
    """tool_choice and needs_tools: a named function becomes its name."""
    if choice is None:
        return {"tool_choice": "auto", "needs_tools": has_tools}
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise OpenAIError(400, "tool_choice must be auto, none, required or a function",
                              param="tool_choice")  # fmt: skip
        return {"tool_choice": choice, "needs_tools": has_tools and choice != "none"}
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str) or not name:
        raise OpenAIError(400, "tool_choice must name a function", param="tool_choice")
    return {"tool_choice": name, "needs_tools": has_tools}
