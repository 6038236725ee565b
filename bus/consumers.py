"""The one way services consume a JetStream stream: a durable pull consumer shared by replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from nats.js.api import ConsumerConfig

from bus.settings import Settings

Handler = Callable[..., Awaitable[None]]


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
        pull_sub=PullSub(batch_size=min(max(workers, 1), 64), timeout=1.0),
        max_workers=workers,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **options,
    )(handler)
