"""Attempts at one candidate (provider+model): rate-limit waits, retries, health records.

Waits are bounded: by the request's deadline (DeadlineExceededError, never a silent
overrun), and, while a fallback is left, by the retry policy's rate_wait_before_fallback_s
(CandidateFailedError, so the dispatcher moves on). 429s do not use up the retries: they
are waited out (honouring retry-after, shared with every replica) for as long as the deadline
allows, so a 429 storm slows requests down without losing any.

A client-side timeout is never retried on the same provider+model: the provider may have
generated, and billed, the answer we stopped waiting for, and only the answer that is finally
received is priced. The candidate gives up (a fallback may take over), and the reason and the
span say that a timed-out attempt may have been billed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace

from bus.messages import ErrorCode, LlmRequest
from router.context import RequestContext
from router.errors import DeadlineExceededError, ProviderRateLimitedError
from router.health.breaker import BreakerState
from router.health.config import RetryPolicy
from router.health.limiter import RateLimiter
from router.health.retry import RETRY_AFTER_JITTER, retry_delay_s
from router.health.store import HealthStore, Outcome
from router.providers.client import Completion, ProviderClient
from router.providers.errors import CandidateFailedError, ProviderCallError, stored_reason
from router.providers.streaming import Relay

MAY_HAVE_BEEN_BILLED = "a timed-out attempt may have been billed"
"""Said in the reason of a request one of whose provider calls timed out client-side."""
BILLED_ATTRIBUTE = "flipsync.timed_out_attempt_may_be_billed"
"""Span attribute set (True) when a provider call timed out client-side."""


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One candidate to try, and what the caller knows about the rest of the chain."""

    client: ProviderClient
    model: str
    has_fallback: bool
    """Whether another candidate is left after this one."""
    tokens: int
    """Input plus max output tokens, charged to the provider's tokens-per-minute bucket."""
    annotate: Callable[[trace.Span, Completion], None] | None = None
    """Called with the call's span and the answer, before the span ends (cost attributes)."""
    relay: Relay | None = None
    """Where a streamed call relays its text pieces; None: the call does not stream."""
    first_take: asyncio.Future[float] | None = None
    """The first rate-limit take, when the caller started it early (Attempts.start_take)."""


