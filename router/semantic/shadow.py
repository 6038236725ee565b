"""Shadow checks: a small share of semantic hits re-asked off the response path.

The served answer goes out at once; a chosen hit (a share of them, chosen by a hash of the
request id, so a redelivery makes the same choice) is also sent down the rest of the
pipeline as a fresh request of its own id, `<id>-shadow`, with the cache bypassed. Whether
the fresh answer agrees with the cached one, by the rule calibration uses for misses
(request_view.answer_key: the same parsed output, or the same text with spacing folded), is
the hit's verdict (SemanticCache.verify, source "shadow"). What the re-ask cost is booked as
its own ledger event with overhead_of="semantic_cache" and no baseline: a cost of the cache,
subtracted from its savings (cost_ledger.savings), never a saving of anything.

At most MAX_IN_FLIGHT checks run at once per replica; a hit chosen beyond that is not
checked (the share is a ceiling, not a promise).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

import msgspec
from faststream.nats import NatsBroker

from bus import subjects
from bus.codec import encode
from bus.messages import CachePolicy, ErrorCode, LedgerEvent, Lever, LlmResult, error_result
from bus.publishing import publish, scoped_msg_id
from bus.settings import Settings
from router.background import Background
from router.context import RequestContext
from router.outcomes import ledger_event, needs_ledger
from router.paid_calls import booked
from router.pipeline import Handler
from router.semantic.request_view import answer_key
from router.semantic.store import SemanticCache

log = logging.getLogger(__name__)

OVERHEAD_OF = Lever.SEMANTIC_CACHE.value
"""The lever a shadow check's cost is charged to."""
SUFFIX = "-shadow"
"""Appended to the served request's id to make the re-ask's."""
MAX_IN_FLIGHT = 8

Book = Callable[[LedgerEvent], Awaitable[None]]
"""Publishes one ledger event."""


def chosen(request_id: str, share: float) -> bool:
    """Whether a hit of this request id is shadow-checked, for a share in [0, 1]."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < share


def overhead_event(ctx: RequestContext, result: LlmResult, catalog_version: str) -> LedgerEvent:
    """The ledger event of a shadow re-ask: its cost, charged to the semantic cache."""
    event = ledger_event(ctx.request, result, catalog_version)
    return msgspec.structs.replace(
        event,
        baseline_micro_usd=0,  # it served nobody: no counterfactual, no saving
        savings_by_lever={},
        arm=ctx.arm,
        overhead_of=OVERHEAD_OF,
    )


class ShadowChecks:
    """Re-asks a share of semantic hits in the background, records each verdict and books
    each re-ask's cost (see module doc)."""

    def __init__(
        self,
        cache: SemanticCache,
        *,
        share: float,
        book: Book,
        catalog_version: Callable[[], str],
    ) -> None:
        self._cache = cache
        self._share = share
        self._book = book
        self._catalog_version = catalog_version
        self._work = Background(MAX_IN_FLIGHT)

    def start(self, ctx: RequestContext, cached: LlmResult, call_next: Handler) -> bool:
        """Begin a check of a served hit when it is chosen; never waits. True if begun."""
        if not chosen(ctx.request.id, self._share):
            return False
        return self._work.spawn(lambda: self._check(ctx, cached, call_next))

    async def drain(self) -> None:
        """Wait for the checks under way (tests, shutdown)."""
        await self._work.drain()

    async def _check(self, served: RequestContext, cached: LlmResult, call_next: Handler) -> None:
        request = served.request
        tags = {k: v for k, v in request.tags.items() if k != "user"}  # no user's quota
        shadow = RequestContext(
            request=msgspec.structs.replace(
                request,
                id=request.id + SUFFIX,
                cache_policy=CachePolicy.BYPASS,
                deadline_ms=0,
                tags=tags,
            ),
            disabled_levers=served.disabled_levers,
            routing_policy=served.routing_policy,
            arm=served.arm,
        )
        try:
            fresh = await call_next(shadow)
        except Exception as exc:  # a failed check must still book what it paid
            log.warning("shadow check of request %s failed: %s", request.id, exc)
            reason = f"shadow check failed: {type(exc).__name__}: {exc}"
            code = ErrorCode.INTERNAL
            fresh = booked(shadow, error_result(shadow.request.id, request.tenant,
                                                request.agent, code, reason))  # fmt: skip
        try:
            if needs_ledger(fresh):
                await self._book(overhead_event(shadow, fresh, self._catalog_version()))
            if fresh.ok:
                agree = answer_key(fresh) == answer_key(cached)
                await self._cache.verify(request.id, agree, "shadow", tenant=request.tenant)
        except Exception:
            log.warning("shadow check of request %s not recorded", request.id, exc_info=True)


def ledger_booking(broker: NatsBroker) -> Book:
    """Publishes a ledger event as the router's outcomes do (deduplicated by event id)."""

    async def book(event: LedgerEvent) -> None:
        await publish(
            broker,
            encode(event),
            subjects.ledger_for(event.tenant, event.arm),
            stream=subjects.STREAM_LEDGER,
            msg_id=scoped_msg_id(event.tenant, event.event_id),
        )

    return book


def shadow_checks(
    settings: Settings,
    cache: SemanticCache | None,
    broker: NatsBroker,
    catalog_version: Callable[[], str],
) -> ShadowChecks | None:
    """The router's shadow checks, or None without a semantic cache or with a share of 0."""
    share = settings.semantic.shadow_share
    if cache is None or share <= 0:
        return None
    return ShadowChecks(
        cache, share=share, book=ledger_booking(broker), catalog_version=catalog_version
    )
