"""Publishing into a JetStream stream, the one way everyone does it: deduplicated, patient."""

from __future__ import annotations

from faststream.nats import NatsBroker

MSG_ID = "Nats-Msg-Id"
ACK_TIMEOUT_S = 30.0
"""How long a publish waits for the stream's ack. A busy server can take seconds; giving up
sooner fails the handler, which JetStream then redelivers: more load, not less."""


async def publish(
    broker: NatsBroker, data: bytes, subject: str, *, stream: str, msg_id: str
) -> None:
    """Store data on subject in stream, once per msg_id (within the duplicate window)."""
    await broker.publish(
        data, subject, headers={MSG_ID: msg_id}, stream=stream, timeout=ACK_TIMEOUT_S
    )
