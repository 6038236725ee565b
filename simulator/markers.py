"""Prompt markers: a fault for one named model, written into the prompt, for exact tests.

A prompt holding ``[sim:schema_invalid:gpt-4o-mini]`` gets a schema-breaking answer when it
is sent to gpt-4o-mini, and a normal one from any other model: a test can make the cheap rung
of a cascade fail and the next one pass, with no randomness. The marker names any fault kind
(simulator.config.FaultKind). It overrides the seeded draw, which still happens, so
the draws of unmarked requests stay as they were.
"""

from __future__ import annotations

import re

from simulator.config import FaultKind
from simulator.request import ChatRequest

MARKER = re.compile(r"\[sim:([a-z_]+):([A-Za-z0-9_.:\-]+)\]")
_KINDS = frozenset(kind.value for kind in FaultKind)


def marker(kind: FaultKind, model: str) -> str:
    """The marker that forces kind on calls to model."""
    return f"[sim:{kind.value}:{model}]"


def marked_fault(chat: ChatRequest, drawn: FaultKind | None) -> FaultKind | None:
    """The fault a marker in the prompt forces on this call's model, else the drawn one."""
    for message in chat.messages:
        for text in _texts(message.get("content")):
            if "[sim:" not in text:
                continue
            for kind, model in MARKER.findall(text):
                if model == chat.model and kind in _KINDS:
                    return FaultKind(kind)
    return drawn


def _texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []
