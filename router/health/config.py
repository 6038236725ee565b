"""How provider health is judged and how calls are retried (from HealthSettings)."""

from __future__ import annotations

from dataclasses import dataclass

from bus.settings_sections import HealthSettings


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """When a provider+model's circuit opens, and for how long."""

    failures: int = 5
    """Consecutive failures that open the circuit."""
    error_rate: float = 0.5
    """EWMA error rate that opens it, once min_calls calls are known."""
    min_calls: int = 20
    cooldown_s: float = 30.0
    """How long it stays open before one half-open probe goes through."""
    alpha: float = 0.2
    """EWMA weight of the newest call."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter between attempts; retry-after overrides it."""

    retries: int = 2
    """Attempts after the first, per candidate, for failures other than 429."""
    base_s: float = 0.2
    max_s: float = 10.0
    rate_wait_before_fallback_s: float = 1.0
    """Longest wait for a rate limit before moving on to a fallback, when one is left."""
    max_rate_wait_s: float = 60.0
    """Longest total wait on 429s of a request without a deadline, before it gives up."""


def breaker_policy(settings: HealthSettings) -> BreakerPolicy:
    """The breaker policy of the health settings."""
    return BreakerPolicy(
        failures=settings.breaker_failures,
        error_rate=settings.breaker_error_rate,
        min_calls=settings.breaker_min_calls,
        cooldown_s=settings.breaker_cooldown_s,
        alpha=settings.ewma_alpha,
    )


def retry_policy(settings: HealthSettings, *, retries: int, timeout_s: float) -> RetryPolicy:
    """The retry policy of the health settings, with provider_max_retries and its timeout."""
    return RetryPolicy(
        retries=retries,
        base_s=settings.retry_base_s,
        max_s=settings.retry_max_s,
        rate_wait_before_fallback_s=settings.rate_wait_before_fallback_s,
        max_rate_wait_s=timeout_s,
    )
