"""Calls routing makes for itself, off the response path, booked as the router's own cost.

Shadow evaluation (router.stages.route_shadow), judge grading (router.stages.judge) and the
cascade's failed attempts (router.stages.cascade) are paid provider calls that served no
requester: each is booked as its own ledger event with ``overhead_of="routing"`` and no
baseline, so the ledger charges it against routing's savings (cost_ledger.lever_split) and
never reports it as a saving. This module holds what they share: which requests are chosen
(a hash of the request id, so a redelivery makes the same choice), the child request sent
down the rest of the pipeline, the overhead event, and a bounded set of background tasks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

import msgspec

from bus.messages import CachePolicy, ErrorCode, LedgerEvent, LlmRequest, LlmResult, error_result
from router.context import RequestContext, Route
from router.outcomes import ledger_event
from router.paid_calls import booked
from router.pipeline import Handler

log = logging.getLogger(__name__)

ROUTING = "routing"
"""The lever name routing's own calls are charged to (LedgerEvent.overhead_of)."""
MAX_IN_FLIGHT = 8
DROPPED_TAGS = frozenset({"user", "session"})
"""Tags a child request does not carry: no user's message quota, no session's pin."""

Book = Callable[[LedgerEvent], Awaitable[None]]
"""Publishes one ledger event (router.semantic.shadow.ledger_booking)."""


def chosen(request_id: str, share: float, salt: str) -> bool:
    """Whether this request id is chosen for a share in [0, 1] (salt: one choice per use)."""
    digest = hashlib.blake2b(f"{salt}\x00{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < share


def child(served: RequestContext, request: LlmRequest, route: Route) -> RequestContext:
    """A context for a routing call of its own: request (its own id), uncached, no deadline,
    on route, in the served request's arm and with its levers."""
    tags = {k: v for k, v in request.tags.items() if k not in DROPPED_TAGS}
    return RequestContext(
        request=msgspec.structs.replace(
            request, cache_policy=CachePolicy.BYPASS, deadline_ms=0, tags=tags, model_hint=""
        ),
        route=route,
        disabled_levers=served.disabled_levers,
        routing_policy=served.routing_policy,
        arm=served.arm,
    )


async def call(ctx: RequestContext, call_next: Handler) -> LlmResult:
    """The rest of the pipeline's answer to a routing call; a failure becomes an error
    result that still carries what was paid (router.paid_calls.booked)."""
    try:
        return await call_next(ctx)
    except Exception as exc:
        request = ctx.request
        log.warning("routing call %s failed: %s", request.id, exc)
        reason = f"routing call failed: {type(exc).__name__}: {exc}"
        error = error_result(request.id, request.tenant, request.agent, ErrorCode.INTERNAL, reason)
        return booked(ctx, error)


def overhead_event(
    request: LlmRequest,
    result: LlmResult,
    catalog_version: str,
    *,
    arm: str | None,
    event_id: str = "",
) -> LedgerEvent:
    """The ledger event of one of routing's own calls: its cost, charged to routing.

    event_id (default: the request's id) is its request id as well: the ledger settles
    budgets once per request id, so a call of its own must not share the answer's."""
    event = ledger_event(request, result, catalog_version)
    own = event_id or event.event_id
    return msgspec.structs.replace(
        event,
        event_id=own,
        request_id=own,
        baseline_micro_usd=0,  # it served nobody: no counterfactual, no saving
        savings_by_lever={},
        arm=arm,
        overhead_of=ROUTING,
    )