class Attempts:
    """Calls one candidate until it answers, gives up, or the deadline comes."""

    def __init__(
        self,
        *,
        health: HealthStore,
        limiter: RateLimiter,
        policy: RetryPolicy,
        provider_timeout_s: float,
        tracer: trace.Tracer,
        rng: random.Random | None = None,
    ) -> None:
        self._health = health
        self._limiter = limiter
        self._policy = policy
        self._timeout_s = provider_timeout_s
        self._tracer = tracer
        self._rng = rng or random.Random()

    def start_take(self, client: ProviderClient, model: str, tokens: int) -> asyncio.Future[float]:
        """Begin the first rate-limit take of a call now, so that it shares a round trip with
        whatever the caller does before the call (its lease): pass it as Attempt.first_take."""
        limits = client.config.limits
        return asyncio.ensure_future(self._limiter.try_take(client.name, model, limits, tokens))

    async def call(self, ctx: RequestContext, attempt: Attempt) -> Completion:
        """The candidate's answer; raises CandidateFailedError or DeadlineExceededError."""
        client, model = attempt.client, attempt.model
        provider = client.name
        retries = 0  # failures other than 429 so far
        rate_limited = 0  # 429s so far (their backoff exponent)
        waited_s = 0.0  # time spent waiting for rate limits
        first_take = attempt.first_take
        while True:
            waited_s += await self._wait_for_capacity(ctx, attempt, waited_s, first_take)
            first_take = None
            remaining = ctx.remaining_s()
            cut_short = remaining is not None and remaining < self._timeout_s
            timeout = min(self._timeout_s, remaining) if remaining is not None else self._timeout_s
            try:
                with self._tracer.start_as_current_span(
                    f"chat {model}", kind=trace.SpanKind.CLIENT
                ) as span:
                    span.set_attribute("flipsync.attempt", retries + rate_limited + 1)
                    completion = await client.complete(ctx.request, model, timeout, attempt.relay)
                    if attempt.annotate is not None:
                        attempt.annotate(span, completion)
                    return completion
            except ProviderRateLimitedError as exc:
                error = stored_reason(exc)
                await self._health.record(provider, model, Outcome.RATE_LIMITED, error=error)
                delay = retry_delay_s(rate_limited, self._policy, self._rng, exc.retry_after_s)
                rate_limited += 1
                if exc.retry_after_s:  # every replica holds off, this one too
                    await self._limiter.pause(provider, model, exc.retry_after_s)
                    continue
                waited_s += await self._sleep(
                    ctx, attempt, delay, exc.reason, rate=True, so_far=waited_s
                )
            except ProviderCallError as exc:
                if exc.timed_out and cut_short:  # the deadline's doing, not the provider's
                    await self._health.record(provider, model, Outcome.NEUTRAL)
                    trace.get_current_span().set_attribute(BILLED_ATTRIBUTE, True)
                    raise DeadlineExceededError(
                        f"{provider}/{model} did not answer before the deadline"
                        f" ({MAY_HAVE_BEEN_BILLED})"
                    ) from exc
                error = stored_reason(exc)
                outcome = Outcome.FAIL if exc.unhealthy else Outcome.NEUTRAL
                state = await self._health.record(provider, model, outcome, error=error)
                tries = retries + rate_limited + 1
                if exc.timed_out:  # never paid twice on one candidate: fall back, if any
                    trace.get_current_span().set_attribute(BILLED_ATTRIBUTE, True)
                    error = f"{error}; {MAY_HAVE_BEEN_BILLED}"
                if (
                    exc.timed_out
                    or not exc.retryable
                    or retries >= self._policy.retries
                    or state is not BreakerState.CLOSED
                ):
                    why = f"{error} ({tries} attempt{'s' if tries > 1 else ''})"
                    raise CandidateFailedError(provider, model, why, exc.code) from exc
                delay = retry_delay_s(retries, self._policy, self._rng)
                retries += 1
                await self._sleep(ctx, attempt, delay, exc.reason, rate=False)

    async def _wait_for_capacity(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        waited_s: float,
        first_take: asyncio.Future[float] | None = None,
    ) -> float:
        """Wait until the provider's shared buckets (and any retry-after pause) let the call
        go; returns the seconds waited. first_take: a take already under way, used first."""
        limits = attempt.client.config.limits
        provider, model = attempt.client.name, attempt.model
        total = 0.0
        while wait := await (
            first_take or self._limiter.try_take(provider, model, limits, attempt.tokens)
        ):
            first_take = None
            reason = f"rate limited for {wait:.2f}s more"
            wait *= 1 + self._rng.uniform(0, RETRY_AFTER_JITTER)  # waiters spread out
            total += await self._sleep(
                ctx, attempt, wait, reason, rate=True, so_far=waited_s + total
            )
        return total

    async def _sleep(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        delay_s: float,
        reason: str,
        *,
        rate: bool,
        so_far: float = 0.0,
    ) -> float:
        """Sleep delay_s before trying this candidate again, unless the deadline would pass
        (DeadlineExceededError) or a fallback should take over (CandidateFailedError)."""
        provider, model = attempt.client.name, attempt.model
        code = ErrorCode.PROVIDER_RATE_LIMITED if rate else ErrorCode.PROVIDER_ERROR
        if rate and attempt.has_fallback and delay_s > self._policy.rate_wait_before_fallback_s:
            raise CandidateFailedError(provider, model, reason, code)
        remaining = ctx.remaining_s()
        if remaining is not None and delay_s >= remaining:
            raise DeadlineExceededError(
                f"{provider}/{model}: {reason}; waiting {delay_s:.2f}s more would pass the"
                f" deadline ({max(remaining, 0):.2f}s left)"
            )
        if remaining is None and rate and so_far + delay_s > self._policy.max_rate_wait_s:
            why = f"{reason}; gave up after waiting {so_far:.1f}s on rate limits"
            raise CandidateFailedError(provider, model, why, code)
        await asyncio.sleep(delay_s)
        return delay_s


def request_tokens(request: LlmRequest, input_tokens: int) -> int:
    """Tokens a provider's tokens-per-minute limit counts for a call: input plus max output."""
    return input_tokens + request.max_output_tokens
