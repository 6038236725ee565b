"""Errors of the LLM request pipeline; each maps to a stable ErrorCode in the error result.

RouterError                      code, reason
├── UnknownAgentError            the agent is not registered
├── DeadlineExceededError        the requester's deadline passed
├── NoRouteError                 no configured provider offers a usable model
├── OverBudgetError              a budget, quota or request cap cannot take the request
├── UnavailableError             a store is away or being rebuilt: redelivered, if unpaid
└── ProviderError                a provider call failed after its retries
    ├── ProviderRateLimitedError     429s outlasted the retries (retry_after kept)
    └── InvalidAnswerError           the answer is not JSON, or not valid for the schema
"""

from __future__ import annotations

from decimal import Decimal

from bus.messages import ErrorCode


class RouterError(Exception):
    """Base of pipeline errors: carries the error result's code and human reason."""

    code = ErrorCode.INTERNAL

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownAgentError(RouterError):
    """The request names an agent that is not registered."""

    code = ErrorCode.UNKNOWN_AGENT

    def __init__(self, agent: str) -> None:
        super().__init__(f"agent {agent!r} is not registered")
        self.agent = agent


class DeadlineExceededError(RouterError):
    """The requester's deadline passed before an answer came."""

    code = ErrorCode.DEADLINE_EXCEEDED


class NoRouteError(RouterError):
    """No configured provider offers a model the request can use."""

    code = ErrorCode.PROVIDER_ERROR


SHARED_SCOPE = "global"
"""The scope id of a budget every tenant's spend counts against (policy.scope_id)."""


class OverBudgetError(RouterError):
    """A budget (or a message quota, or the per-request cap) cannot take the request.

    Amounts are micro-dollars, or messages when unit is "messages".
    """

    code = ErrorCode.OVER_BUDGET

    def __init__(
        self,
        *,
        budget: str,
        scope: str,
        period: str,
        limit: int,
        spent: int,
        needed: int,
        unit: str = "usd",
        detail: str = "",
    ) -> None:
        def amount(value: int) -> str:
            return f"${Decimal(value).scaleb(-6):.6f}" if unit == "usd" else f"{value} messages"

        where = f"{scope} per {period}" if period else scope
        if scope == SHARED_SCOPE:  # every tenant's spend: not told to one of them (review)
            reason = (
                f"over budget {budget!r} ({where}), a budget every tenant shares: limit "
                f"{amount(limit)}, this request needs up to {amount(needed)}"
            )
            detail = "requests in flight did not settle in time" if detail else ""
        else:
            reason = (
                f"over budget {budget!r} ({where}): limit {amount(limit)}, spent "
                f"{amount(spent)}, this request needs up to {amount(needed)}"
            )
        super().__init__(f"{reason}; {detail}" if detail else reason)
        self.budget = budget
        self.scope = scope
        self.period = period
        self.limit = limit
        self.spent = spent
        self.needed = needed
        self.unit = unit


class UnavailableError(RouterError):
    """A store the pipeline needs is away (a Redis node down) or being rebuilt.

    Nothing is wrong with the request: when it has paid nothing yet, the router service
    redelivers it later instead of answering (router.service); otherwise, or on its last
    delivery, it ends with this code and reason.
    """

    code = ErrorCode.INTERNAL


class ProviderError(RouterError):
    """A provider call failed after its retries."""

    code = ErrorCode.PROVIDER_ERROR

    def __init__(self, provider: str, model: str, reason: str) -> None:
        super().__init__(f"{provider}/{model}: {reason}")
        self.provider = provider
        self.model = model


class ProviderRateLimitedError(ProviderError):
    """The provider kept answering 429 after the retries."""

    code = ErrorCode.PROVIDER_RATE_LIMITED

    def __init__(self, provider: str, model: str, retry_after_s: float | None) -> None:
        super().__init__(provider, model, f"rate limited (retry-after {retry_after_s}s)")
        self.retry_after_s = retry_after_s


class InvalidAnswerError(ProviderError):
    """The provider answered, and was paid, but the answer is not valid for the schema."""

    code = ErrorCode.SCHEMA_INVALID
