"""The one way FlipSync services get a NATS broker: FastStream, msgspec, trace propagation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import nats.errors
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker, NatsRouter
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry.trace import TracerProvider

from bus.logs import BROKER_LOGGER
from bus.publishing import trace_publishes


def server_list(url: str) -> list[str]:
    """The servers of a NATS_URL: "nats://a:4222,nats://b:4222" names every node of a cluster,
    so a client that starts while one is down still connects (nats-py wants a list)."""
    return [part.strip() for part in url.split(",") if part.strip()]


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
    Its records go to the flipsync.broker logger, which bus.logs configures (-v shows them).
    """
    broker = NatsBroker(
        server_list(url),
        name=client_name,
        serializer=MsgSpecSerializer(),
        middlewares=(NatsTelemetryMiddleware(tracer_provider=tracer_provider),),
        log_level=log_level,
        logger=logging.getLogger(BROKER_LOGGER),
        max_reconnect_attempts=-1,
        **connect_options,
    )
    for router in routers:
        broker.include_router(router)
    trace_publishes(broker, tracer_provider)
    return broker


async def stop_broker(broker: NatsBroker) -> None:
    """Stop the broker; when its stop fails, close its connection instead: the stop drains
    first, and nats-py refuses to drain a connection that is reconnecting (its server gone);
    a subscriber that fails to stop makes FastStream raise a group of errors."""
    try:
        await broker.stop()
    except (nats.errors.Error, ExceptionGroup):
        await broker.connection.close()  # still there: the failed stop did not let it go
