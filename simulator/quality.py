"""Simulated models that differ: a per-model (and per-task) quality and a seeded per-prompt
difficulty decide which answers come back broken.

Every prompt gets a difficulty in 0..1 from a hash of its messages (the same for every
model: a hard prompt is hard for all of them) and every (model, prompt) pair a small seeded
wobble; a model whose quality falls below the prompt's difficulty plus the wobble answers
it badly: a structured answer that does not validate (a required field missing, a wrong
type: simulator.content.violate). A model of quality 0.9 thus fails about 10% of prompts,
the hardest ones, and a model of quality 0.6 about 40%, a superset of them give or take the
wobble, so a cascade that escalates finds the stronger model passing where the weaker one
failed, and a router that learns from validation sees the models differ.

A task type can be named with the marker ``[task:NAME]`` in any message (tests and demos
write it; the OpenAI wire carries no task type), for ``by_task`` overrides; otherwise the
model's overall quality applies.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulator.request import ChatRequest

DEFAULT_QUALITY: dict[str, float] = {
    "gpt-4o": 0.95,
    "gpt-4.1": 0.96,
    "claude-sonnet-4": 0.97,
    "gemini-2.5-pro": 0.96,
    "o4-mini": 0.93,
    "gpt-4.1-mini": 0.9,
    "gemini-2.5-flash": 0.9,
    "claude-haiku-3.5": 0.86,
    "gpt-4o-mini": 0.85,
    "gpt-4.1-nano": 0.75,
    "gemini-2.0-flash-lite": 0.72,
}
"""Share of prompts each simulated model answers well, ordered as the catalog's tiers."""
TASK_MARKER = re.compile(r"\[task:([A-Za-z0-9_.\-]+)\]")


class ModelQuality(BaseModel):
    """The quality profile of the simulated provider's models."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    by_model: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_QUALITY))
    """Share of prompts each model answers well (0..1)."""
    by_task: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per task type, per model overrides of by_model."""
    default: float = Field(default=0.9, ge=0.0, le=1.0)
    """Quality of a model by_model does not name."""
    wobble: float = Field(default=0.1, ge=0.0, le=1.0)
    """Width of the per-(model, prompt) noise around the prompt's difficulty."""
    seed: int = 0

    def quality(self, model: str, task_type: str | None = None) -> float:
        """A model's quality on a task type (its overall quality when the task has none)."""
        if task_type is not None and model in self.by_task.get(task_type, {}):
            return self.by_task[task_type][model]
        return self.by_model.get(model, self.default)

    def difficulty(self, messages: list[dict[str, Any]]) -> float:
        """The prompt's seeded difficulty in 0..1 (the same for every model)."""
        return _unit(self.seed, "prompt", messages)

    def fails(self, chat: ChatRequest) -> bool:
        """Whether this model answers this prompt badly."""
        task = task_of(chat.messages)
        wobble = (_unit(self.seed, chat.model, chat.messages) - 0.5) * self.wobble
        return self.difficulty(chat.messages) + wobble > self.quality(chat.model, task)


def task_of(messages: list[dict[str, Any]]) -> str | None:
    """The task type a [task:NAME] marker names in the messages, if any."""
    for message in messages:
        content = message.get("content")
        texts = [content] if isinstance(content, str) else []
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict)]
        for text in texts:
            found = TASK_MARKER.search(str(text))
            if found:
                return found.group(1)
    return None


def _unit(seed: int, salt: str, messages: list[dict[str, Any]]) -> float:
    blob = json.dumps([seed, salt, messages], sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") / 2**64
