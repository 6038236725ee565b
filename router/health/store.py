"""HealthStore: provider+model health in Redis, shared by every router replica.

Why Redis and not each process: a provider that fails for one replica fails for all, so a
circuit opened by one replica's failures should steer every replica to the fallback at once;
and `flipsync providers` and the routing policy read the same figures from any process.
It costs one short Lua call before and one after each provider call.

Health never fails a request: if Redis cannot answer, the call is allowed and the record
is dropped (and logged).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from router.health import keys, scripts
from router.health.breaker import BreakerState
from router.health.config import BreakerPolicy
from router.health.redact import redact

CLOSED_TRUSTED_S = 1.0
"""How long a replica trusts a closed circuit it has seen (an acquire's or a record's
answer) without asking Redis for a permit again. A circuit another replica opened meanwhile
costs this replica that long at most of calls to the failing provider; each such call's
record answers with the open state, and the next call asks again."""

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    """What one provider call tells about the provider's health."""

    OK = "ok"
    FAIL = "fail"
    """Counts against the circuit: 5xx, timeout, connection, garbled answer, 401/403/404."""
    RATE_LIMITED = "rate_limited"
    """A 429: back-pressure, handled by retry-after and the rate limiter, not the circuit."""
    NEUTRAL = "neutral"
    """Says nothing about the provider (a 400, a call cut short by the request's deadline)."""


@dataclass(frozen=True, kw_only=True)
class Permit:
    """What the circuit said about one call."""

    allowed: bool
    state: BreakerState
    retry_in_s: float = 0.0
    """When not allowed: seconds until the circuit lets a probe through."""


class HealthStore:
    """Breaker checks and call records of every provider+model, in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        policy: BreakerPolicy,
        *,
        probe_lease_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        """probe_lease_s: how long a half-open probe may run before another one is let in;
        clock: seconds, for how long a closed circuit is trusted (CLOSED_TRUSTED_S)."""
        self._clock = clock
        self._redis = redis
        self.policy = policy
        self._probe_lease_ms = max(int(probe_lease_s * 1000), 1)
        self._acquire = redis.register_script(scripts.ACQUIRE)
        self._record = redis.register_script(scripts.RECORD)
        self._closed_at: dict[tuple[str, str], float] = {}
        """When each provider+model's circuit was last seen closed (time.monotonic)."""

    def closed_lately(self, provider: str, model: str) -> bool:
        """Whether provider+model's circuit was seen closed within CLOSED_TRUSTED_S: a call
        may then go without a permit (a closed circuit allows every call)."""
        seen = self._closed_at.get((provider, model))
        return seen is not None and self._clock() - seen < CLOSED_TRUSTED_S

    def _saw(self, provider: str, model: str, state: BreakerState) -> None:
        if state is BreakerState.CLOSED:
            self._closed_at[provider, model] = self._clock()
        else:
            self._closed_at.pop((provider, model), None)

    async def acquire(self, provider: str, model: str, *, now_ms: int | None = None) -> Permit:
        """May a call go to provider+model now? An open circuit past its cool-down lets one
        caller through as the half-open probe. now_ms: a fixed clock (Redis TIME if None)."""
        try:
            allowed, state, wait_ms = await self._acquire(
                keys=[keys.stats(provider, model)], args=[self._probe_lease_ms, *_clock(now_ms)]
            )
        except RedisError:
            log.warning("health of %s/%s unknown: Redis failed", provider, model, exc_info=True)
            return Permit(allowed=True, state=BreakerState.CLOSED)
        seen = BreakerState(_text(state))
        self._saw(provider, model, seen)
        return Permit(allowed=bool(allowed), state=seen, retry_in_s=int(wait_ms) / 1000)

    async def record(
        self,
        provider: str,
        model: str,
        outcome: Outcome,
        *,
        latency_ms: float = 0.0,
        cost_micro_usd: int = 0,
        error: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        now_ms: int | None = None,
    ) -> BreakerState:
        """Count one call's outcome; returns the circuit's state after it. The error text is
        stored redacted; now_ms: a fixed clock (Redis TIME if None)."""
        policy = self.policy
        try:
            state = await self._record(
                keys=[keys.stats(provider, model), keys.INDEX],
                args=[
                    provider,
                    model,
                    outcome.value,
                    repr(float(latency_ms)),
                    repr(policy.alpha),
                    policy.failures,
                    repr(policy.error_rate),
                    policy.min_calls,
                    int(policy.cooldown_s * 1000),
                    cost_micro_usd,
                    redact(error),
                    input_tokens,
                    output_tokens,
                    *_clock(now_ms),
                ],
            )
        except RedisError:
            log.warning("health of %s/%s not recorded", provider, model, exc_info=True)
            return BreakerState.CLOSED
        after = BreakerState(_text(state))
        self._saw(provider, model, after)
        return after


def _clock(now_ms: int | None) -> list[int]:
    """The scripts' optional last argument: the time to use, when the caller fixes it."""
    return [] if now_ms is None else [int(now_ms)]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
