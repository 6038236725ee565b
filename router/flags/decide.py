"""Which flag rules match a request, which of them it is rolled into, and what they change
(levers off, routing policy, model, prompt, experiment arm): pure, no I/O.

Rules are applied from the broadest to the most specific (global, task type, agent, tenant),
so a tenant's own rule overrides an agent's, which overrides a task type's. Levers switched
off add up; a more specific rule's enable_levers switches them back on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from bus.messages import (
    ChatMessage,
    FlagRule,
    Lever,
    LlmRequest,
    OutputSchema,
    PromptPatch,
    TextPart,
)
from router.flags.rollout import bucket, in_range, request_fingerprint


@dataclass(frozen=True, kw_only=True)
class FlagDecision:
    """What the flags change for one request."""

    disabled: frozenset[Lever] = frozenset()
    routing_policy: str | None = None
    model: str | None = None
    prompt: PromptPatch | None = None
    arm: str | None = None
    rules: tuple[str, ...] = ()
    """Names of the rules the request was rolled into, broadest first."""


def specificity(rule: FlagRule) -> tuple[int, str]:
    """Sort key: broad rules first, so specific ones override them; then by name."""
    return (bool(rule.tenant) * 4 + bool(rule.agent) * 2 + bool(rule.task_type), rule.name)


def matches(rule: FlagRule, request: LlmRequest) -> bool:
    """Whether the rule's scope (tenant, agent, task type) covers the request."""
    return (
        (not rule.tenant or rule.tenant == request.tenant)
        and (not rule.agent or rule.agent == request.agent)
        and (not rule.task_type or rule.task_type == request.task_type)
    )


class FlagSet:
    """The live rules of one replica, compiled for a cheap per-request decision."""

    def __init__(self, rules: Iterable[FlagRule] = ()) -> None:
        self.rules: tuple[FlagRule, ...] = tuple(sorted(rules, key=specificity))

    def __bool__(self) -> bool:
        """Whether there is any rule at all."""
        return bool(self.rules)

    def decide(self, request: LlmRequest) -> FlagDecision | None:
        """What the rules change for request, or None when none applies."""
        fingerprint: bytes | None = None
        buckets: dict[str, float] = {}
        disabled: set[Lever] = set()
        policy = model = arm = None
        prompt: PromptPatch | None = None
        applied: list[str] = []
        for rule in self.rules:
            if not matches(rule, request):
                continue
            if rule.percent < 100:
                if rule.percent <= 0:
                    continue
                if fingerprint is None:
                    fingerprint = request_fingerprint(request)
                salt = rule.salt or rule.name
                if salt not in buckets:
                    buckets[salt] = bucket(salt, fingerprint)
                if not in_range(buckets[salt], rule.bucket_from, rule.percent):
                    continue
            applied.append(rule.name)
            disabled.update(rule.disable_levers)
            disabled.difference_update(rule.enable_levers)
            policy = rule.routing_policy or policy
            model = rule.model or model
            prompt = rule.prompt or prompt
            arm = rule.arm or arm
        if not applied:
            return None
        return FlagDecision(
            disabled=frozenset(disabled),
            routing_policy=policy,
            model=model,
            prompt=prompt,
            arm=arm,
            rules=tuple(applied),
        )


def apply_prompt(request: LlmRequest, patch: PromptPatch) -> LlmRequest:
    """The request with a prompt variant: system prompt, instructions text, output schema."""
    messages = list(request.messages)
    swapped = not patch.find
    for i, message in enumerate(messages):
        if message.role == "system" and patch.system:
            messages[i] = msgspec.structs.replace(message, content=patch.system)
        elif message.role == "user" and not swapped:
            messages[i], swapped = _swap(message, patch.find, patch.replace)
    schema = request.output_schema
    if patch.output_schema is not None and schema is not None:
        schema = OutputSchema(name=schema.name, schema=patch.output_schema, strict=schema.strict)
    return msgspec.structs.replace(request, messages=messages, output_schema=schema)


def _swap(message: ChatMessage, find: str, replace: str) -> tuple[ChatMessage, bool]:
    """The message with find replaced once in its text, and whether it was there."""
    if isinstance(message.content, str):
        if find not in message.content:
            return message, False
        content = message.content.replace(find, replace, 1)
        return msgspec.structs.replace(message, content=content), True
    parts = list(message.content)
    for j, part in enumerate(parts):
        if isinstance(part, TextPart) and find in part.text:
            parts[j] = TextPart(text=part.text.replace(find, replace, 1))
            return msgspec.structs.replace(message, content=parts), True
    return message, False
