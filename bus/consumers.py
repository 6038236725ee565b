"""The one way services consume a JetStream stream: a durable pull consumer shared by replicas.

Handlers receive the FastStream message itself (see ``Incoming``), not context-injected
parameters: fast_depends resolves each context parameter in a worker thread, which cost
several thread hops per message on the hot path.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

import msgspec
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.message import NatsMessage
from nats.js.api import ConsumerConfig
from redis import exceptions as redis_errors

from bus import subjects
from bus.codec import decode, encode
from bus.errors import WireError
from bus.heartbeat import beating
from bus.messages import DeadLetter, ErrorCode
from bus.metrics import count_messages
from bus.settings import Settings
from bus.stopping import Stopped

Incoming = Any
"""What a durable handler's one parameter receives: the NatsMessage. Typed Any on purpose,
so that the serializer passes it through uncast; read it with ``message(incoming)``."""
Handler = Callable[[Incoming], Awaitable[None]]
DeadLetterFn = Callable[[NatsMessage, ErrorCode, str], Awaitable[None]]
"""Keeps a message that can never be processed, with its error code and reason."""
T = TypeVar("T", bound=msgspec.Struct)
log = logging.getLogger(__name__)


REDELIVERY_FIRST_S = 0.5
REDELIVERY_MAX_S = 8.0
"""A message whose handler raised is redelivered after 0.5 s, then 1, 2, 4 and 8 s at most:
with max_deliver 10, about 45 s of failover (a NATS stream electing a leader, a Redis primary
restarting or promoted, budget counters rebuilt) before its last delivery."""


def redelivery_delay_s(delivery: int) -> float:
    """How long JetStream waits before delivering a message again after its delivery-th try
    raised (doubling, capped)."""
    return min(REDELIVERY_FIRST_S * (1 << min(max(delivery, 1) - 1, 16)), REDELIVERY_MAX_S)


def delivery_count(incoming: Incoming) -> int:
    """How many times JetStream has delivered this message, this time included."""
    return message(incoming).raw_message.metadata.num_delivered or 1


def message(incoming: Incoming) -> NatsMessage:
    """The NatsMessage a durable handler received."""
    return cast(NatsMessage, incoming)


async def _whole_message(msg: StreamMessage[Any]) -> Any:
    return msg


def consumer_limits(settings: Settings, workers: int) -> ConsumerConfig:
    """A durable's redelivery and flow limits, the same for every consumer of the project."""
    return ConsumerConfig(
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=max(workers * 4, 64),
    )


def durable_consumer(
    router: NatsRouter,
    handler: Handler,
    *,
    subject: str,
    stream: str,
    durable: str,
    settings: Settings,
    workers: int = 1,
    **options: Any,
) -> None:
    """Subscribe handler to subject on a durable pull consumer that every replica shares.

    A message is acked once the handler returns; if the handler raises (NATS or Redis was
    unreachable), it is nacked and redelivered after redelivery_delay_s, never at once: an
    immediate redelivery would spend max_deliver within a failover's first second.
    """
    router.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        config=consumer_limits(settings, workers),
        # One message per fetch: a fetched message waits for a free worker without
        # in-progress acks (one that waits past ack_wait is redelivered to another replica),
        # and an idle fetch of more than one raises asyncio's TimeoutError, which FastStream
        # 0.7 does not expect (it catches nats-py's): its supervisor logged a traceback and
        # restarted the consumer's task every idle second.
        pull_sub=PullSub(batch_size=1, timeout=1.0),
        max_workers=workers,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_whole_message,
        **options,
    )(count_messages(durable, _patient(durable, handler)))  # ..._processed_total{durable}


def _patient(durable: str, handler: Handler) -> Handler:
    """handler, turning what it raises into a nack with a growing delay and one log line."""

    @functools.wraps(handler)  # FastStream's AsyncAPI document reads the handler's docstring
    async def patient(incoming: Incoming) -> None:
        try:
            await handler(incoming)
        except NackMessage:
            raise
        except Stopped as exc:  # a stop, not a failure: handed back without a word
            raise NackMessage(delay=REDELIVERY_MAX_S) from exc
        except Exception as exc:
            delivery = delivery_count(incoming)
            delay = redelivery_delay_s(delivery)
            log.warning(
                "%s: delivery %d of a message on %s failed, redelivered in %.1fs: %s: %s",
                durable, delivery, message(incoming).raw_message.subject, delay,
                type(exc).__name__, exc,
            )  # fmt: skip
            raise NackMessage(delay=delay) from exc

    return patient


