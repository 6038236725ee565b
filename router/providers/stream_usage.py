"""What a streamed chat completion came to: its text, model, finish_reason and final usage.

With stream_options.include_usage, OpenAI (and the compatible endpoints that follow it) send a
last chunk with empty choices and the usage of the whole answer; the cost is settled from it.
A stream without that chunk has no usage: the caller must book the reservation instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bus.messages import Usage
from router.providers.usage import usage_from

DONE = "[DONE]"


@dataclass(kw_only=True)
class StreamSummary:
    """The streamed answer, assembled."""

    content: str = ""
    model: str = ""
    finish_reason: str = ""
    usage: Usage | None = None
    """None when the stream carried no usage chunk."""
    chunks: int = 0
    problems: list[str] = field(default_factory=list)
    """Lines that were not readable JSON chunks."""


def add_chunk(out: StreamSummary, chunk: Mapping[str, Any]) -> str:
    """Fold one chat.completion.chunk (as JSON) into out; returns the text it added."""
    out.chunks += 1
    out.model = str(chunk.get("model") or out.model)
    added = ""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        added += str(delta.get("content") or "")
        out.finish_reason = str(choice.get("finish_reason") or out.finish_reason)
    out.content += added
    if isinstance(chunk.get("usage"), dict):
        out.usage = usage_from(chunk["usage"])
    return added


def summarize_sse(lines: Iterable[str]) -> StreamSummary:
    """Assemble Server-Sent Event lines ("data: {...}") of a chat completion stream."""
    out = StreamSummary()
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == DONE:
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            out.problems.append(data[:80])
            continue
        if isinstance(chunk, dict):
            add_chunk(out, chunk)
    return out
