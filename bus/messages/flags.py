"""Feature flags and experiment arms, changed at run time."""

from __future__ import annotations

import msgspec

from bus.messages.base import WIRE_VERSION, now_ms
from bus.messages.llm import Lever


class PromptPatch(msgspec.Struct, kw_only=True):
    """A prompt variant applied to a request: a system prompt, a text swap, an output schema."""

    system: str = ""
    """Replaces the content of the system message when not empty."""
    find: str = ""
    """Text of the first user message replaced by ``replace`` (the agent's instructions)."""
    replace: str = ""
    output_schema: dict[str, object] | None = None
    """Replaces the request's output schema (fields nobody reads removed)."""


class FlagRule(msgspec.Struct, kw_only=True):
    """A feature flag: what changes for the requests it matches, and for what share of them.

    Empty tenant, agent or task_type match every request. A request is in the rule when its
    rollout bucket (a hash of salt and the request's content, 0 <= b < 100) falls in
    [bucket_from, bucket_from + percent): the same request always lands in the same arm.
    """

    name: str
    tenant: str = ""
    agent: str = ""
    task_type: str = ""
    percent: float = 100.0
    bucket_from: float = 0.0
    salt: str = ""
    """Arms of one experiment share a salt (the experiment's name); default: the rule's name."""
    disable_levers: list[Lever] = []
    enable_levers: list[Lever] = []
    """Levers a more specific rule switches back on after a broader one disabled them."""
    routing_policy: str = ""
    model: str = ""
    """Sets the request's model_hint."""
    prompt: PromptPatch | None = None
    arm: str = ""
    """The experiment arm ("experiment/arm") recorded for the requests in the rule."""
    v: int = WIRE_VERSION


class FlagChange(msgspec.Struct, kw_only=True):
    """The live flags changed in Redis, on flags.control: every router replica reloads them."""

    change_id: str
    set_rules: list[FlagRule] = []
    removed: list[str] = []
    by: str = ""
    at_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION
