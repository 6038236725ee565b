"""The pattern responder's policy: which turns are trivial, and the template that answers them.

It is conservative on purpose. A turn is trivial only when every word of it belongs to a
known greeting, thanks, acknowledgement or goodbye phrase, so a question mark, a digit, a
name, an order id, or any word outside the phrase lists sends the turn on to the model. It
never answers when the assistant's last turn asked something (then "ok" is an answer to
it), when the request has an output schema or needs tools, or outside conversational task
types.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection

from bus.messages import CachePolicy, ChatMessage, LlmRequest, TextPart


class Intent(enum.StrEnum):
    """What a trivial turn does."""

    GREETING = "greeting"
    THANKS = "thanks"
    ACK = "acknowledgement"
    GOODBYE = "goodbye"


PHRASES: dict[Intent, tuple[str, ...]] = {
    Intent.GREETING: (
        "hi", "hello", "hey", "hiya", "hi there", "hello there", "hey there", "greetings",
        "good morning", "good afternoon", "good evening",
    ),
    Intent.THANKS: (
        "thanks", "thank you", "thx", "ty", "cheers", "many thanks", "thanks a lot",
        "thanks so much", "thanks very much", "thank you so much", "thank you very much",
        "thanks again", "thank you again", "much appreciated", "appreciate it",
    ),
    Intent.ACK: (
        "ok", "okay", "ok done", "okay done", "done", "all done", "got it", "great", "perfect",
        "cool", "nice", "awesome", "sounds good", "will do", "understood", "noted", "alright",
        "all right", "good",
    ),
    Intent.GOODBYE: (
        "bye", "goodbye", "bye bye", "see you", "see you later", "talk later",
        "have a nice day", "have a good day",
    ),
}  # fmt: skip
"""Every phrase a trivial turn may be made of; anything else goes on to the model."""

TEMPLATES: dict[frozenset[Intent], str] = {
    frozenset({Intent.GREETING}): "Hi! How can I help you today?",
    frozenset({Intent.THANKS}): "You're welcome! Let me know if there's anything else I can do.",
    frozenset({Intent.ACK}): "Great. Let me know if there's anything else you need.",
    frozenset({Intent.GOODBYE}): "Goodbye! Come back any time you need a hand.",
    frozenset({Intent.THANKS, Intent.GOODBYE}): "You're welcome, and goodbye! Come back any time.",
}
"""The answer to each kind of trivial turn; a mix not listed here goes to the model. They
name no product or domain: an OpenAI client of /v1 gets them too (a newcomer's "hi" was
answered "How can I help you with your listings today?")."""

MAX_CHARS = 60
"""Longer turns are never trivial."""

_ALLOWED = re.compile(r"^[a-z' .,!-]+$")
_PUNCTUATION = re.compile(r"[.,!-]+")
_BY_LENGTH = sorted(
    ((tuple(p.split()), intent) for intent, ps in PHRASES.items() for p in ps),
    key=lambda item: -len(item[0]),
)


def intents_of(text: str) -> frozenset[Intent] | None:
    """The intents of a turn made only of trivial phrases, or None if any part is not one."""
    lowered = text.strip().lower().replace("\u2019", "'")
    if not lowered or len(lowered) > MAX_CHARS or not _ALLOWED.match(lowered):
        return None
    words = _PUNCTUATION.sub(" ", lowered).split()
    found: set[Intent] = set()
    i = 0
    while i < len(words):
        for phrase, intent in _BY_LENGTH:
            if tuple(words[i : i + len(phrase)]) == phrase:
                found.add(intent)
                i += len(phrase)
                break
        else:
            return None
    return frozenset(found) or None


def _text(message: ChatMessage) -> str | None:
    """A message's text, or None if it carries anything but text."""
    if isinstance(message.content, str):
        return message.content
    if all(isinstance(part, TextPart) for part in message.content):
        return " ".join(part.text for part in message.content if isinstance(part, TextPart))
    return None


def _assistant_asked(messages: list[ChatMessage]) -> bool:
    """Whether the assistant's last turn before the user's asked something or called a tool."""
    for message in reversed(messages):
        if message.role == "assistant":
            text = _text(message) or ""
            return "?" in text or bool(message.tool_calls)
        if message.role == "tool":
            return True
    return False


def trivial_reply(request: LlmRequest, task_types: Collection[str]) -> tuple[Intent, ...] | None:
    """The intents of a trivial last turn the responder may answer, or None (ask the model)."""
    if (
        request.task_type not in task_types
        or request.output_schema is not None
        or request.needs_tools
        or request.tool_choice not in ("auto", "none")
        or request.cache_policy is not CachePolicy.DEFAULT
        or not request.messages
    ):
        return None
    last = request.messages[-1]
    text = _text(last)
    if last.role != "user" or text is None or _assistant_asked(request.messages[:-1]):
        return None
    intents = intents_of(text)
    if intents is None:
        return None
    if Intent.ACK in intents and len(intents) > 1:  # "ok, thanks": the ack adds nothing
        intents = intents - {Intent.ACK}
    if intents not in TEMPLATES:  # an odd mix such as "hi, bye" goes to the model
        return None
    return tuple(sorted(intents))


def template_for(intents: tuple[Intent, ...]) -> str:
    """The template answering a trivial turn of these intents."""
    return TEMPLATES[frozenset(intents)]
