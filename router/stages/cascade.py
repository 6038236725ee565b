"""Cascade: after the budget stage, climb the ladder a cascade route carries until an answer
validates.

The route stage starts a cascade with a ``CascadeRoute`` on the ladder's cheapest rung. When
the rest of the pipeline answers with schema_invalid, this stage grows the budget
reservation by the next rung's maximum cost (``RequestContext.reserve_more``), records the
failure as a quality signal, adds an ``escalation`` span event and calls the rest again on
the next rung. The result that comes back carries every call's cost and usage, the lever
ESCALATED and a reason naming each escalation (from, to, problem). The budget stage settles
that summed cost. A budget with no room for the next rung ends the climb with the failed
answer, whose reason says so. A route that is not a CascadeRoute (or a budget downgrade,
which replaces it) passes through untouched.

The stack nests this stage inside the budget stage (``CascadeStage.around``), so the stage
spans stay pattern ... route, budget, batch, dispatch; escalation events land on the budget
span. A failed rung's answer is recorded in the quality counts (a bad schema signal) only
when the cascade climbs past it: the answer the requester gets is judged by the requester.

With a ``book`` (the stack's), once the climb is over (the budget stage settles the summed
cost, in the router service after the result is published: until then the ledger may see
the failed attempts both spent and still reserved, the safe side), each failed
attempt is booked as its own ledger event (``<id>-cascade-<n>``, overhead_of="routing", no
baseline: router.stages.off_path) and the result, still paying for every call (the
requester's cost is the whole climb), names that part in ``overhead_micro_usd`` and
``overhead_usage``, which its own ledger event leaves out: the ledger charges the climb to
routing's savings as lever cost. Should booking fail, one event carries it all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import msgspec
from opentelemetry import trace

from bus.messages import ErrorCode, Lever, LlmResult, Usage
from cost_ledger.catalog import PriceCatalog
from router.context import Fallback, RequestContext, Route
from router.pipeline import Handler, Stage
from router.routing.cascade import Ladder, escalate
from router.routing.neighbours import OutcomeMemory
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore
from router.stages.budget import estimate_input_tokens
from router.stages.off_path import Book, overhead_event
from router.token_bound import max_request_cost

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class CascadeRoute(Route):
    """A route on one rung of a cascade ladder; the cascade stage may climb it."""

    ladder: Ladder


def rung_route(
    ladder: Ladder, model: str, provider: str, reason: str, alternates: tuple[Fallback, ...]
) -> CascadeRoute:
    """The route of one rung: fallbacks are its model at other providers, then the rungs above."""
    above: list[Fallback] = []
    seen = False
    for rung in ladder.rungs:
        if seen:
            above.append(Fallback(model=rung.model, provider=rung.provider))
        seen = seen or rung.model == model
    return CascadeRoute(
        model=model,
        provider=provider,
        reason=reason,
        fallbacks=(*alternates, *above),
        ladder=ladder,
    )


class CascadeStage:
    """Escalate a cascade route's schema-invalid answer to the next rung, within the budget."""

    name = "cascade"

    def __init__(
        self,
        catalog: PriceCatalog,
        *,
        quality: QualityStore | None = None,
        alternates: dict[str, tuple[Fallback, ...]] | None = None,
        input_margin: Decimal = Decimal("1.10"),
        book: Book | None = None,
        neighbours: OutcomeMemory | None = None,
    ) -> None:
        """alternates: for a model, the same model at other providers (dispatch fallbacks);
        book: publishes a ledger event (failed attempts booked as routing's lever cost);
        neighbours: where a failed rung is also filed by prompt (router.routing.neighbours)."""
        self._catalog = catalog
        self._neighbours = neighbours
        self._book = book
        self._quality = quality
        self._alternates = alternates or {}
        self._margin = input_margin

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Call the rest; climb the ladder while the answer is schema-invalid."""
        return await self.climb(ctx, call_next, [])

    async def climb(
        self, ctx: RequestContext, call_next: Handler, climbed: list[LlmResult]
    ) -> LlmResult:
        """Call the rest, climbing while schema-invalid; climbed gets the attempts climbed past.
        The result pays for every call (the budget stage settles that)."""
        route = ctx.route
        if not isinstance(route, CascadeRoute):
            return await call_next(ctx)
        result = await call_next(ctx)
        spent = [result]
        steps: list[str] = []
        span = trace.get_current_span()
        while result.error_code is ErrorCode.SCHEMA_INVALID and isinstance(ctx.route, CascadeRoute):
            current = ctx.route
            failed = result.model or current.model
            step = escalate(current.ladder, current.model, result.reason)
            if step is None:
                break
            extra = self._max_cost(ctx, step.to_model)
            if not await ctx.reserve_more(extra):
                steps.append(f"no budget room to escalate from {failed} to {step.to_model}")
                break
            # Only an answer climbed past is recorded here: the requester never sees it.
            await self._record_failure(ctx, failed, len(spent))
            span.add_event(
                "escalation",
                {
                    "flipsync.escalation.from": failed,
                    "flipsync.escalation.to": step.to_model,
                    "flipsync.escalation.problem": result.reason[:500],
                },
            )
            steps.append(step.reason)
            alternates = tuple(
                f for f in self._alternates.get(step.to_model, ()) if f.provider != step.to_provider
            )
            ctx.route = rung_route(
                current.ladder,
                step.to_model,
                step.to_provider,
                f"{current.reason}; {step.reason}",
                alternates,
            )
            result = await call_next(ctx)
            spent.append(result)
        climbed.extend(spent[:-1])
        if len(spent) == 1 and not steps:
            return result
        return _combined(result, spent, steps)

    async def book_failed(
        self, ctx: RequestContext, result: LlmResult, failed: list[LlmResult], version: str
    ) -> LlmResult:
        """Book each failed attempt as routing's lever cost; the result (still paying for
        them all) says how much of it they were, which its own ledger event leaves out.
        Without a book, or when booking fails, the result as it is (one event for all)."""
        if self._book is None or not failed:
            return result
        request = ctx.request
        try:
            for rung, attempt in enumerate(failed, start=1):
                event = overhead_event(
                    request, attempt, version, arm=ctx.arm, event_id=f"{request.id}-cascade-{rung}"
                )
                await self._book(event)
        except Exception:
            log.warning("failed attempts of %s not booked apart", request.id, exc_info=True)
            return result
        spare = Usage(
            input_tokens=sum(r.usage.input_tokens for r in failed),
            cached_input_tokens=sum(r.usage.cached_input_tokens for r in failed),
            output_tokens=sum(r.usage.output_tokens for r in failed),
        )
        cost = sum(r.cost_micro_usd for r in failed)
        return msgspec.structs.replace(result, overhead_micro_usd=cost, overhead_usage=spare)

    def around(self, outer: Stage, catalog_version: Callable[[], str] = str) -> InsideStage:
        """outer (the budget stage) with this cascade inside it, as one stage;
        catalog_version names the prices of the failed attempts' ledger events."""
        return InsideStage(outer, self, catalog_version)

    def _max_cost(self, ctx: RequestContext, model: str) -> int:
        request = ctx.request
        estimate = estimate_input_tokens(request)
        return max_request_cost(request, self._catalog.get(model), self._margin, estimate=estimate)

    async def _record_failure(self, ctx: RequestContext, model: str, rung: int) -> None:
        """A failed rung is a bad schema signal: nobody downstream ever sees that answer."""
        if self._neighbours is not None and model:
            self._neighbours.observe(ctx.request.id, model, False, "cascade")
        if self._quality is None or not model:
            return
        signal = QualitySignal(
            model=model, task_type=ctx.request.task_type, kind=SignalKind.SCHEMA, good=False
        )
        try:
            await self._quality.record(signal, f"cascade-{ctx.request.id}-{rung}")
        except Exception:  # learning is best effort; the request goes on
            log.warning("quality signal of %s not recorded", ctx.request.id, exc_info=True)


