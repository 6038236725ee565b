"""Dispatch: the one stage that pays, calling the routed provider and pricing its answer.

The route's model is tried first, then ctx.route.fallbacks in order. A candidate is skipped
when its circuit is open, when no configured provider serves it, or when its maximum cost
could exceed what the budget stage reserved for the routed model (the budget stage has
already reserved for ctx.route.model: a fallback must fit that reservation, so only one no
dearer than it, for this request's token estimate, is tried; nothing is re-reserved).

The request's deadline bounds everything here: when it passes, the request gets a
deadline_exceeded result with a reason, never a hang.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from opentelemetry import trace

from bus.messages import ErrorCode, Lever, LlmResult, Status
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from cost_ledger.savings import chain, paid_call_steps
from router.context import RequestContext, Route
from router.errors import DeadlineExceededError, NoRouteError, RouterError
from router.health.config import RetryPolicy
from router.health.limiter import RateLimiter
from router.health.store import HealthStore, Outcome, Permit
from router.paid_answers import BOOKED_AS_LOST, PaidAnswers
from router.paid_calls import call_bound, paid_call
from router.providers.attempts import (
    BILLED_ATTRIBUTE,
    MAY_HAVE_BEEN_BILLED,
    Attempt,
    Attempts,
    request_tokens,
)
from router.providers.client import Completion, ProviderClient
from router.providers.errors import NoCandidateLeftError, ProviderCallError, stored_reason
from router.providers.registry import ProviderRegistry
from router.providers.served_model import served_model
from router.providers.streaming import ChunkRelays
from router.stages.budget import estimate_input_tokens
from router.stages.cascade import CascadeRoute
from router.token_bound import max_request_cost
from router.validation import parse_answer_off_loop

MAX_BUDGET_MARGIN = 2
"""A fallback must fit the reservation for every input margin from 1 to this (the budget
stage's margin is configurable; max cost is linear in it, so both ends suffice)."""


@dataclass(frozen=True, kw_only=True)
class Health:
    """What dispatch needs for health, rate limits and retries (all in one Redis)."""

    store: HealthStore
    limiter: RateLimiter
    retry: RetryPolicy


class Dispatcher:
    """Terminal handler: call the provider (or a fallback), validate, price against the baseline."""

    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: PriceCatalog,
        baseline_model: str,
        tracer: trace.Tracer,
        *,
        health: Health | None = None,
        provider_timeout_s: float = 60.0,
        paid: PaidAnswers | None = None,
        relays: ChunkRelays | None = None,
    ) -> None:
        """Without health, each candidate gets one attempt and no circuit, limit or record;
        without paid, answers are not kept for a redelivery nor lost calls booked; without
        relays, no call streams (providers.streaming)."""
        self._relays = relays
        self._paid = paid
        self._registry = registry
        self._catalog = catalog
        self._baseline_model = baseline_model
        self._tracer = tracer
        self._health = health
        self._timeout_s = provider_timeout_s
        self._attempts = (
            Attempts(
                health=health.store,
                limiter=health.limiter,
                policy=health.retry,
                provider_timeout_s=provider_timeout_s,
                tracer=tracer,
            )
            if health is not None
            else None
        )

    async def __call__(self, ctx: RequestContext) -> LlmResult:
        """Make the paid call; a schema-invalid answer is an error result that still costs."""
        route = ctx.route
        if route is None:
            raise NoRouteError("the request reached dispatch without a route")
        remaining = ctx.remaining_s()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceededError("the deadline passed before dispatch")
        trail = _Trail()
        try:
            async with asyncio.timeout(remaining):
                return await self._first_answer(ctx, route, trail)
        except TimeoutError:
            assert remaining is not None  # only a deadline times dispatch out
            waiting = f" waiting on {trail.current}" if trail.current else ""
            tried = f" (before: {'; '.join(trail.notes)})" if trail.notes else ""
            raise DeadlineExceededError(
                f"the deadline passed{waiting}, {remaining:.2f}s after dispatch began{tried}"
            ) from None

    async def close(self) -> None:
        """Stop booking lost calls from this replica (the service is stopping)."""
        if self._paid is not None:
            await self._paid.close()

    async def _first_answer(self, ctx: RequestContext, route: Route, trail: _Trail) -> LlmResult:
        """Try the route's model, then each fallback, until one answers."""
        span = trace.get_current_span()
        span.set_attribute("flipsync.route_reason", route.reason)
        candidates = [(route.model, route.provider)] + [
            (f.model, f.provider) for f in route.fallbacks
        ]
        tokens = _Tokens(ctx)
        kept = None
        if self._paid is not None and answer_may_be_kept(ctx, route.model):
            kept = await self._paid.kept(ctx.request, route.model)
        if kept is not None and (client := self._client(kept.provider, kept.model)) is not None:
            # A redelivery of a request whose answer arrived before its replica died.
            return await self._priced(ctx, route, client, kept.model, kept.completion(), [])
        code = ErrorCode.PROVIDER_ERROR
        notes = trail.notes
        for index, (model, provider) in enumerate(candidates):
            name = f"{provider}/{model}"
            client = self._client(provider, model)
            if client is None:
                notes.append(f"{name}: not offered by a configured provider")
                continue
            if index > 0 and not self._fits(route.model, model, tokens, ctx):
                notes.append(f"{name}: could cost more than the budget reserved for {route.model}")
                continue
            spent = ctx.committed_micro_usd() + ctx.booked_micro_usd
            if spent and not await ctx.room_for(
                call_bound(self._paid, self._catalog, ctx.request, model, tokens.input)
            ):  # an earlier call spent part of the reservation (a billed failure, say)
                notes.append(
                    f"{name}: no budget room beside the {spent} micro-USD this request spent"
                )
                code = ErrorCode.OVER_BUDGET
                continue
            # The circuit's permit is asked for while the paid-call lease is taken (one round
            # trip for both); the call goes only once both are in, and a refused permit drops
            # the lease (nothing was sent, so nothing is booked).
            permit = take = None
            store = self._health.store if self._health is not None else None
            if store is not None and not store.closed_lately(provider, model):
                permit = asyncio.ensure_future(store.acquire(provider, model))
            bucket = _bucket_tokens(ctx, client, tokens)
            if self._attempts is not None:  # the first rate-limit take rides along too
                take = self._attempts.start_take(client, model, bucket)
            has_fallback = index + 1 < len(candidates)
            trail.current = name
            call = functools.partial(self._call, ctx, client, model, has_fallback, bucket, take)
            try:
                completion = await paid_call(
                    self._paid, ctx, provider=client.name, model=model, input_tokens=tokens.input,
                    simulated=client.config.simulated, catalog=self._catalog,
                    make=functools.partial(when_permitted, permit, name, call),
                )  # fmt: skip
            except CircuitOpenError as exc:
                notes.append(exc.reason)
                continue
            except RouterError as exc:
                if isinstance(exc, DeadlineExceededError):
                    exc.reason = "; ".join([*notes, exc.reason])
                    raise
                code = exc.code
                notes.append(exc.reason)
                continue
            finally:
                for early in (permit, take):
                    if early is not None and not early.done():  # the lease failed first
                        early.cancel()
            result = await self._priced(ctx, route, client, model, completion, notes)
            if index > 0:
                span.set_attribute("flipsync.fallback", True)
                span.set_attribute("flipsync.fallback_reason", "; ".join(notes))
            span.set_attribute("flipsync.provider", client.name)
            return result
        raise _exhausted(notes, code)

    def _client(self, provider: str, model: str) -> ProviderClient | None:
        try:
            client = self._registry.get(provider)
        except KeyError:
            return None
        return client if model in client.config.models else None

    def _fits(self, routed: str, model: str, tokens: _Tokens, ctx: RequestContext) -> bool:
        """Whether model's max cost stays within the reservation made for the routed model."""
        if model == routed:
            return True
        if routed not in self._catalog or model not in self._catalog:
            return False
        request = ctx.request
        routed_price, price = self._catalog.get(routed), self._catalog.get(model)
        return all(  # each model's own bound: tokenizers and image rules differ
            max_request_cost(request, price, m, estimate=tokens.input)
            <= max_request_cost(request, routed_price, m, estimate=tokens.input)
            for m in (Decimal(1), Decimal(MAX_BUDGET_MARGIN))
        )

    async def _call(
        self,
        ctx: RequestContext,
        client: ProviderClient,
        model: str,
        has_fallback: bool,
        bucket_tokens: int,
        first_take: asyncio.Future[float] | None = None,
    ) -> Completion:
        # A cascade rung's answer may be escalated: only a whole answer can be taken back.
        climbs = isinstance(ctx.route, CascadeRoute)
        relay = self._relays.for_request(ctx.request) if self._relays and not climbs else None
        if self._attempts is None:
            name = f"chat {model}"
            with self._tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT) as span:
                remaining = ctx.remaining_s()
                timeout = self._timeout_s if remaining is None else min(remaining, self._timeout_s)
                try:
                    completion = await client.complete(ctx.request, model, timeout, relay)
                except ProviderCallError as exc:  # no retry here: its reason, made safe
                    exc.reason = stored_reason(exc)
                    if exc.timed_out:
                        span.set_attribute(BILLED_ATTRIBUTE, True)
                        exc.reason = f"{exc.reason}; {MAY_HAVE_BEEN_BILLED}"
                    raise
                self._annotate(model, span, completion)
                return completion
        attempt = Attempt(
            client=client,
            model=model,
            has_fallback=has_fallback,
            tokens=bucket_tokens,
            annotate=lambda span, completion: self._annotate(model, span, completion),
            relay=relay,
            first_take=first_take,
        )
        return await self._attempts.call(ctx, attempt)

    def _annotate(self, model: str, span: trace.Span, completion: Completion) -> None:
        """Cost and baseline of an answer, on its call's span."""
        span.set_attribute("flipsync.cost_micro_usd", self._cost(model, completion))
        baseline = baseline_micro_usd(self._catalog, self._baseline_model, completion.usage)
        span.set_attribute("flipsync.baseline_micro_usd", baseline)

    def _cost(self, model: str, completion: Completion) -> int:
        """Priced as the model the provider reports having served (providers.served_model);
        0 for a call already booked at its bound as lost (Completion.booked_as_lost)."""
        if completion.booked_as_lost:
            return 0
        price = served_model(self._catalog, model, completion.model).price
        return cost_micro_usd(price, completion.usage)

    async def _priced(
        self,
        ctx: RequestContext,
        route: Route,
        client: ProviderClient,
        model: str,
        completion: Completion,
        notes: list[str],
    ) -> LlmResult:
        """The result of an answer: validated, priced, recorded in the provider's health."""
        request = ctx.request
        cost = self._cost(model, completion)
        baseline = baseline_micro_usd(self._catalog, self._baseline_model, completion.usage)
        served = served_model(self._catalog, model, completion.model)
        steps = paid_call_steps(served.price, completion.usage, naive=baseline)
        reason = f"{route.reason}; {served.note}" if served.note else route.reason
        if completion.booked_as_lost:
            reason = f"{reason}; {BOOKED_AS_LOST}"
        if notes:
            reason = f"{reason}; fallback to {client.name}/{model} after: {'; '.join(notes)}"
        recorded = None  # the provider answered: its health is recorded while we validate
        if self._health is not None:
            recorded = asyncio.ensure_future(
                self._health.store.record(
                    client.name,
                    model,
                    Outcome.OK,
                    latency_ms=completion.latency_ms,
                    cost_micro_usd=cost,
                    input_tokens=completion.usage.input_tokens,
                    output_tokens=completion.usage.output_tokens,
                )
            )
        parsed: object | None = None
        status, code = Status.OK, None
        try:
            if request.output_schema is not None:
                parsed, problem = await parse_answer_off_loop(
                    completion.content, request.output_schema.schema
                )
                if problem:
                    status, code, reason = Status.ERROR, ErrorCode.SCHEMA_INVALID, problem
        finally:
            if recorded is not None:
                await recorded
        return LlmResult(
            request_id=request.id,
            tenant=request.tenant,
            agent=request.agent,
            status=status,
            error_code=code,
            reason=reason,
            content=completion.content,
            parsed=parsed,
            tool_calls=completion.tool_calls,
            model=completion.model,
            provider=client.name,
            usage=completion.usage,
            cost_micro_usd=cost,
            baseline_micro_usd=baseline,
            lever=Lever.ROUTED,
            latency_ms=ctx.elapsed_ms(),
            simulated=client.config.simulated,
            savings_by_lever=chain(baseline, steps),
            finish_reason=completion.finish_reason,
        )


