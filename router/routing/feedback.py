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
from collections.abc import Awaitable, Callable

from faststream.nats import NatsRouter
from faststream.nats.message import NatsMessage
from nats.js import JetStreamContext

from bus import subjects
from bus.codec import encode
from bus.consumers import dead_letter_publisher, durable_consumer, redis_applier
from bus.messages import Lever
from bus.messages import QualitySignal as SignalMessage
from bus.settings import Settings
from router.routing.grades import GradeStore
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
    store: QualityStore,
    message: SignalMessage,
    *,
    feedback: bool,
    sequence: int,
    grades: GradeStore | None = None,
) -> bool:
    """Count one message in the store; True when it was counted now (not before, not skipped).

    An agent's verdict is counted once per request id; feedback once per stream message.
    A verdict counted now is also graded (router.routing.grades); the grade that takes an
    agent's running average under its target publishes a GradeAlert, once per crossing.
    (Verdicts are filed by prompt on the replica that routed the request:
    router.routing.neighbour_share.)"""
    signal = signal_of(message, feedback=feedback)
    if signal is None:
        return False
    signal_id = f"feedback-{sequence}" if feedback else f"agent-{message.request_id}"
    counted = await store.record(signal, signal_id)
    if counted and grades is not None and not feedback:
        await grades.record(message)
    return counted


async def publish_feedback(js: JetStreamContext, signal: SignalMessage) -> None:
    """Publish explicit feedback on one answer (valid False: it was bad) for routing to learn."""
    await js.publish(
        subjects.quality_feedback(signal.tenant), encode(signal), stream=subjects.STREAM_WORKFLOW
    )


Verdicts = Callable[[SignalMessage, bool], Awaitable[object]]
"""Also told of every message (the message, whether it is feedback): the semantic cache's
verdicts on its served hits (router.semantic.verdicts)."""


def quality_router(
    store: QualityStore,
    *,
    settings: Settings,
    grades: GradeStore | None = None,
    verdicts: Verdicts | None = None,
) -> NatsRouter:
    """A router whose one durable subscriber folds quality.> into the store (and grades)."""
    router = NatsRouter()

    async def apply(signal: SignalMessage, msg: NatsMessage) -> None:
        """Fold one quality signal or feedback message."""
        subject, sequence = msg.raw_message.subject, msg.raw_message.metadata.sequence.stream
        feedback = is_feedback(subject)
        if verdicts is not None:  # before the fold: a redelivery finds the hit already taken
            await verdicts(signal, feedback)
        await fold(store, signal, feedback=feedback, sequence=sequence, grades=grades)

    on_signal = redis_applier(
        SignalMessage,
        apply,
        retry_delay_s=RETRY_DELAY_S,
        dead_letter=dead_letter_publisher(router, DLQ_SOURCE),
    )

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