def _combined(last: LlmResult, spent: list[LlmResult], steps: list[str]) -> LlmResult:
    """The last result, paying for every call, with the escalations in its reason."""
    usage = Usage(
        input_tokens=sum(r.usage.input_tokens for r in spent),
        cached_input_tokens=sum(r.usage.cached_input_tokens for r in spent),
        output_tokens=sum(r.usage.output_tokens for r in spent),
    )
    escalated = len(spent) > 1
    lever = Lever.ESCALATED if escalated else last.lever
    reason = "; ".join([last.reason, *steps]) if not last.ok else last.reason
    return msgspec.structs.replace(
        last,
        usage=usage,
        cost_micro_usd=sum(r.cost_micro_usd for r in spent),
        baseline_micro_usd=max(r.baseline_micro_usd for r in spent),
        lever=lever,
        reason=reason,
    )


class InsideStage:
    """A stage with the cascade run inside it, in its span: budget then cascade, as one.

    The cascade must run within the budget stage's reservation; nesting it there keeps the
    pipeline's stage spans as they are (the escalation events land on the budget span).
    """

    def __init__(
        self, outer: Stage, cascade: CascadeStage, catalog_version: Callable[[], str] = str
    ) -> None:
        self.name = outer.name
        self._outer = outer
        self._cascade = cascade
        self._version = catalog_version

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        """Run the outer stage around the cascade around the rest; once the outer stage has
        settled the whole climb, book its failed attempts apart (CascadeStage.book_failed)."""
        failed: list[LlmResult] = []

        async def climb(inner: RequestContext) -> LlmResult:
            failed.clear()  # a budget stage that calls the rest again starts a new climb
            return await self._cascade.climb(inner, call_next, failed)

        result = await self._outer(ctx, climb)
        return await self._cascade.book_failed(ctx, result, failed, self._version())
