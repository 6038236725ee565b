"""Publishing into a JetStream stream, the one way everyone does it: deduplicated, patient."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js.api import PubAck

from bus.subjects import token

MSG_ID = "Nats-Msg-Id"
ACK_TIMEOUT_S = 30.0
"""How long a publish waits for the stream's ack. A busy server can take seconds; giving up
sooner fails the handler, which JetStream then redelivers: more load, not less."""


def scoped_msg_id(tenant: str, *parts: str) -> str:
    """A message id scoped by tenant: JetStream deduplicates ids across a whole stream, so an
    id another tenant chose must never make this tenant's message a duplicate."""
    return ".".join((token(tenant), *parts))


async def publish(
    broker: NatsBroker, data: bytes, subject: str, *, stream: str, msg_id: str
) -> PubAck | None:
    """Store data on subject in stream, once per msg_id (within the duplicate window); the
    stream's ack says whether it was a duplicate."""
    ack: PubAck | None = await broker.publish(
        data, subject, headers={MSG_ID: msg_id}, stream=stream, timeout=ACK_TIMEOUT_S
    )
    return ack