@dataclass
class _Trail:
    """What dispatch has tried so far, for the reason of a deadline that cuts it short."""

    notes: list[str] = field(default_factory=list)
    current: str | None = None


class _Tokens:
    """The request's input token estimate, counted once and only if something needs it."""

    def __init__(self, ctx: RequestContext) -> None:
        self._ctx = ctx
        self._input: int | None = None

    @property
    def input(self) -> int:
        """Estimated input tokens (messages, schema, tools), as the budget stage counts them."""
        if self._input is None:
            self._input = estimate_input_tokens(self._ctx.request)
        return self._input


class CircuitOpenError(RouterError):
    """A candidate's circuit let no call through (it is open, or a probe is out)."""


async def when_permitted(
    permit: asyncio.Future[Permit] | None, name: str, call: Callable[[], Awaitable[Completion]]
) -> Completion:
    """call(), once the circuit's permit (asked for beside the paid-call lease) allows it."""
    if permit is not None:
        granted = await permit
        if not granted.allowed:
            retry = f"probe in {granted.retry_in_s:.1f}s"
            raise CircuitOpenError(f"{name}: circuit {granted.state} ({retry})")
    return await call()


def _bucket_tokens(ctx: RequestContext, client: ProviderClient, tokens: _Tokens) -> int:
    """What a call takes from its provider's tokens-per-minute bucket (0 without a limit)."""
    limited = client.config.limits.limited
    return request_tokens(ctx.request, tokens.input) if limited else 0


def answer_may_be_kept(ctx: RequestContext, model: str) -> bool:
    """Whether an answer of model may have been kept for this request before: not when this
    delivery claimed the request id first and has not been answered by model yet (the
    lookup is a round trip on every request's way; only a redelivery, a reused id or a
    second call in one delivery can find anything)."""
    return not ctx.new_id or any(call.model == model for call in ctx.paid)


def _exhausted(notes: list[str], code: ErrorCode) -> RouterError:
    if len(notes) == 1:
        return NoCandidateLeftError(notes[0], code)
    return NoCandidateLeftError(f"no candidate could answer: {'; '.join(notes)}", code)
