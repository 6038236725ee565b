"""Provider health: EWMA stats and circuit breakers per provider+model, rate limits, retries."""

from router.health.breaker import Breaker, BreakerState
from router.health.config import BreakerPolicy, RetryPolicy, breaker_policy, retry_policy
from router.health.limiter import RateLimiter
from router.health.snapshot import (
    ProviderHealth,
    breaker_states,
    health_snapshot,
    latency_by_model,
)
from router.health.store import HealthStore, Outcome, Permit

__all__ = [
    "Breaker",
    "BreakerPolicy",
    "BreakerState",
    "HealthStore",
    "Outcome",
    "Permit",
    "ProviderHealth",
    "RateLimiter",
    "RetryPolicy",
    "breaker_policy",
    "breaker_states",
    "health_snapshot",
    "latency_by_model",
    "retry_policy",
]
