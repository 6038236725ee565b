"""Shadow evaluation: a small share of routed requests also asked of a second candidate model.

The requester gets the routed answer at once. A chosen request (``routing.shadow_share`` of
them, by a hash of its id; only requests with an output schema, whose answers validate or
not, and only answers that were paid calls) is then sent, off the response path, down the
rest of the pipeline again as ``<id>-route-shadow`` on the route's next-best other model
(its first fallback of another model: the policy's runner-up, or the cascade's next rung).
Whether that answer validates against the schema is recorded in the quality counts as a
schema signal of that model (router.routing.quality_store), so a model the policy passes
over keeps being measured; what the call cost is booked as routing's lever cost
(router.stages.off_path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from bus.messages import ErrorCode, Lever, LlmResult
from router.background import Background
from router.context import RequestContext, Route
from router.outcomes import needs_ledger
from router.pipeline import Handler
from router.routing.neighbours import OutcomeMemory
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore
from router.stages.off_path import MAX_IN_FLIGHT, Book, call, child, chosen, overhead_event

log = logging.getLogger(__name__)

SUFFIX = "-route-shadow"
"""Appended to the served request's id to make the shadow call's."""
SALT = "route-shadow"
PAID = frozenset({Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API, Lever.TRIMMED})


def second_candidate(route: Route, served_model: str) -> Route | None:
    """The route's first fallback of a model other than the one that served, or None."""
    for fallback in route.fallbacks:
        if fallback.model != served_model:
            return Route(
                model=fallback.model,
                provider=fallback.provider,
                reason=f"shadow evaluation of {fallback.model} beside {served_model}",
            )
    return None


class RouteShadows:
    """Starts shadow evaluations of served answers (module doc); never waits for them."""

    def __init__(
        self,
        *,
        share: float,
        book: Book,
        catalog_version: Callable[[], str],
        quality: QualityStore | None,
        neighbours: OutcomeMemory | None = None,
    ) -> None:
        """share: of requests with a schema, in [0, 1]; quality: where verdicts are recorded;
        neighbours: where they are also filed by prompt (router.routing.neighbours)."""
        self._neighbours = neighbours
        self._share = share
        self._book = book
        self._version = catalog_version
        self._quality = quality
        self._work = Background(MAX_IN_FLIGHT)

    def start(self, ctx: RequestContext, result: LlmResult, call_next: Handler) -> bool:
        """Begin a shadow evaluation of a served answer when it is chosen; True if begun."""
        request = ctx.request
        route = ctx.route
        if route is None or request.output_schema is None or not result.ok:
            return False
        if result.lever not in PAID or not chosen(request.id, self._share, SALT):
            return False
        second = second_candidate(route, result.model or route.model)
        if second is None:
            return False
        shadow = child(ctx, msgspec.structs.replace(request, id=request.id + SUFFIX), second)
        return self._work.spawn(lambda: self._evaluate(shadow, call_next))

    async def drain(self) -> None:
        """Wait for the evaluations under way (tests, shutdown)."""
        await self._work.drain()

    async def _evaluate(self, shadow: RequestContext, call_next: Handler) -> None:
        request = shadow.request
        fresh = await call(shadow, call_next)
        try:
            if needs_ledger(fresh):
                await self._book(overhead_event(request, fresh, self._version(), arm=shadow.arm))
            judged = fresh.ok or fresh.error_code is ErrorCode.SCHEMA_INVALID
            model = fresh.model or (shadow.route.model if shadow.route else "")
            if judged and self._neighbours is not None:
                self._neighbours.observe(request.id.removesuffix(SUFFIX), model, fresh.ok, "shadow")
            if judged and self._quality is not None:
                signal = QualitySignal(
                    model=model,
                    task_type=request.task_type,
                    kind=SignalKind.SCHEMA,
                    good=fresh.ok,
                )
                await self._quality.record(signal, f"shadow-{request.id}")
        except Exception:
            log.warning("shadow evaluation %s not recorded", request.id, exc_info=True)
