"""The ledger consumer: every LedgerEvent on the LEDGER stream, applied once to the aggregates.

Events handled at the same time are applied to Redis together, in one script call with the
sums per key computed in Python (cost_ledger.coalesce, cost_ledger.batch_apply); each is
still acked, nacked or dead-lettered on its own.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsRouter
from faststream.nats.message import NatsMessage

from bus import subjects
from bus.consumers import dead_letter_publisher, durable_consumer, redis_applier
from bus.errors import WireError
from bus.messages import ErrorCode, LedgerEvent
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore, Applied
from cost_ledger.batch_apply import BatchApplier
from cost_ledger.coalesce import EventCoalescer
from cost_ledger.split_store import SplitStore

DLQ_SOURCE = "ledger"
RETRY_DELAY_S = 1.0
"""How long a message waits for redelivery after Redis failed to take it."""
FETCH_BATCH = 64

log = logging.getLogger(__name__)


def ledger_router(store: AggregateStore, *, settings: Settings | None = None) -> NatsRouter:
    """A router whose one subscriber applies ledger events to a store, and dead-letters bad ones.

    It is a pull consumer on the shared durable, so any number of replicas split the stream.
    A message is acked only after the store took it; a Redis failure redelivers it later.
    """
    settings = settings or Settings()
    router = NatsRouter()
    splits = SplitStore(store.redis)  # savings by lever from each event's split

    coalescer = EventCoalescer(BatchApplier(store))

    async def apply(event: LedgerEvent, msg: NatsMessage) -> None:
        """Apply one ledger event to the aggregates (with the others handled meanwhile, in
        one call), once per event id, then settle its budgets."""
        _check_subject(event, msg.raw_message.subject)
        applied = await coalescer.apply(event)
        await store.settle_applied([event], [applied is Applied.NEW])
        await splits.apply(event)

    on_ledger_event = redis_applier(
        LedgerEvent,
        apply,
        retry_delay_s=RETRY_DELAY_S,
        dead_letter=dead_letter_publisher(router, DLQ_SOURCE),
    )

    durable_consumer(
        router,
        on_ledger_event,
        subject=subjects.LEDGER_ALL,
        stream=subjects.STREAM_LEDGER,
        durable=subjects.DURABLE_LEDGER,
        settings=settings,
        workers=FETCH_BATCH,
        title="ledger-events",
    )
    return router


def _check_subject(event: LedgerEvent, subject: str) -> None:
    """Check that an event came on its own tenant's subject; raises WireError."""
    try:
        own = subjects.is_ledger_of(subject, event.tenant)
    except ValueError as exc:
        raise WireError(ErrorCode.MALFORMED, f"LedgerEvent has a bad tenant: {exc}") from None
    # One tenant must not be able to book spend on another's account.
    if not own:
        raise WireError(
            ErrorCode.MALFORMED,
            f"LedgerEvent of tenant {event.tenant!r} was published on {subject}",
        )
