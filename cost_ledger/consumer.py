"""The ledger consumer: every LedgerEvent on the LEDGER stream, applied once to the aggregates."""

from __future__ import annotations

import logging

from faststream.exceptions import NackMessage
from faststream.nats import JStream, NatsRouter
from redis.exceptions import RedisError

from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, durable_consumer, message
from bus.errors import WireError
from bus.messages import DeadLetter, ErrorCode, LedgerEvent
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore

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
    dead_letters = router.publisher(
        subjects.dead_letter(DLQ_SOURCE),
        stream=JStream(name=subjects.STREAM_DLQ, declare=False),
    )

    async def on_ledger_event(incoming: Incoming) -> None:
        """Apply one ledger event to the aggregates, once per event id."""
        msg = message(incoming)
        body: bytes = msg.body
        try:
            event = _read(body, msg.raw_message.subject)
        except WireError as exc:
            log.warning("ledger event to the dead-letter queue: %s", exc)
            letter = DeadLetter(
                source_subject=msg.raw_message.subject,
                error_code=exc.code,
                reason=exc.reason,
                payload=body,
                headers={k: v for k, v in msg.headers.items() if isinstance(v, str)},
            )
            # The stream sequence as message id: a redelivery is not dead-lettered twice.
            seq = msg.raw_message.metadata.sequence.stream
            await dead_letters.publish(
                encode(letter), headers={"Nats-Msg-Id": f"{DLQ_SOURCE}-{seq}"}
            )
            return
        try:
            await store.apply(event)
        except RedisError as exc:
            log.warning("ledger event %s not applied, retrying: %s", event.event_id, exc)
            raise NackMessage(delay=RETRY_DELAY_S) from exc

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


def _read(body: bytes, subject: str) -> LedgerEvent:
    """Decode an event, and check that it came on its own tenant's subject; raises WireError."""
    event = decode(body, LedgerEvent)
    try:
        own_subject = subjects.ledger(event.tenant)
    except ValueError as exc:
        raise WireError(ErrorCode.MALFORMED, f"LedgerEvent has a bad tenant: {exc}") from None
    # One tenant must not be able to book spend on another's account.
    if subject != own_subject:
        raise WireError(
            ErrorCode.MALFORMED,
            f"LedgerEvent of tenant {event.tenant!r} was published on {subject}",
        )
    return event
