"""The fingerprint of a request: what the exact cache and dedup key on.

Two requests share a fingerprint when the provider would be sent the same thing for the same
tenant: the tenant, the model tier asked for, the task type (routing reads it), the quality
floor, the normalized messages, and every parameter that changes the answer (output schema,
temperature, max output tokens, tools sent, tool choice). Normalization only removes what a
model cannot see a difference in: Unicode composition, runs of spaces and tabs, spaces at
line ends, extra blank lines. Case, punctuation and line breaks stay.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable

import msgspec

from bus.memo import text_memo
from bus.messages import ChatMessage, ImagePart, LlmRequest, TextPart
from cost_ledger.catalog import PriceCatalog

FINGERPRINT_VERSION = 1
"""Bumped whenever normalization changes, so old entries are never read under new rules."""
ANY_TIER = "auto"
"""The tier of a request that names no known model: whatever routing picks."""

_ENCODER = msgspec.json.Encoder(order="sorted")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@text_memo(4096)  # histories and system prompts repeat across requests (long texts unkept)
def normalize_text(text: str) -> str:
    """NFC, CRLF as LF, runs of spaces as one, no spaces at line ends, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _message(message: ChatMessage) -> list[object]:
    content: object
    if isinstance(message.content, str):
        content = normalize_text(message.content)
    else:
        content = [_part(part) for part in message.content]
    return [message.role, content, message.tool_calls, message.tool_call_id]


def _part(part: TextPart | ImagePart) -> list[object]:
    if isinstance(part, TextPart):
        return ["text", normalize_text(part.text)]
    return ["image", part.url, part.detail]


def fingerprint(request: LlmRequest, tier: str) -> str:
    """32 hex digits naming everything that decides the answer of request for its tenant."""
    schema = request.output_schema
    blob = [
        FINGERPRINT_VERSION,
        request.tenant,
        tier,
        request.task_type,
        request.quality_floor,
        request.temperature,
        request.max_output_tokens,
        None if schema is None else [schema.name, schema.schema, schema.strict],
        request.tools,
        request.tool_choice if request.tools else "",
        [_message(m) for m in request.messages],
    ]
    return hashlib.blake2b(_ENCODER.encode(blob), digest_size=16).hexdigest()


def requested_tier(request: LlmRequest, catalog: PriceCatalog) -> str:
    """The tier of the model the request hints at, or ANY_TIER when it names none we price."""
    hint = request.model_hint
    if hint and hint in catalog:
        return catalog.get(hint).tier.value
    return ANY_TIER


def fingerprinter(catalog: PriceCatalog) -> Callable[[LlmRequest], str]:
    """fingerprint() with the tier read from catalog: the key function cache and dedup share."""

    def key(request: LlmRequest) -> str:
        return fingerprint(request, requested_tier(request, catalog))

    return key
