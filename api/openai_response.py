"""An LlmResult written as OpenAI's chat.completion object, or as its stream of chunks.

Besides OpenAI's fields, the answer says what FlipSync did: an extra ``flipsync`` object in
the body (lever, cost and baseline in micro-dollars, provider, request id, simulated) and the
same facts as ``x-flipsync-*`` response headers, which a streamed answer carries too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from api.errors import error_body
from api.openai_errors import OpenAIError
from api.openai_request import AUTO_MODEL
from bus.messages import LlmResult

WORDS_PER_CHUNK = 4
"""Words per streamed content chunk."""
_WORD_STARTS = re.compile(r"(?<=\s)(?=\S)")


def completion_id(result: LlmResult) -> str:
    """The chat completion id: the request id, so an answer can be found in the ledger."""
    return f"chatcmpl-{result.request_id}"


def answer_model(result: LlmResult) -> str:
    """The model an answer names: the one that wrote it (routed to, or whose earlier answer a
    cache or dedup served), or flipsync-auto for text no model wrote (the pattern
    responder's template), never "": OpenAI clients read it as a model id of /v1/models."""
    return result.model or AUTO_MODEL


def flipsync_fields(result: LlmResult) -> dict[str, Any]:
    """What FlipSync did for this answer: the lever that served it and what it cost."""
    return {
        "request_id": result.request_id,
        "lever": result.lever.value,
        "cost_micro_usd": result.cost_micro_usd,
        "baseline_micro_usd": result.baseline_micro_usd,
        "provider": result.provider,
        "simulated": result.simulated,
    }


def flipsync_headers(result: LlmResult) -> dict[str, str]:
    """The same facts as response headers (x-flipsync-lever, -cost-micro-usd, ...)."""
    return {
        "x-flipsync-request-id": result.request_id,
        "x-flipsync-lever": result.lever.value,
        "x-flipsync-cost-micro-usd": str(result.cost_micro_usd),
        "x-flipsync-baseline-micro-usd": str(result.baseline_micro_usd),
        "x-flipsync-model": result.model,
        "x-flipsync-simulated": "true" if result.simulated else "false",
    }


def usage(result: LlmResult) -> dict[str, Any]:
    """OpenAI's usage block with the provider's details as they came: cached and cache-written
    prompt tokens, image tokens, and the reasoning tokens inside completion_tokens."""
    used = result.usage
    return {
        "prompt_tokens": used.input_tokens,
        "completion_tokens": used.output_tokens,
        "total_tokens": used.input_tokens + used.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": used.cached_input_tokens,
            "cache_write_tokens": used.cache_write_input_tokens,
            "image_tokens": used.image_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": used.reasoning_tokens},
    }


def finish_reason(result: LlmResult) -> str:
    """The provider's finish_reason as it came (an answer cut at max_tokens stays "length");
    for an answer no provider call made (a cache, the pattern responder), "tool_calls" when
    it asks for tools, else "stop"."""
    if result.finish_reason:
        return result.finish_reason
    return "tool_calls" if result.tool_calls else "stop"


def completion_body(result: LlmResult, created: int) -> dict[str, Any]:
    """The non-streamed answer: one chat.completion object."""
    message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(result),
    }
    return {
        "id": completion_id(result),
        "object": "chat.completion",
        "created": created,
        "model": answer_model(result),
        "choices": [choice],
        "usage": usage(result),
        "system_fingerprint": None,
        "flipsync": flipsync_fields(result),
    }


def content_pieces(text: str) -> list[str]:
    """The text cut into pieces of a few words; joined, they are the text exactly."""
    words = _WORD_STARTS.split(text)
    return [
        "".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)
    ] or [""]


def stream_events(result: LlmResult, created: int, *, include_usage: bool) -> Iterator[bytes]:
    """The whole answer as Server-Sent Events of chat.completion.chunk objects, then ``[DONE]``.

    For an answer no provider call streamed (caches, dedup, packing and the Batch API all
    work on whole answers; a streamed call is relayed as it comes, see api.openai_stream): the
    final text is cut into chunks of a few words. The frames are OpenAI's: a role chunk,
    content chunks, tool call chunks if any, a finish chunk, a usage chunk (no choices) when
    stream_options.include_usage, then ``data: [DONE]``; the endpoint sends them all in one
    write, since holding back text it already has would only add latency.
    """
    head = {
        "id": completion_id(result),
        "object": "chat.completion.chunk",
        "created": created,
        "model": answer_model(result),
        "system_fingerprint": None,
    }
    yield chunk_event(head, {"role": "assistant", "content": ""})
    yield from answer_tail(head, result, result.content, include_usage=include_usage)


def answer_tail(
    head: dict[str, Any], result: LlmResult, text: str, *, include_usage: bool
) -> Iterator[bytes]:
    """The events after the text already written: text (in pieces of a few words), tool
    calls, the finish chunk (with the flipsync object), the usage chunk when asked, then
    ``[DONE]``."""
    if text:
        for piece in content_pieces(text):
            yield chunk_event(head, {"content": piece})
    for index, call in enumerate(result.tool_calls):
        yield chunk_event(head, {"tool_calls": [{"index": index, **call}]})
    # The x-flipsync-* headers of a relayed stream left before the cost was known: the
    # finish chunk carries the same facts, as the non-streamed body's flipsync object does.
    finish = chunk_event(head | {"flipsync": flipsync_fields(result)}, {}, finish_reason(result))
    yield finish
    if include_usage:
        yield _event(head | {"choices": [], "usage": usage(result)})
    yield b"data: [DONE]\n\n"


def chunk_event(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One chat.completion.chunk event with one choice."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _event(head | {"choices": [choice]})


def error_event(error: OpenAIError) -> bytes:
    """The event that ends a stream with an error, as OpenAI sends it (the client raises)."""
    return _event(error_body(error.message, kind=error.kind, code=error.code, param=error.param))


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
