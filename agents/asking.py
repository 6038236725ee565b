"""Asking a model for an agent: one targeted retry on a stronger model, and a quality signal
for every answer.

An answer is checked twice: by the router against the JSON schema (an invalid one comes
back as a schema_invalid error) and here by the agent's validators. Either failure gets
one retry that names the problems, carries the previous answer, and asks for escalation
(tags["escalate"] = "1" and model_hint = the escalation model), which the router may use
to route it to a stronger model. Every answer, valid or not, is published as a
QualitySignal on quality.<tenant>, which routing learns from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsBroker

from agents.spec import AgentSpec, Output
from bus import subjects
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import (
    CachePolicy,
    ChatMessage,
    ErrorCode,
    Lever,
    LlmRequest,
    LlmResult,
    OutputSchema,
    Priority,
    QualitySignal,
)
from bus.publishing import publish
from bus.settings import Settings

log = logging.getLogger(__name__)
PAID = frozenset({Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API})
"""Levers of results an upstream call was paid for."""
ESCALATE_TAG = "escalate"
SESSION_TAG = "session"
"""The router pins a request carrying it to the model its session was first routed to
(router.routing.pinning), so a repeated task does not switch models mid-way."""


def session_tags(workflow_id: str, agent: str) -> dict[str, str]:
    """The tags of one agent's repeated task in one product workflow: its session."""
    return {SESSION_TAG: f"{workflow_id}/{agent}"} if workflow_id else {}


Messages = Callable[[list[str], str], list[ChatMessage]]
"""Builds the messages of an attempt from the previous attempt's problems and answer."""
Check = Callable[[Output], list[str]]


@dataclass(kw_only=True)
class Asked:
    """What asking came to: the valid output, or the reason there is none; and its cost."""

    ok: bool = False
    output: Output = field(default_factory=dict)
    reason: str = ""
    request_ids: list[str] = field(default_factory=list)
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    paid_calls: int = 0
    result: LlmResult | None = None
    """The last result (for its content, model and lever)."""


@dataclass(frozen=True, kw_only=True)
class Ask:
    """One agent's question, as the runtime hands it over."""

    spec: AgentSpec
    tenant: str
    workflow_id: str
    request_id: str
    """The id of the first attempt; the retry appends -r."""
    priority: Priority
    messages: Messages
    schema: dict[str, Any] | None
    check: Check
    cache_policy: CachePolicy = CachePolicy.DEFAULT
    tags: dict[str, str] = field(default_factory=dict)


class Asker:
    """Sends an agent's LLM requests through the router and judges the answers."""

    def __init__(self, broker: NatsBroker, settings: Settings, *, timeout_s: float = 120.0) -> None:
        self._broker = broker
        self._settings = settings
        self._llm = LlmClient(broker)
        self._timeout_s = timeout_s

    async def ask(self, ask: Ask) -> Asked:
        """The valid output of at most two attempts, or the reason it failed."""
        asked = Asked()
        problems: list[str] = []
        previous = ""
        for attempt in range(2):
            escalate = attempt == 1
            request = self._request(ask, problems, previous, escalate)
            timeout = self._timeout_s * (30 if ask.priority is Priority.BULK else 1)
            result = await self._llm.request(request, timeout)
            asked.result = result
            asked.request_ids.append(request.id)
            asked.cost_micro_usd += result.cost_micro_usd
            asked.baseline_micro_usd += result.baseline_micro_usd
            asked.paid_calls += result.lever in PAID
            if not result.ok and result.error_code is not ErrorCode.SCHEMA_INVALID:
                asked.reason = f"{result.error_code}: {result.reason}"
                return asked
            if ask.schema is None:  # free text (chat): validators see {"text": ...}
                output: Output = {"text": result.content}
            else:
                output = result.parsed if isinstance(result.parsed, dict) else {}
            problems = [result.reason] if not result.ok else ask.check(output)
            await self._signal(ask, request, result, problems, attempt)
            if not problems:
                asked.ok, asked.output, asked.reason = True, output, ""
                return asked
            previous = result.content
            asked.reason = "; ".join(problems)
        return asked

    def _request(self, ask: Ask, problems: list[str], previous: str, escalate: bool) -> LlmRequest:
        spec = ask.spec
        tags = dict(ask.tags)
        if escalate:
            tags[ESCALATE_TAG] = "1"
        return LlmRequest(
            id=f"{ask.request_id}-r" if escalate else ask.request_id,
            tenant=ask.tenant,
            agent=spec.name,
            workflow_id=ask.workflow_id,
            task_type=str(spec.task_type),
            messages=ask.messages(problems, previous),
            output_schema=OutputSchema(name=spec.name, schema=ask.schema) if ask.schema else None,
            max_output_tokens=spec.max_output_tokens,
            priority=ask.priority,
            cache_policy=CachePolicy.REFRESH if escalate else ask.cache_policy,
            model_hint=self._settings.escalation_model if escalate else "",
            tags=tags,
        )

    async def _signal(
        self,
        ask: Ask,
        request: LlmRequest,
        result: LlmResult,
        problems: list[str],
        attempt: int,
    ) -> None:
        signal = QualitySignal(
            request_id=request.id,
            tenant=ask.tenant,
            agent=ask.spec.name,
            workflow_id=ask.workflow_id,
            task_type=request.task_type,
            model=result.model,
            provider=result.provider,
            lever=result.lever,
            valid=not problems,
            problems=problems,
            attempt=attempt,
            escalated=ESCALATE_TAG in request.tags,
        )
        await publish(
            self._broker,
            encode(signal),
            subjects.quality(ask.tenant),
            stream=subjects.STREAM_WORKFLOW,
            msg_id=f"q-{request.id}",
        )
