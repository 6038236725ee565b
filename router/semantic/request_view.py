"""What the semantic cache sees of a request and of an answer (pure, no I/O).

A request is compared on its last user message only: that is the question, embedded. All
the rest (system prompt, earlier turns, output schema, model hint, tools) must be identical,
and so must the question's entities: together with the task type they form the request's
partition, and only entries of the same tenant and partition are ever compared. Requests
with images, tool use, or a question longer than the model reads whole are not cached
semantically (an embedding of a truncated text would ignore its tail).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import msgspec

from bus.messages import LlmRequest, LlmResult
from router.semantic import entities as ent
from router.semantic import minimal_pairs
from router.semantic.entity_types import Entities

_SPACE = re.compile(r"\s+")
MAX_QUESTION_CHARS = 8192
"""Longest question looked at: the embedder reads 256 word pieces of at most 18 characters,
so a longer text cannot be read whole (and is not cached semantically, see the module doc).
Checked before the entity extractor and the word split, which take time in proportion to
the text: a 4 MiB question would have held the router's event loop for seconds."""


@dataclass(frozen=True, kw_only=True)
class RequestView:
    """The semantic cache's view of one request."""

    tenant: str
    text: str
    """The question: the last user message's text, which is embedded."""
    entities: Entities
    partition: str
    """Digest of task type, everything but the question, and the question's entities."""
    words: tuple[str, ...] = ()
    """The question's words as minimal pairs compare them (minimal_pairs.words)."""


def view(request: LlmRequest, model_name: str) -> RequestView | None:
    """The request as the semantic cache compares it, or None if it cannot be compared."""
    if not request.messages or request.needs_tools:
        return None
    *context, last = request.messages
    if last.role != "user" or last.tool_calls:
        return None
    if any(message.images() for message in request.messages):
        return None  # a question about a picture is not its words alone
    text = last.text()
    if len(text) > MAX_QUESTION_CHARS or not text.strip():
        return None
    found = ent.extract(text)
    shape = msgspec.json.encode(
        [
            model_name,
            request.task_type,
            context,
            request.output_schema,
            request.model_hint,
            request.tools,
            request.tool_choice,
            round(request.temperature, 2),
            round(request.quality_floor, 2),
            ent.signature(found),
        ]
    )
    partition = hashlib.blake2b(shape, digest_size=16).hexdigest()
    text = text.strip()
    return RequestView(
        tenant=request.tenant,
        text=text,
        entities=found,
        partition=partition,
        words=minimal_pairs.words(text),
    )


def answer_key(result: LlmResult) -> str:
    """Digest of an answer: parsed output canonically, else the text with spacing folded."""
    if result.parsed is not None:
        body = json.dumps(result.parsed, sort_keys=True, separators=(",", ":"), default=str)
    else:
        body = _SPACE.sub(" ", result.content).strip().lower()
    return hashlib.blake2b(body.encode(), digest_size=12).hexdigest()
