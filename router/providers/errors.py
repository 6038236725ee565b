"""How a failed provider call is classified, for retries, fallback and the circuit breaker.

ProviderError (router.errors)
├── ProviderRateLimitedError     429: retry after its retry-after; not a health failure
├── ProviderCallError            any other failure, with what it means for the caller:
│     retryable   worth another attempt at the same provider (5xx, timeout, connection)
│     unhealthy   counts against the provider's health and circuit breaker
└── CandidateFailedError         one candidate of a route gave up (its code: the last failure's)
RouterError
└── NoCandidateLeftError         every candidate failed or had its circuit open
"""

from __future__ import annotations

from bus.messages import ErrorCode
from router.errors import ProviderError, RouterError
from router.health.redact import safe_error

RETRYABLE_STATUSES = frozenset({408, 409, 500, 502, 503, 504, 529})
"""Statuses worth a retry (as openai's own retry logic has it, plus Anthropic's 529)."""
UNHEALTHY_STATUSES = RETRYABLE_STATUSES | {401, 403, 404}
"""Statuses that say the provider (or its key, or the model there) is unusable right now;
a 400 or 422 is about the request, not the provider."""


class ProviderCallError(ProviderError):
    """A provider call that failed for a reason other than a rate limit."""

    def __init__(
        self,
        provider: str,
        model: str,
        reason: str,
        *,
        retryable: bool,
        unhealthy: bool,
        status: int | None = None,
        timed_out: bool = False,
        billed: bool = False,
    ) -> None:
        super().__init__(provider, model, reason)
        self.retryable = retryable
        self.unhealthy = unhealthy
        self.status = status
        self.timed_out = timed_out
        self.billed = billed
        """The provider answered (HTTP 2xx) and so billed the call, but its answer could not
        be used (a body that is not JSON, no choices, a stream cut after it began)."""

    @classmethod
    def from_status(cls, provider: str, model: str, status: int) -> ProviderCallError:
        """The error of an HTTP error status."""
        return cls(
            provider,
            model,
            f"HTTP {status}",
            retryable=status in RETRYABLE_STATUSES,
            unhealthy=status in UNHEALTHY_STATUSES,
            status=status,
        )

    @classmethod
    def transient(
        cls, provider: str, model: str, reason: str, *, timed_out: bool = False
    ) -> ProviderCallError:
        """A timeout, a dropped connection or a garbled answer: retry, and count it."""
        return cls(provider, model, reason, retryable=True, unhealthy=True, timed_out=timed_out)

    @classmethod
    def unusable(cls, provider: str, model: str, reason: str) -> ProviderCallError:
        """A 2xx answer that cannot be used: billed by the provider, so booked, and never
        retried on the same provider+model (each try would be paid again)."""
        return cls(provider, model, reason, retryable=False, unhealthy=True, billed=True)


def billed_failure(exc: BaseException) -> ProviderCallError | None:
    """The billed ProviderCallError that exc is, or was raised from (a candidate that gave up
    on it), if any: a failed call the provider was paid for."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: the call's error, then the candidate's
        if seen is None:
            return None
        if isinstance(seen, ProviderCallError) and seen.billed:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def stored_reason(exc: ProviderError) -> str:
    """What may be kept of a failed call (health records, result reasons): no credentials."""
    status = exc.status if isinstance(exc, ProviderCallError) else None
    return safe_error(status, type(exc).__name__, exc.reason)


class CandidateFailedError(ProviderError):
    """One candidate (provider+model) gave up: its retries ran out, or waiting was too long."""

    def __init__(self, provider: str, model: str, reason: str, code: ErrorCode) -> None:
        super().__init__(provider, model, reason)
        self.code = code


class NoCandidateLeftError(RouterError):
    """Every candidate of the route failed or had its circuit open; the reason lists each."""

    def __init__(self, reason: str, code: ErrorCode = ErrorCode.PROVIDER_ERROR) -> None:
        super().__init__(reason)
        self.code = code
