"""The packed call: one request that asks for every item's answer, shared instructions once.

The prompt keeps static parts first, so providers' prompt caching applies: the shared
messages, then the paragraphs every item's text starts with, then how to answer, then the
items. The answer is a JSON object ``{"items": [...]}`` whose item i is pinned to index i
(prefixItems with a const index). When the requests' schema is a plain object schema, each
item is that schema with an ``index`` property added (``{"index": i, ...the answer}``), so
an item is nested no deeper than a lone answer; otherwise each item wraps the answer,
``{"index": i, "answer": ...}``, with the schema sent once under ``$defs``. prefixItems is
outside OpenAI's strict subset, so the packed schema is sent with strict false: each item is
validated on its own after the split anyway, and an invalid one is retried alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bus.messages import ChatMessage, LlmRequest, OutputSchema
from router.providers.messages import openai_messages
from router.tokens import count_joined_tokens, count_messages_tokens, count_text_tokens

PACKED_SCHEMA_NAME = "packed_answers"
ANSWER_DEF = "flipsync_packed_answer"
"""Name of the requests' schema under the packed schema's $defs."""
MIN_SHARED_CHARS = 40
"""A common opening shorter than this is left in each item: not worth hoisting."""
ITEM_OVERHEAD_TOKENS = 12
"""Output tokens of one item's wrapper ({"index":..,"answer":..}) on top of its answer."""
_PARAGRAPH = "\n\n"


@dataclass(frozen=True, kw_only=True)
class PackedCall:
    """The packed request, and token estimates used to share its cost out."""

    request: LlmRequest
    """The one request sent upstream (its id is the pack id)."""
    shared_tokens: int
    """Estimated prompt tokens that serve every item (messages, instructions, schema)."""
    item_tokens: tuple[int, ...]
    """Estimated prompt tokens of each item's own part."""
    alone_tokens: tuple[int, ...]
    """Estimated prompt tokens of each request sent alone: its naive baseline's input."""
    input_tokens: int
    """Estimated input tokens of request as the provider bills them (its messages and output
    schema): router.stages.budget.estimate_input_tokens(request), from the items' counts."""


def item_text(request: LlmRequest) -> str:
    """The text of the request's last message, its own part of a packed prompt."""
    return request.messages[-1].text()


def shared_opening(texts: Sequence[str]) -> str:
    """The whole paragraphs every text starts with ("" when that is too short to matter)."""
    if len(texts) < 2:
        return ""
    common = os.path.commonprefix(list(texts))
    cut = common.rfind(_PARAGRAPH)
    if cut < MIN_SHARED_CHARS:
        return ""
    return common[: cut + len(_PARAGRAPH)]


def inline_index(answer: dict[str, Any]) -> bool:
    """Whether packed items are the answer object itself plus an "index" property."""
    props = answer.get("properties")
    combined = ("$ref", "allOf", "anyOf", "oneOf", "not", "if", "patternProperties")
    return (
        answer.get("type") == "object"
        and isinstance(props, dict)
        and "index" not in props
        and not any(key in answer for key in combined)
    )


def packed_schema(answer: dict[str, Any], count: int) -> dict[str, Any]:
    """A JSON object holding an array of count items, item i pinned to index i.

    The answer schema's own $defs/definitions move to the root, so its local $refs still
    resolve there.
    """
    answer = dict(answer)
    defs: dict[str, Any] = dict(answer.pop("$defs", {}) or {})
    definitions = answer.pop("definitions", None)
    answer.pop("$schema", None)
    if inline_index(answer):
        required = [key for key in answer.get("required", []) if key != "index"]
        items = [
            {
                **answer,
                "properties": {"index": {"const": i}, **answer["properties"]},
                "required": ["index", *required],
            }
            for i in range(count)
        ]
    else:
        defs[ANSWER_DEF] = answer
        ref = {"$ref": f"#/$defs/{ANSWER_DEF}"}
        items = [
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["index", "answer"],
                "properties": {"index": {"const": i}, "answer": ref},
            }
            for i in range(count)
        ]
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "minItems": count,
                "maxItems": count,
                "prefixItems": items,
                "items": False,
            }
        },
    }
    if defs:
        schema["$defs"] = defs
    if definitions:
        schema["definitions"] = definitions
    return schema


def build_packed_call(requests: Sequence[LlmRequest], pack_id: str) -> PackedCall:
    """The packed request for compatible requests (equal pack keys), in their order."""
    first = requests[0]
    if first.output_schema is None:
        raise ValueError("packed requests need an output schema")
    texts = [item_text(r) for r in requests]
    opening = shared_opening(texts)
    how = (
        f"You are given {len(requests)} separate items. Answer each one on its own, exactly as "
        'if it had been asked alone. Reply with one JSON object whose "items" array holds one '
        'answer per item, in the order given, each carrying the item\'s number as "index".'
    )
    own = [(f"### Item {i}\n", text[len(opening) :].strip()) for i, text in enumerate(texts)]
    blocks = [label + rest for label, rest in own]
    head = f"{opening.strip()}{_PARAGRAPH}{how}" if opening else how
    body = _PARAGRAPH.join([head, *blocks])
    messages = [*first.messages[:-1], ChatMessage(role="user", content=body)]
    schema = packed_schema(first.output_schema.schema, len(requests))
    request = LlmRequest(
        id=pack_id,
        tenant=first.tenant,
        agent=first.agent,
        workflow_id="",
        task_type=first.task_type,
        messages=messages,
        output_schema=OutputSchema(name=PACKED_SCHEMA_NAME, schema=schema, strict=False),
        max_output_tokens=sum(r.max_output_tokens + ITEM_OVERHEAD_TOKENS for r in requests) + 16,
        temperature=first.temperature,
        priority=first.priority,
    )
    # Counted from the items' own texts, which the earlier stages already counted (cached).
    item_tokens = tuple(count_joined_tokens(parts) for parts in own)
    body_tokens = count_joined_tokens(
        [head, *(part for parts in own for part in (_PARAGRAPH, *parts))]
    )
    framing = openai_messages([*first.messages[:-1], ChatMessage(role="user", content="")])
    total = count_messages_tokens(framing) + body_tokens
    return PackedCall(
        input_tokens=total + count_text_tokens(json.dumps(schema)),
        request=request,
        shared_tokens=max(total - sum(item_tokens), 0),
        item_tokens=item_tokens,
        alone_tokens=tuple(count_messages_tokens(openai_messages(r.messages)) for r in requests),
    )
