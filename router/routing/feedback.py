"""The quality consumer: folds quality signals and explicit feedback into the shared counts.

Two kinds of message arrive on quality.> (WORKFLOW stream), both bus.messages.QualitySignal:

- quality.<tenant>: an agent's verdict on one answer (schema and validators). It counts
  for the model that produced the answer, as a validator signal, only when that answer was
  paid for on this request (routed, escalated, packed or batch): a cache hit or a dedup
  waiter repeats an answer already counted.
- quality.feedback.<tenant>: explicit feedback (a person, a review, a returns report) on
  one answer; it weighs more (SignalWeights.feedback) and counts whatever served it.

Each message is counted once (router.routing.quality_store dedups by signal id). A message
that cannot be decoded goes to the dead-letter queue; a Redis failure redelivers it.
"""

from __future__ import annotations

import logging

from faststream.exceptions import NackMessage
from faststream.nats import JStream, NatsRouter
from nats.js import JetStreamContext
from redis.exceptions import RedisError

from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, durable_consumer, message
from bus.errors import WireError
from bus.messages import DeadLetter, Lever
from bus.messages import QualitySignal as SignalMessage
from bus.settings import Settings
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore

DLQ_SOURCE = "quality"
RETRY_DELAY_S = 1.0
WORKERS = 16
PAID = frozenset({Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API})
"""Levers of answers a model produced for this very request."""

log = logging.getLogger(__name__)


def is_feedback(subject: str) -> bool:
    """Whether a quality.> subject is the explicit-feedback one."""
    parts = subject.split(".")
    return len(parts) == 3 and parts[1] == "feedback"


def signal_of(message: SignalMessage, *, feedback: bool) -> QualitySignal | None:
    """The routing signal of a message, or None when it says nothing about a model."""
    if not message.model or not message.task_type:
        return None
    if not feedback and message.lever not in PAID:
        return None
    return QualitySignal(
        model=message.model,
        task_type=message.task_type,
        kind=SignalKind.FEEDBACK if feedback else SignalKind.VALIDATOR,
        good=message.valid,
    )


async def fold(
    store: QualityStore, message: SignalMessage, *, feedback: bool, sequence: int
) -> bool:
    """Count one message in the store; True when it was counted now (not before, not skipped).

    An agent's verdict is counted once per request id; feedback once per stream message."""
    signal = signal_of(message, feedback=feedback)
    if signal is None:
        return False
    signal_id = f"feedback-{sequence}" if feedback else f"agent-{message.request_id}"
    return await store.record(signal, signal_id)


async def publish_feedback(js: JetStreamContext, signal: SignalMessage) -> None:
    """Publish explicit feedback on one answer (valid False: it was bad) for routing to learn."""
    await js.publish(
        subjects.quality_feedback(signal.tenant), encode(signal), stream=subjects.STREAM_WORKFLOW
    )


def quality_router(store: QualityStore, *, settings: Settings) -> NatsRouter:
    """A router whose one durable subscriber folds quality.> into the store."""
    router = NatsRouter()
    dead_letters = router.publisher(
        subjects.dead_letter(DLQ_SOURCE),
        stream=JStream(name=subjects.STREAM_DLQ, declare=False),
    )

    async def on_signal(incoming: Incoming) -> None:
        """Fold one quality signal or feedback message."""
        msg = message(incoming)
        body: bytes = msg.body
        subject = msg.raw_message.subject
        sequence = msg.raw_message.metadata.sequence.stream
        try:
            signal = decode(body, SignalMessage)
        except WireError as exc:
            log.warning("quality message to the dead-letter queue: %s", exc)
            letter = DeadLetter(
                source_subject=subject, error_code=exc.code, reason=exc.reason, payload=body
            )
            await dead_letters.publish(
                encode(letter), headers={"Nats-Msg-Id": f"{DLQ_SOURCE}-{sequence}"}
            )
            return
        try:
            await fold(store, signal, feedback=is_feedback(subject), sequence=sequence)
        except RedisError as exc:
            log.warning("quality signal %s not folded, retrying: %s", signal.request_id, exc)
            raise NackMessage(delay=RETRY_DELAY_S) from exc

    durable_consumer(
        router,
        on_signal,
        subject=subjects.QUALITY_ALL,
        stream=subjects.STREAM_WORKFLOW,
        durable=subjects.DURABLE_QUALITY,
        settings=settings,
        workers=WORKERS,
        title="quality-signals",
    )
    return router
