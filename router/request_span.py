"""What the router's request span says about its answer: FlipSync's lever and money attributes,
the GenAI names of the model that answered, and (only when switched on) the prompt text."""

from __future__ import annotations

import json

from opentelemetry import trace

from bus.messages import ChatMessage, LlmRequest, LlmResult, TextPart

PROMPT_EVENT = "gen_ai.content.prompt"
COMPLETION_EVENT = "gen_ai.content.completion"
MAX_TEXT_CHARS = 16_000
"""Prompt or completion text kept on a span, at most; the rest is cut."""


def annotate(span: trace.Span, request: LlmRequest, result: LlmResult, *, prompts: bool) -> None:
    """Set the request span's attributes from its one result; prompt text only if prompts."""
    if not span.is_recording():  # nothing exports it: spend no time on it
        return
    span.set_attributes(
        {
            "flipsync.tenant": request.tenant,
            "flipsync.agent": request.agent,
            "flipsync.request_id": request.id,
            "flipsync.task_type": request.task_type,
            "flipsync.lever": result.lever.value,
            "flipsync.status": result.status.value,
            "flipsync.cost_micro_usd": result.cost_micro_usd,
            "flipsync.baseline_micro_usd": result.baseline_micro_usd,
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": result.usage.input_tokens,
            "gen_ai.usage.output_tokens": result.usage.output_tokens,
        }
    )
    if request.model_hint:
        span.set_attribute("gen_ai.request.model", request.model_hint)
    if result.model:
        span.set_attribute("gen_ai.response.model", result.model)
    if result.provider:
        span.set_attribute("gen_ai.provider.name", result.provider)
    if result.error_code is not None:
        span.set_attribute("flipsync.error_code", result.error_code.value)
    if prompts:
        span.add_event(PROMPT_EVENT, {"gen_ai.prompt": prompt_text(request.messages)})
        span.add_event(COMPLETION_EVENT, {"gen_ai.completion": _cut(result.content)})


def prompt_text(messages: list[ChatMessage]) -> str:
    """The messages as JSON [{role, content}], images shown as [image], cut to MAX_TEXT_CHARS."""
    shown = [{"role": m.role, "content": _content(m)} for m in messages]
    return _cut(json.dumps(shown, ensure_ascii=False))


def _content(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(p.text if isinstance(p, TextPart) else "[image]" for p in message.content)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"
