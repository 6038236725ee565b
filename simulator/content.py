"""Deterministic answers: the same model and messages always give the same content."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from router.tokens import count_text_tokens, text_pieces
from simulator.context_answer import answer_from, listings_in
from simulator.facts import BLIND, facts_of, inputs_of, item_texts
from simulator.request import ChatRequest
from simulator.schema_values import SchemaFaker
from simulator.tool_calls import ToolCall, tool_calls, wants_call
from simulator.words import Vocabulary, user_text

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, kw_only=True)
class Generated:
    """One generated answer and how it ended."""

    content: str
    finish_reason: FinishReason
    """"length" when max tokens cut the answer short."""
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    """Function calls the answer makes instead of content (tools offered or forced)."""


def seed_for(model: str, messages: list[dict[str, Any]]) -> int:
    """A stable seed from the model and the messages (not Python's randomised hash())."""
    blob = json.dumps([model, messages], sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big")


def generate(request: ChatRequest, *, break_schema: bool = False) -> Generated:
    """The answer to a request: text, a JSON object, or JSON valid for the requested schema.

    With break_schema, a json_schema answer is still JSON but does not validate.
    """
    rng = random.Random(seed_for(request.model, request.messages))
    if wants_call(request):
        calls = tool_calls(request, rng)
        tokens = sum(count_text_tokens(c.name + c.arguments) for c in calls)
        return Generated(
            content="", finish_reason="tool_calls", completion_tokens=tokens, tool_calls=calls
        )
    words = Vocabulary.from_messages(request.messages)
    schema = request.json_schema
    text = user_text(request.messages)
    if schema is not None:
        facts = facts_of(text)
        if not facts.known and _has_images(request.messages):
            facts = BLIND  # photos alone: the simulator cannot see them, and says so
        packed = _packed_items(schema, text)
        if packed is None and (inputs := inputs_of(text)) is not None:
            # Seeded by the inputs, as a packed item is: the same product's answer whether a
            # packing window held it with others or it went alone; and by the turns after
            # them, so that a retry ("your answer was invalid") gets another answer.
            turns = [*_as_messages(inputs), *_after_inputs(request.messages)]
            rng = random.Random(seed_for(request.model, turns))
        faker = SchemaFaker(schema, words, rng, facts)
        value = faker.value(schema) if packed is None else _packed(schema, packed, request.model)
        if break_schema:
            value = violate(faker, value)
        content = _dump(value)
    elif request.format_type in ("json_object", "json_schema"):
        content = _dump(
            {
                "answer": words.sentence(rng),
                "keywords": [words.word(rng).lower() for _ in range(3)],
                "confidence": round(rng.uniform(0.6, 0.99), 2),
            }
        )
    elif listings := listings_in(request.messages):  # a question about given products
        content = answer_from(listings, text)
    else:
        content = words.text(rng, rng.randint(2, 5))
    return _bounded(content, request.max_tokens)


def _as_messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _after_inputs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns after the last user message that gives inputs (a retry's)."""
    last = -1
    for i, message in enumerate(messages):
        if message.get("role") == "user" and inputs_of(user_text([message])) is not None:
            last = i
    return messages[last + 1 :]


def _has_images(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def _packed_items(schema: dict[str, Any], text: str) -> list[str] | None:
    """Each item's text, when schema is a packed call's (items pinned by prefixItems) and
    the prompt holds as many ``### Item N`` blocks; else None."""
    items = schema.get("properties", {}).get("items", {})
    prefix = items.get("prefixItems") if isinstance(items, dict) else None
    texts = item_texts(text)
    if not isinstance(prefix, list) or not texts or len(texts) != len(prefix):
        return None
    return texts


def _packed(schema: dict[str, Any], texts: list[str], model: str) -> dict[str, Any]:
    """A packed call's answer: item i written from item i's own facts and words only (words
    of the whole prompt put one product's name in another's listing), with a random stream
    seeded by that item alone (one seeded by the whole prompt changed every item's answer,
    a price among them, with whichever items a packing window happened to hold)."""
    prefix = schema["properties"]["items"]["prefixItems"]
    answers = []
    for item_schema, item_text in zip(prefix, texts, strict=True):
        item = _as_messages(item_text)
        rng = random.Random(seed_for(model, _as_messages(inputs_of(item_text) or item_text)))
        words = Vocabulary.from_messages(item)
        faker = SchemaFaker(schema, words, rng, facts_of(item_text))  # the root, for $refs
        answers.append(_item_answer(faker, item_schema))
    return {"items": answers}


def _item_answer(faker: SchemaFaker, item_schema: Any) -> Any:
    """One packed item: its index, and its answer drawn as the request alone would draw it
    (router.batching.prompt: the answer schema with an index added, or index and answer)."""
    props = item_schema.get("properties") if isinstance(item_schema, dict) else None
    index = props.get("index") if isinstance(props, dict) else None
    if not isinstance(props, dict) or not isinstance(index, dict) or "const" not in index:
        return faker.value(item_schema, depth=1)
    if set(props) == {"index", "answer"}:
        return {"index": index["const"], "answer": faker.value(props["answer"])}
    required = [key for key in item_schema.get("required", []) if key != "index"]
    rest = {k: v for k, v in props.items() if k != "index"}
    answer = faker.value({**item_schema, "properties": rest, "required": required})
    return {"index": index["const"], **answer} if isinstance(answer, dict) else answer


def violate(faker: SchemaFaker, valid: Any) -> Any:
    """A JSON value the faker's root schema rejects, derived from a valid one.

    Drops a required key, else adds a key where none may be added, else changes the type.
    A schema that accepts anything cannot be broken; then the valid value comes back.
    """
    root = faker.resolve(faker.root)
    if isinstance(valid, dict) and isinstance(root, dict):
        required = [key for key in root.get("required", []) if key in valid]
        if required:
            return {k: v for k, v in valid.items() if k != required[0]}
        if root.get("additionalProperties") is False:
            return {**valid, "unexpected_field": True}
    allowed = _types(faker, root)
    if allowed is None:
        return valid
    candidates: tuple[Any, ...] = ({"unexpected": True}, ["unexpected"], "unexpected", True, None)
    for candidate in (*candidates, 1.5):
        if _json_type(candidate) not in allowed:
            return candidate
    return valid


def _types(faker: SchemaFaker, schema: Any) -> set[str] | None:
    """The JSON types a schema can accept, or None when it accepts every type."""
    schema = faker.resolve(schema)
    if not isinstance(schema, dict):
        return None if schema is not False else set()
    if "const" in schema:
        return {_json_type(schema["const"])}
    if schema.get("enum"):
        return {_json_type(v) for v in schema["enum"]}
    kind = schema.get("type")
    if isinstance(kind, str | list):
        kinds = {kind} if isinstance(kind, str) else set(kind)
        return kinds | {"number"} if "integer" in kinds else kinds
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        union: set[str] = set()
        for branch in branches:
            types = _types(faker, branch)
            if types is None:
                return None
            union |= types
        return union
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names = {dict: "object", list: "array", str: "string", type(None): "null"}
    return names.get(type(value), "string")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _bounded(content: str, max_tokens: int | None) -> Generated:
    """content cut to max_tokens, as a model stops mid-answer at its token limit."""
    total = count_text_tokens(content)
    if max_tokens is None or total <= max_tokens:
        return Generated(content=content, finish_reason="stop", completion_tokens=total)
    kept, used = [], 0
    for piece, tokens in text_pieces(content):
        if used + tokens > max_tokens:
            break
        kept.append(piece)
        used += tokens
    return Generated(content="".join(kept), finish_reason="length", completion_tokens=used)
