"""Paid answers kept by request id (router.paid_answers), so that a redelivered request
prices its answer again without paying for it again."""

from __future__ import annotations

import hashlib

import msgspec

from bus.messages import Usage
from bus.subjects import token
from router.keys import PREFIX
from router.providers.client import Completion


class KeptAnswer(msgspec.Struct, kw_only=True):
    """A provider's answer as stored by request id, enough to price it again."""

    provider: str
    model: str
    content: str
    answered_model: str
    usage: Usage
    latency_ms: float
    finish_reason: str
    tool_calls: list[dict[str, object]] = []
    booked_as_lost: bool = False
    """Its call was booked at its bound by a reaper while it ran (Completion.booked_as_lost)."""

    def completion(self) -> Completion:
        """The answer as dispatch received it."""
        return Completion(
            content=self.content,
            model=self.answered_model,
            usage=self.usage,
            latency_ms=self.latency_ms,
            finish_reason=self.finish_reason,
            tool_calls=self.tool_calls,
            booked_as_lost=self.booked_as_lost,
        )


def answer_key(tenant: str, request_id: str, model: str) -> str:
    """Where a request's paid answer from a model is kept (tenant first, like every router
    key; per model, so a cascade's cheap answer never stands in for its escalation)."""
    digest = hashlib.sha256(model.encode()).hexdigest()[:16]
    return f"{PREFIX}answer:{token(tenant)}:{token(request_id)}:{digest}"