class InProgress(Protocol):
    """A JetStream message that can be told "still working" (FastStream's or nats-py's)."""

    async def in_progress(self) -> None:
        """Send an in-progress ack."""


@contextlib.asynccontextmanager
async def working(msg: InProgress, every_s: float) -> AsyncIterator[None]:
    """Send in-progress acks while a message is worked on, so that JetStream redelivers it
    to another replica only when this one died."""

    async with beating(every_s, msg.in_progress):  # one task per process beats them all
        yield


_TRANSIENT_RESPONSES = (
    redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError,
    redis_errors.NoPermissionError,
    redis_errors.ExecAbortError,
    redis_errors.AskError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
)
_TRANSIENT_PREFIXES = ("BUSY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN")


def is_permanent(exc: BaseException) -> bool:
    """Whether redelivering the message that raised exc can never succeed: a bad value in it
    (ValueError, WireError) or a Redis reply error about the data (overflow, wrong type).
    Redis being down, read-only, out of memory or busy is transient."""
    if isinstance(exc, WireError | ValueError):
        return True
    if isinstance(exc, redis_errors.ResponseError):
        if isinstance(exc, _TRANSIENT_RESPONSES):
            return False
        return not str(exc).upper().startswith(_TRANSIENT_PREFIXES)
    return False


def dead_letter_publisher(router: NatsRouter, source: str) -> DeadLetterFn:
    """Publishes a message's dead letter on dlq.<source>, once per stream message."""
    publisher = router.publisher(
        subjects.dead_letter(source), stream=JStream(name=subjects.STREAM_DLQ, declare=False)
    )

    async def dead_letter(msg: NatsMessage, code: ErrorCode, reason: str) -> None:
        letter = DeadLetter.of(
            msg.raw_message.subject,
            code,
            reason,
            msg.body,
            {k: v for k, v in msg.headers.items() if isinstance(v, str)},
        )
        # The stream sequence as message id: a redelivery is not dead-lettered twice.
        seq = msg.raw_message.metadata.sequence.stream
        await publisher.publish(encode(letter), headers={"Nats-Msg-Id": f"{source}-{seq}"})

    return dead_letter


def redis_applier(
    decode_type: type[T],
    apply: Callable[[T, NatsMessage], Awaitable[object]],
    *,
    retry_delay_s: float,
    dead_letter: DeadLetterFn | None = None,
    dead_letter_undecodable: bool = True,
) -> Handler:
    """A durable handler that decodes a message and applies it to Redis.

    A message that can never be applied (undecodable, a bad value, a Redis reply error about
    its data) is dead-lettered when dead_letter is given (undecodable ones only if
    dead_letter_undecodable: another consumer of the stream may keep those), else logged and
    skipped; either way it is acked. Redis being unreachable nacks it for redelivery after
    retry_delay_s, so nothing is lost.
    """

    async def handler(incoming: Incoming) -> None:
        msg = message(incoming)
        try:
            item = decode(msg.body, decode_type)
        except WireError as exc:
            await _give_up(msg, exc, exc.code, dead_letter if dead_letter_undecodable else None)
            return
        try:
            await apply(item, msg)
        except (WireError, ValueError, redis_errors.RedisError) as exc:
            if not is_permanent(exc):
                log.warning("%s not applied, retrying: %s", decode_type.__name__, exc)
                raise NackMessage(delay=retry_delay_s) from exc
            code = exc.code if isinstance(exc, WireError) else ErrorCode.MALFORMED
            await _give_up(msg, exc, code, dead_letter)

    return handler


async def _give_up(
    msg: NatsMessage, exc: Exception, code: ErrorCode, dead_letter: DeadLetterFn | None
) -> None:
    reason = exc.reason if isinstance(exc, WireError) else f"{type(exc).__name__}: {exc}"
    subject = msg.raw_message.subject
    if dead_letter is None:
        log.warning("skipped a message on %s for good: %s", subject, reason)
        return
    log.warning("message on %s to the dead-letter queue: %s", subject, reason)
    await dead_letter(msg, code, reason)
