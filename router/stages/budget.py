"""Budget: reserve the request's maximum cost before dispatch, settle with real usage after.

Sits after route (the model is known) and before batch and dispatch. The maximum cost is the
estimated input tokens (router.tokens, times the configured margin) plus max_output_tokens,
at the routed model's prices, rounded up. It is reserved in every applicable budget at once
(cost_ledger.budgets); the answer's cost_micro_usd (cached and batch-discounted tokens
included) is settled and the rest released. A request that fails unpaid releases it all.

Over a budget, per that budget's policy: refuse (OverBudgetError: an over_budget result
naming budget, scope, limit and spent), or downgrade to the cheapest model of the next lower
tier and reserve again. A request that would fit once in-flight reservations settle waits
for them (within max_wait_s and its deadline) instead of being refused.

The end user and tier of message quotas come from LlmRequest.tags["user"] and tags["tier"].
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal

from bus.messages import BudgetPolicy, ImagePart, LlmRequest, LlmResult
from cost_ledger.budgets.alerts import AlertSink
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.downgrade import downgrade_choice
from cost_ledger.budgets.gate import BudgetGate, Reservation
from cost_ledger.budgets.policy import Check, Subject, Unit
from cost_ledger.budgets.scripts import Code
from cost_ledger.catalog import PriceCatalog
from router.context import RequestContext, Route
from router.errors import NoRouteError, OverBudgetError, UnavailableError
from router.paid_calls import paid_micro_usd
from router.pipeline import Handler
from router.providers.messages import openai_messages
from router.providers.registry import ProviderRegistry
from router.reservation_overrun import Overruns
from router.token_bound import max_request_cost
from router.tokens import count_messages_tokens, count_text_tokens

USER_TAG = "user"
TIER_TAG = "tier"
FIRST_POLL_S = 0.02
LAST_POLL_S = 0.25
"""A waiting request asks Redis again at least this often (jittered), for room other
replicas freed; room this replica frees wakes it at once."""

log = logging.getLogger(__name__)


def offered_by(registry: ProviderRegistry) -> Callable[[str], str | None]:
    """The provider offering a model, by name, or None: what BudgetStage needs of a registry."""

    def offered(model: str) -> str | None:
        client = registry.offering(model)
        return client.name if client is not None else None

    return offered


def subject_of(request: LlmRequest) -> Subject:
    """Who a request counts against: tenant, agent, workflow, workspace, project, and tags
    user and tier."""
    return Subject(
        tenant=request.tenant,
        agent=request.agent,
        workflow=request.workflow_id,
        user=request.tags.get(USER_TAG, ""),
        tier=request.tags.get(TIER_TAG, ""),
        workspace=request.workspace,
        project=request.project,
    )


def estimate_input_tokens(request: LlmRequest, margin: Decimal = Decimal(1)) -> int:
    """Input tokens the provider may bill: messages, output schema and tools, times margin."""
    tokens = count_messages_tokens(openai_messages(request.messages))
    if request.output_schema is not None:
        tokens += count_text_tokens(json.dumps(request.output_schema.schema))
    tools = getattr(request, "tools", None)  # tool definitions are billed as input
    if tools:
        tokens += count_text_tokens(json.dumps(tools))
    return math.ceil(tokens * margin)


class BudgetStage:
    """Reserve before the rest of the pipeline, settle after it; refuse or downgrade."""

    name = "budget"

    def __init__(
        self,
        budgets: BudgetGate,
        catalog: PriceCatalog,
        offered: Callable[[str], str | None],
        *,
        overrun_alerts: AlertSink | None = None,
        book_lost_calls: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """offered(model) is the configured provider offering a model, or None;
        overrun_alerts gets an alert for every answer that cost more than its reservation;
        book_lost_calls (router.paid_answers.PaidAnswers.reap) books the lost calls whose
        lease lapsed, run before a redelivery reserves."""
        self._budgets = budgets
        self._book_lost_calls = book_lost_calls
        self._catalog = catalog
        self._offered = offered
        self._overruns = Overruns(overrun_alerts)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Reserve, call the rest, settle (or release on failure)."""
        if ctx.route is None:
            raise NoRouteError("the request reached the budget stage without a route")
        request = ctx.request
        subject = subject_of(request)
        engine = self._budgets.engine
        tokens_in = estimate_input_tokens(request)
        if ctx.delivery > 1 and self._book_lost_calls is not None:
            # An earlier delivery's lost call is booked (its cost taken off the reservation)
            # before this one takes the reservation over: after that, its give-back is
            # skipped (scripts.GIVE_BACK) and this delivery would find no room for its call.
            try:
                await self._book_lost_calls()
            except Exception:  # Redis or NATS away: the reapers book it later
                log.debug("booking lost calls before a redelivery failed", exc_info=True)
        got, first = await self._reserve(ctx, subject, tokens_in, engine)
        ctx.reserved_micro_usd = first

        async def top_up(extra: int) -> bool:
            if got.code is Code.SETTLED:
                return False  # a redelivery of a paid request spends nothing more
            grown = await self._budgets.extend(request.id, subject, extra)
            if grown.holds:
                ctx.reserved_micro_usd = (ctx.reserved_micro_usd or 0) + extra
            return grown.holds

        ctx.top_up = top_up
        # The reservation kept alive while the call runs (off the loop, in a stack).
        held = (
            []
            if got.code is Code.SETTLED or got.none_needed
            else self._budgets.hold(request.id, subject)
        )
        try:
            result = await call_next(ctx)
        except BaseException:
            self._budgets.unhold(held)
            with contextlib.suppress(Exception):  # a call paid before the failure is settled
                await asyncio.shield(self._settle_or_release(ctx, subject))
            raise
        # The reservation stays held (and kept alive) until this settle, which the service
        # runs once the result is published: the requester does not wait for it. Left first,
        # so nothing after it (a cancelled overrun alert) can skip it.
        await ctx.later(functools.partial(self._settle, ctx, got, subject, result, held))
        reserved = ctx.reserved_micro_usd or 0
        if result.cost_micro_usd > reserved:  # booked in full by the settle, counted and alerted
            await self._overruns.record(request, result, reserved)
        return result

    async def _settle(
        self,
        ctx: RequestContext,
        got: Reservation,
        subject: Subject,
        result: LlmResult,
        held: list[int],
    ) -> None:
        """Settle an answered request's real cost (the ledger does if this fails)."""
        request = ctx.request
        messages = 1 if subject.user and result.cost_micro_usd > 0 else 0
        try:
            settlement = await self._budgets.settle(
                request.id,
                subject,
                cost=result.cost_micro_usd,
                messages=messages,
                at_ms=result.finished_ms,
            )
            if settlement.complete:  # the ledger event carries it: the ledger settles nothing
                ctx.settled = (result.cost_micro_usd, messages)
            if settlement.applied and not settlement.held and _reserved_here(got):
                log.warning(
                    "request %s settled %d micro-USD after its reservation expired (this "
                    "replica stalled past reservation_ttl_s, %.1fs, and its room went to "
                    "other requests): spend may pass a budget by that much",
                    request.id, result.cost_micro_usd, self._budgets.engine.reservation_ttl_s,
                )  # fmt: skip
        except Exception:  # the ledger consumer settles it from the ledger event
            log.warning("request %s not settled here; the ledger will", request.id, exc_info=True)
        finally:
            self._budgets.unhold(held)

    async def _reserve(
        self, ctx: RequestContext, subject: Subject, tokens_in: int, engine: EngineSettings
    ) -> tuple[Reservation, int]:
        """Reserve for ctx.route, downgrading it or waiting as the budgets say; returns the
        reservation and the amount reserved (the request's maximum cost)."""
        loop = asyncio.get_running_loop()
        remaining = ctx.remaining_s()
        wait_s = engine.max_wait_s if remaining is None else min(engine.max_wait_s, remaining)
        deadline = loop.time() + wait_s
        poll = FIRST_POLL_S
        request = ctx.request
        while True:
            assert ctx.route is not None
            price = self._catalog.get(ctx.route.model)
            amount = max_request_cost(request, price, engine.input_margin, estimate=tokens_in)
            cap = (await self._budgets.rules()).request_cap
            if cap is not None and amount > cap.limit_micro_usd:
                if cap.policy is BudgetPolicy.DOWNGRADE and self._downgrade(ctx, tokens_in, "cap"):
                    continue
                raise OverBudgetError(
                    budget="request-cap", scope="request", period="",
                    limit=cap.limit_micro_usd, spent=0, needed=amount,
                )  # fmt: skip
            got = await self._budgets.reserve(request.id, subject, amount)
            if got.holds:
                return got, amount
            check = got.check
            if got.code is Code.DENIED and check is not None:
                downgrade = check.policy is BudgetPolicy.DOWNGRADE and check.unit is Unit.USD
                if downgrade and self._downgrade(ctx, tokens_in, check.budget):
                    continue
                raise _over(check, got, amount)
            left = deadline - loop.time()
            if left <= 0:
                if got.code is Code.NOT_READY or check is None:
                    raise UnavailableError(
                        "budget counters are being rebuilt (flipsync ledger rebuild); "
                        f"waited {wait_s:.1f}s"
                    )
                raise _over(check, got, amount, waited_s=wait_s)
            await self._budgets.wait_for_release(min(poll * random.uniform(0.75, 1.25), left))
            poll = min(poll * 2, LAST_POLL_S)

    async def _settle_or_release(self, ctx: RequestContext, subject: Subject) -> None:
        """After a failure: settle what the request paid so far, or release it all."""
        paid = paid_micro_usd(ctx)  # its calls and a packed share it paid before going alone
        if not paid:
            await self._budgets.release(ctx.request.id, subject)
            return
        messages = 1 if subject.user else 0
        await self._budgets.settle(
            ctx.request.id, subject, cost=paid, messages=messages, at_ms=ctx.started_ms
        )

    def _downgrade(self, ctx: RequestContext, tokens_in: int, why: str) -> bool:
        """Route to the cheapest model of the next lower tier; False if there is none."""
        assert ctx.route is not None
        request = ctx.request
        choice = downgrade_choice(
            self._catalog,
            ctx.route.model,
            input_tokens=tokens_in,
            max_output_tokens=request.max_output_tokens,
            offered=lambda model: self._offered(model) is not None,
            needs_vision=_has_images(request),
            quality_floor=request.quality_floor,
        )
        provider = self._offered(choice.name) if choice is not None else None
        if choice is None or provider is None:
            return False
        reason = f"{ctx.route.reason}; downgraded from {ctx.route.model} (budget {why})"
        # Dispatch falls back only to models no dearer than this one, so the rest may stay.
        fallbacks = tuple(f for f in ctx.route.fallbacks if f.model != choice.name)
        ctx.route = Route(model=choice.name, provider=provider, reason=reason, fallbacks=fallbacks)
        return True


def _over(check: Check, got: Reservation, needed: int, waited_s: float = 0.0) -> OverBudgetError:
    detail = ""
    if got.code is Code.WAIT:
        detail = f"{got.reserved} held by requests in flight did not settle within {waited_s:.1f}s"
    return OverBudgetError(
        budget=check.budget,
        scope=check.scope,
        period=f"{check.period.value} {check.period_key[1:]}",
        limit=check.limit,
        spent=got.spent,
        needed=check.amount if check.unit is Unit.MESSAGES else needed,
        unit=check.unit.value,
        detail=detail,
    )


def _reserved_here(got: Reservation) -> bool:
    """Whether this delivery's settle should find a reservation standing: one was made or
    found held (not: nothing needed one, or the request was settled before)."""
    return not got.none_needed and got.code in (Code.RESERVED, Code.HELD)


def _has_images(request: LlmRequest) -> bool:
    return any(
        isinstance(part, ImagePart)
        for message in request.messages
        if not isinstance(message.content, str)
        for part in message.content
    )
