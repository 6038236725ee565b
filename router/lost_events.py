"""What a paid call is booked at if it is lost: one ledger event per request it serves.

A call marker (router.paid_answers) holds these events while the call runs; a reaper books
them if the call's lease lapses, and a billed failure books them at once. Each request's
part is noted on its context (Owed), so a further call of that request needs room beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from bus.codec import encode
from bus.messages import LedgerEvent, Lever, LlmRequest, Usage
from router.batching.shares import allocate_within
from router.context import RequestContext

LOST_REASON = "lost: the replica died while the provider answered; booked at its maximum"


@dataclass(frozen=True)
class Owed:
    """The requests a call serves and each one's part of its bound, noted on their contexts
    when the call is booked at that bound (RequestContext.booked_micro_usd)."""

    payers: Sequence[RequestContext]
    parts: list[int]

    def note(self) -> None:
        """The call was booked at its bound: each payer's part is counted as spent, not as
        room its reservation holds (RequestContext.spent_elsewhere)."""
        for payer, part in zip(self.payers, self.parts, strict=False):
            payer.spent_elsewhere(part)


def lost_parts(
    request: LlmRequest, call_id: str, most: int, payers: Sequence[RequestContext]
) -> list[tuple[LlmRequest, str, int]]:
    """Who a lost call is booked to, under which event id, and how much: its maximum split
    among the requests it serves in proportion to what each reserved, no part past its
    reservation while together they hold the maximum (what router.context.cover ensures for
    a packed call); a call of one request books it all to that request, under the call id."""
    if len(payers) <= 1:
        return [(payers[0].request if payers else request, call_id, most)]
    held = [p.reserved_micro_usd for p in payers]
    caps = [most if h is None else h for h in held]
    parts = allocate_within(most, caps, caps)
    return [
        (p.request, f"{call_id}-{i}", part)
        for i, (p, part) in enumerate(zip(payers, parts, strict=True))
    ]


def marker(events: list[LedgerEvent]) -> bytes:
    """A call marker's value: its one lost event (as every marker was before packed calls
    were booked per item), or the list of them."""
    return encode(events[0]) if len(events) == 1 else msgspec.json.encode(events)


def lost_event(
    request: LlmRequest,
    lost_id: str,
    provider: str,
    model: str,
    most: int,
    simulated: bool,
    catalog_version: str,
) -> LedgerEvent:
    """The ledger event of a call (or an item's part of one) lost with its replica: its own
    id (never a request id, so it is booked beside the redelivery's call), its maximum cost."""
    return LedgerEvent(
        event_id=lost_id,
        request_id=lost_id,
        tenant=request.tenant,
        agent=request.agent,
        user=request.tags.get("user", ""),
        workflow_id=request.workflow_id,
        task_type=request.task_type,
        workspace=request.workspace,
        project=request.project,
        model=model,
        provider=provider,
        usage=Usage(output_tokens=request.max_output_tokens),
        cost_micro_usd=most,
        baseline_micro_usd=most,
        lever=Lever.ROUTED,
        catalog_version=catalog_version,
        paid_call=True,
        simulated=simulated,
        route_reason=f"{LOST_REASON} (request {request.id})",
        reserved_by=request.id,
    )
