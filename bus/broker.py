"""The one way FlipSync services get a NATS broker: FastStream, msgspec, trace propagation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker, NatsRouter
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry.trace import TracerProvider


def make_broker(
    url: str,
    *,
    routers: Sequence[NatsRouter] = (),
    tracer_provider: TracerProvider | None = None,
    client_name: str = "flipsync",
    log_level: int = logging.DEBUG,
    **connect_options: Any,
) -> NatsBroker:
    """A NatsBroker that (de)serializes with msgspec and carries W3C trace context in headers.

    log_level is the level FastStream logs each message at: DEBUG keeps a busy service quiet.
    """
    broker = NatsBroker(
        url,
        name=client_name,
        serializer=MsgSpecSerializer(),
        middlewares=(NatsTelemetryMiddleware(tracer_provider=tracer_provider),),
        log_level=log_level,
        max_reconnect_attempts=-1,
        **connect_options,
    )
    for router in routers:
        broker.include_router(router)
    return broker
