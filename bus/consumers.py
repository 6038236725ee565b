"""The one way services consume a JetStream stream: a durable pull consumer shared by replicas.

Handlers receive the FastStream message itself (see ``Incoming``), not context-injected
parameters: fast_depends resolves each context parameter in a worker thread, which cost
several thread hops per message on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.message import NatsMessage
from nats.js.api import ConsumerConfig

from bus.metrics import count_messages
from bus.settings import Settings

Incoming = Any
"""What a durable handler's one parameter receives: the NatsMessage. Typed Any on purpose,
so that the serializer passes it through uncast; read it with ``message(incoming)``."""
Handler = Callable[[Incoming], Awaitable[None]]


def message(incoming: Incoming) -> NatsMessage:
    """The NatsMessage a durable handler received."""
    return cast(NatsMessage, incoming)


async def _whole_message(msg: StreamMessage[Any]) -> Any:
    return msg


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
    unreachable), it is nacked and redelivered, never dropped.
    """
    router.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        config=ConsumerConfig(
            ack_wait=settings.ack_wait_s,
            max_deliver=settings.max_deliver,
            max_ack_pending=max(workers * 4, 64),
        ),
        # Small fetches: a fetched message waits for a free worker without in-progress acks,
        # and one that waits past ack_wait is redelivered to another replica.
        pull_sub=PullSub(batch_size=min(max(workers, 1), 8), timeout=1.0),
        max_workers=workers,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_whole_message,
        **options,
    )(count_messages(durable, handler))  # flipsync_messages_processed_total{durable}


@contextlib.asynccontextmanager
async def working(msg: NatsMessage, every_s: float) -> AsyncIterator[None]:
    """Send in-progress acks while a message is worked on, so that JetStream redelivers it
    to another replica only when this one died."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
