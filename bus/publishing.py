"""Publishing into a JetStream stream, the one way everyone does it: deduplicated, patient."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker
from nats.js.api import PubAck
from opentelemetry import propagate, trace

from bus.subjects import token
from bus.tracing import samples_roots

MSG_ID = "Nats-Msg-Id"
ACK_TIMEOUT_S = 30.0
"""How long a publish waits for the stream's ack. A busy server can take seconds; giving up
sooner fails the handler, which JetStream then redelivers: more load, not less."""
LEADERLESS = (
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
)
"""What a publish meets while a stream elects a new leader (a NATS node lost) or the
connection moves to another node: worth trying again shortly under the same message id."""
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0


_TRACERS: weakref.WeakKeyDictionary[NatsBroker, trace.Tracer] = weakref.WeakKeyDictionary()


def trace_publishes(broker: NatsBroker, provider: trace.TracerProvider | None) -> None:
    """Let publish() start a trace for what broker publishes outside any trace (a request
    sent from a CLI or a test), as FastStream's producer spans did (bus.broker does this)."""
    _TRACERS[broker] = (provider or trace.get_tracer_provider()).get_tracer(__name__)


@contextlib.contextmanager
def _traced(broker: NatsBroker, subject: str, headers: dict[str, str]) -> Iterator[None]:
    """Carry the current trace in headers; with none, a "<subject> publish" producer span
    starts one where the broker's tracer may record it (none where it exports nowhere)."""
    if not trace.get_current_span().get_span_context().is_valid:
        tracer = _TRACERS.get(broker)
        if tracer is not None and samples_roots(tracer):
            kind = trace.SpanKind.PRODUCER
            with tracer.start_as_current_span(f"{subject} publish", kind=kind):
                propagate.inject(headers)
                yield
            return
    propagate.inject(headers)
    yield


def scoped_msg_id(tenant: str, *parts: str) -> str:
    """A message id scoped by tenant: JetStream deduplicates ids across a whole stream, so an
    id another tenant chose must never make this tenant's message a duplicate."""
    return ".".join((token(tenant), *parts))


async def publish(
    broker: NatsBroker, data: bytes, subject: str, *, stream: str, msg_id: str | None
) -> PubAck | None:
    """Store data on subject in stream, once per msg_id (within the duplicate window); the
    stream's ack says whether it was a duplicate. A stream without a leader for a moment
    (LEADERLESS) is tried again, for up to ACK_TIMEOUT_S, before the error is raised.
    msg_id None: no deduplication (a retry may then store the message twice)."""
    headers = {MSG_ID: msg_id} if msg_id is not None else {}
    with _traced(broker, subject, headers):
        return await _published(broker, data, subject, stream, headers)


async def _published(
    broker: NatsBroker, data: bytes, subject: str, stream: str, headers: dict[str, str]
) -> PubAck:
    # nats-py's JetStream publish itself: FastStream's publish path (a producer span and its
    # middleware on every message) cost more than the publish, two per request on the
    # router's hot path.
    js = broker.connection.jetstream()
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + ACK_TIMEOUT_S
    pause = RETRY_FIRST_S
    while True:
        try:
            return await js.publish(
                subject, data, timeout=ACK_TIMEOUT_S, stream=stream, headers=headers or None
            )
        except LEADERLESS:
            # The same msg_id makes a retry safe: a stored first try acks as a duplicate.
            if loop.time() + pause > give_up_at:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_S)
