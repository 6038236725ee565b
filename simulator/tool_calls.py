"""Tool calls, as a model makes them when tools are offered or a call is forced: the tool
named by tool_choice, else the one whose name and description share most words with the
question, with arguments valid for its parameters' schema, written from the prompt."""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from typing import Any

from simulator.facts import facts_of
from simulator.request import ChatRequest
from simulator.schema_values import SchemaFaker
from simulator.words import Vocabulary, user_text


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """One function call of an answer."""

    id: str
    name: str
    arguments: str
    """The arguments as a JSON text, as OpenAI sends them."""


def wants_call(request: ChatRequest) -> bool:
    """Whether this turn answers with a tool call: forced, or tools offered ("auto") and the
    last message is not a tool's result (after a result, a model answers in words)."""
    if not request.tools or request.tool_choice == "none":
        return False
    if request.tool_choice is not None and request.tool_choice != "auto":
        return True
    last = request.messages[-1].get("role") if request.messages else None
    return last not in ("tool", "function")


def tool_calls(request: ChatRequest, rng: random.Random) -> tuple[ToolCall, ...]:
    """The call this turn makes (one), with arguments valid for the tool's parameters."""
    tool = _chosen(request)
    function = tool.get("function", {})
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    words = Vocabulary.from_messages(request.messages)
    text = user_text(request.messages)
    value = SchemaFaker(schema, words, rng, facts_of(text)).value(schema)
    call_id = f"call_sim{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}"
    arguments = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (ToolCall(id=call_id, name=str(function.get("name", "tool")), arguments=arguments),)


def _chosen(request: ChatRequest) -> dict[str, Any]:
    choice = request.tool_choice
    functions = [t for t in request.tools if isinstance(t.get("function"), dict)]
    if not functions:
        return {"function": {"name": "tool", "parameters": {"type": "object"}}}
    if isinstance(choice, dict):
        wanted = choice["function"].get("name")
        named = [t for t in functions if t["function"].get("name") == wanted]
        if named:
            return named[0]
    asked = set(_words(user_text(request.messages)))

    def overlap(tool: dict[str, Any]) -> int:
        function = tool["function"]
        return len(
            asked & set(_words(f"{function.get('name', '')} {function.get('description', '')}"))
        )

    return max(functions, key=overlap)  # the first on a tie, as listed


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z]{3,}", text.replace("_", " "))]
