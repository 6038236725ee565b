"""Prompt trimming: send only what the answer needs, with the static parts first.

- Tool definitions are sent only when the turn needs tools: the agent says so, tool_choice
  demands a call, or the conversation is inside a tool exchange.
- Conversation history is pruned to a token budget per task type. System (and developer)
  prompts are always kept, and so are the newest turns; a turn starts at a user message and
  keeps its assistant tool calls with their tool answers. The cut only moves in steps of
  ``step`` turns, so consecutive turns of one conversation send the same prefix, which the
  provider's automatic prompt cache then serves at the cached price.
- max output tokens are capped per task type.
- System prompts given before the conversation starts go first, and tools are sorted by
  name, so that the opening of every request is as stable as it can be.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from bus.messages import ChatMessage, LlmRequest
from router.providers.messages import openai_messages
from router.tokens import REPLY_PRIMING_TOKENS, count_message_tokens, count_tools_tokens

STATIC_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, kw_only=True)
class TrimPolicy:
    """How far one task type's requests are trimmed."""

    history_budget: int = 0
    """Prompt tokens of conversation history kept (system prompts aside); 0 keeps it all."""
    step: int = 1
    """Turns by which the history cut moves, so the kept prefix stays stable."""
    output_cap: int = 0
    """Most output tokens a request may ask for; 0 means no cap."""


@dataclass(frozen=True, kw_only=True)
class Trimmed:
    """A trimmed request and what trimming did to it."""

    request: LlmRequest
    saved_input_tokens: int = 0
    """Prompt tokens the original request had and the trimmed one does not."""
    changes: tuple[str, ...] = ()
    """What changed, for the result's reason: "tools dropped", "history 12->4 turns"..."""


def prompt_tokens(request: LlmRequest) -> int:
    """Prompt tokens the provider will count for request: tools, messages and framing."""
    messages = _tokens(request.messages)
    return messages + REPLY_PRIMING_TOKENS + count_tools_tokens(request.tools)


def tools_needed(request: LlmRequest) -> bool:
    """Whether request must send its tool definitions."""
    if not request.tools or request.tool_choice == "none":
        return False
    if request.needs_tools or request.tool_choice != "auto":
        return True
    return any(m.role == "tool" or m.tool_calls for m in request.messages)


def static_first(messages: list[ChatMessage]) -> list[ChatMessage]:
    """System prompts given before the first assistant turn moved to the front, in order."""
    first_reply = next(
        (i for i, m in enumerate(messages) if m.role in ("assistant", "tool")), len(messages)
    )
    opening = messages[:first_reply]
    static = [m for m in opening if m.role in STATIC_ROLES]
    if not static or opening[: len(static)] == static:
        return messages
    rest = [m for m in opening if m.role not in STATIC_ROLES]
    return [*static, *rest, *messages[first_reply:]]


def turns(messages: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Messages grouped into turns, each starting at a user message (the first may not)."""
    grouped: list[list[ChatMessage]] = []
    for message in messages:
        if message.role == "user" or not grouped:
            grouped.append([message])
        else:
            grouped[-1].append(message)
    return grouped


def _tokens(messages: list[ChatMessage]) -> int:
    return sum(count_message_tokens(m) for m in openai_messages(messages))


def prune_history(messages: list[ChatMessage], budget: int, step: int) -> list[ChatMessage]:
    """The leading system prompts plus the newest turns that fit in budget tokens.

    The cut is the first multiple of step (counted from the first turn) whose remaining
    turns fit; the current turn is always kept, even alone over the budget.
    """
    return _prune(messages, budget, step)[0]


def _prune(
    messages: list[ChatMessage], budget: int, step: int
) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """(kept, dropped): only the newest turns are counted, up to the first over the budget."""
    head_len = next((i for i, m in enumerate(messages) if m.role not in STATIC_ROLES), 0)
    if budget <= 0 or head_len == len(messages):
        return messages, []
    head, conversation = messages[:head_len], turns(messages[head_len:])
    last = len(conversation) - 1
    over, total = -1, 0  # over: the newest turn from which the rest no longer fits
    for i in range(last, -1, -1):
        total += _tokens(conversation[i])
        if total > budget:
            over = i
            break
    if over < 0 or last == 0:
        return messages, []
    cut = next((i for i in range(max(step, 1), last, max(step, 1)) if i > over), last)
    kept = [*head, *(m for turn in conversation[cut:] for m in turn)]
    return kept, [m for turn in conversation[:cut] for m in turn]


def _sorted_tools(tools: list[dict[str, object]]) -> list[dict[str, object]]:
    def name(tool: dict[str, object]) -> str:
        function = tool.get("function")
        return str(function.get("name", "")) if isinstance(function, dict) else ""

    ordered = sorted(tools, key=name)
    return ordered if ordered != tools else tools


def trim(request: LlmRequest, policy: TrimPolicy) -> Trimmed:
    """request with unneeded tools dropped, history pruned, output capped, static parts first."""
    changes: list[str] = []
    updates: dict[str, object] = {}
    messages = static_first(request.messages)
    if messages is not request.messages:
        changes.append("system prompts first")
    pruned, dropped = _prune(messages, policy.history_budget, policy.step)
    if pruned is not messages:
        before, after = len(turns(messages)), len(turns(pruned))
        changes.append(f"history {before}->{after} turns")
    if pruned is not request.messages:
        updates["messages"] = pruned
    saved = _tokens(dropped)  # equal to prompt_tokens(request) - prompt_tokens(trimmed)
    if request.tools:
        if not tools_needed(request):
            updates["tools"], updates["tool_choice"] = [], "auto"
            changes.append(f"{len(request.tools)} tools not sent")
            saved += count_tools_tokens(request.tools)
        elif (ordered := _sorted_tools(request.tools)) is not request.tools:
            updates["tools"] = ordered
    if 0 < policy.output_cap < request.max_output_tokens:
        updates["max_output_tokens"] = policy.output_cap
        changes.append(f"max output {request.max_output_tokens}->{policy.output_cap}")
    if not updates:
        return Trimmed(request=request)
    trimmed = msgspec.structs.replace(request, **updates)
    return Trimmed(request=trimmed, saved_input_tokens=saved, changes=tuple(changes))
