"""Publishing a request's outcome: its one result, its ledger event, or a dead letter.

The result is published first; then the stages' bookkeeping runs (the budget settle,
dedup's finish: RequestContext.later), then the ledger event is published (it says what
that settle charged), and only then is the request acked. A replica killed anywhere in
between leaves a request that is redelivered, finds its result already stored, and
re-publishes the same ledger event (deduplicated by event id; the ledger's final settle
charges it if the router's did not, and releases the reservation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus import subjects
from bus.codec import decode, encode
from bus.messages import (
    DeadLetter,
    ErrorCode,
    LedgerEvent,
    Lever,
    LlmRequest,
    LlmResult,
    Status,
    Usage,
)
from bus.publishing import publish, scoped_msg_id
from cost_ledger.savings import settled as settled_split


def ledger_event(
    request: LlmRequest,
    result: LlmResult,
    catalog_version: str,
    settled: tuple[int, int] | None = None,
) -> LedgerEvent:
    """The ledger event of a result; deterministic, so a re-publish is the same event.

    settled: (cost, messages) the router's settle charged first in every budget group
    (RequestContext.settled); recorded only when it is this result's cost."""
    paid_levers = (Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API, Lever.TRIMMED)
    paid = result.lever in paid_levers
    # Routing's own calls made for this request are booked apart (router.stages.cascade).
    cost = result.cost_micro_usd - result.overhead_micro_usd
    spare = result.overhead_usage
    usage = Usage(
        input_tokens=result.usage.input_tokens - spare.input_tokens,
        cached_input_tokens=result.usage.cached_input_tokens - spare.cached_input_tokens,
        output_tokens=result.usage.output_tokens - spare.output_tokens,
    )
    return LedgerEvent(
        event_id=request.id,
        request_id=request.id,
        tenant=request.tenant,
        agent=request.agent,
        user=request.tags.get("user", ""),
        workflow_id=request.workflow_id,
        task_type=request.task_type,
        workspace=request.workspace,
        project=request.project,
        model=result.model,
        provider=result.provider,
        usage=usage,
        cost_micro_usd=cost,
        baseline_micro_usd=result.baseline_micro_usd,
        lever=result.lever,
        catalog_version=catalog_version,
        paid_call=paid and cost > 0,
        simulated=result.simulated,
        started_ms=result.finished_ms - int(result.latency_ms),
        finished_ms=result.finished_ms,
        arm=result.arm,
        pack_size=result.pack_size,
        route_reason=result.reason if paid and result.ok else "",
        router_settled=(
            f"{settled[0]}:{settled[1]}"
            if settled is not None and settled[0] == result.cost_micro_usd
            else ""
        ),
        savings_by_lever=settled_split(
            result.savings_by_lever, result.baseline_micro_usd, cost, result.lever.value
        ),
    )


def claimed(result: LlmResult) -> LlmResult:
    """result as it is booked: a saving is claimed only for an answer that was delivered.

    An error result (a schema-invalid answer, a failure after a paid call) keeps what it cost,
    so every paid call is still booked, but its baseline is that cost and its savings split
    is empty: nothing was delivered, so no naive call was saved.
    """
    if result.status is Status.OK:
        return result
    if result.baseline_micro_usd == result.cost_micro_usd and not result.savings_by_lever:
        return result
    return msgspec.structs.replace(
        result, baseline_micro_usd=result.cost_micro_usd, savings_by_lever={}
    )


def needs_ledger(result: LlmResult) -> bool:
    """Whether a result moves money or saves it: an ok result, or an error that was paid."""
    return result.status is Status.OK or result.cost_micro_usd > 0


class OutcomePublisher:
    """Publishes results, ledger events and dead letters to their JetStream streams."""

    def __init__(self, broker: NatsBroker, catalog_version: str | Callable[[], str]) -> None:
        """catalog_version may be a callable: fine-tuned models registered at run time change
        the live catalog's version, and each ledger event names the version that priced it."""
        self._broker = broker
        self._catalog_version = (
            catalog_version if callable(catalog_version) else (lambda: catalog_version)
        )
        self._jetstream: JetStreamContext | None = None

    def _js(self) -> JetStreamContext:
        if self._jetstream is None:  # the connection exists only once the broker started
            self._jetstream = self._broker.connection.jetstream()
        return self._jetstream

    async def stored_result(self, request: LlmRequest) -> LlmResult | None:
        """The result already stored for this request id, if an earlier delivery finished it."""
        subject = subjects.llm_result(request.tenant, request.agent, request.id)
        try:
            raw = await self._js().get_last_msg(subjects.STREAM_RESULTS, subject, direct=True)
        except NotFoundError:
            return None
        if raw.data is None:
            return None
        return decode(raw.data, LlmResult)

    async def publish(
        self, request: LlmRequest, result: LlmResult, settled: tuple[int, int] | None = None
    ) -> None:
        """Publish the result and its ledger event when it has one, together (settled: what
        the router's settle charged, see ledger_event). Each is deduplicated by its id, so a
        redelivery after only one of them was stored publishes the other and nothing twice."""
        if not needs_ledger(result):
            await self.publish_result(result)
            return
        await asyncio.gather(
            self.publish_result(result), self.publish_ledger(request, result, settled)
        )

    async def publish_result(self, result: LlmResult) -> None:
        """Store and deliver the one terminal result (deduplicated by request id)."""
        await publish(
            self._broker,
            encode(result),
            subjects.llm_result(result.tenant, result.agent, result.request_id),
            stream=subjects.STREAM_RESULTS,
            msg_id=scoped_msg_id(result.tenant, result.agent, result.request_id),
        )

    async def publish_ledger(
        self, request: LlmRequest, result: LlmResult, settled: tuple[int, int] | None = None
    ) -> None:
        """Publish the ledger event of a result (deduplicated by event id)."""
        event = ledger_event(request, result, self._catalog_version(), settled)
        await publish(
            self._broker,
            encode(event),
            subjects.ledger_for(event.tenant, event.arm),
            stream=subjects.STREAM_LEDGER,
            msg_id=scoped_msg_id(event.tenant, event.event_id),
        )

    async def dead_letter(
        self, source: str, subject: str, code: ErrorCode, reason: str, payload: bytes
    ) -> None:
        """Keep a message that could not be processed, with its reason."""
        letter = DeadLetter.of(subject, code, reason, payload)
        await publish(
            self._broker,
            encode(letter),
            subjects.dead_letter(source),
            stream=subjects.STREAM_DLQ,
            msg_id=None,
        )
