"""The circuit breaker of one provider+model, as a pure state machine (no I/O, no clock).

closed  --N consecutive failures, or EWMA error rate over the threshold-->  open
open    --cool-down over: the next caller is let through as the probe-->   half_open
half_open --probe succeeds-->  closed        half_open --probe fails-->  open

HealthStore runs the same machine in Redis (router.health.scripts), so every replica sees
one state; this module is its specification and what the unit tests check it against.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from router.health.config import BreakerPolicy
from router.health.ewma import ewma


class BreakerState(enum.StrEnum):
    """Where a circuit is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, kw_only=True)
class Breaker:
    """One circuit's state; each method returns the next state."""

    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    calls: int = 0
    error_rate: float | None = None
    """EWMA of failures (1) and successes (0)."""
    reopen_at: float = 0.0
    """When an open circuit lets its probe through (seconds, the caller's clock)."""
    probe_until: float = 0.0
    """When a half-open circuit's probe lease lapses, letting another probe through."""

    def allow(self, now: float, lease_s: float) -> tuple[bool, Breaker]:
        """Whether a call may go now, and the state after asking (open may turn half-open)."""
        if self.state is BreakerState.CLOSED:
            return True, self
        if self.state is BreakerState.OPEN and now < self.reopen_at:
            return False, self
        if self.state is BreakerState.HALF_OPEN and now < self.probe_until:
            return False, self  # one probe at a time
        return True, replace(self, state=BreakerState.HALF_OPEN, probe_until=now + lease_s)

    def on_success(self, policy: BreakerPolicy) -> Breaker:
        """A call succeeded: a half-open circuit closes."""
        state = BreakerState.CLOSED if self.state is BreakerState.HALF_OPEN else self.state
        return replace(
            self,
            state=state,
            consecutive_failures=0,
            calls=self.calls + 1,
            error_rate=ewma(self.error_rate, 0.0, policy.alpha),
        )

    def on_failure(self, policy: BreakerPolicy, now: float) -> Breaker:
        """A call failed: a half-open circuit, or a closed one past a threshold, opens."""
        failures = self.consecutive_failures + 1
        calls = self.calls + 1
        rate = ewma(self.error_rate, 1.0, policy.alpha)
        opens = self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED
            and (
                failures >= policy.failures
                or (calls >= policy.min_calls and rate >= policy.error_rate)
            )
        )
        return replace(
            self,
            state=BreakerState.OPEN if opens else self.state,
            consecutive_failures=failures,
            calls=calls,
            error_rate=rate,
            reopen_at=now + policy.cooldown_s if opens else self.reopen_at,
        )
