"""Publishing into a JetStream stream, the one way everyone does it: deduplicated, patient."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker
from nats.js.api import PubAck

from bus.subjects import token

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
    headers = {MSG_ID: msg_id} if msg_id is not None else None
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + ACK_TIMEOUT_S
    pause = RETRY_FIRST_S
    while True:
        try:
            ack: PubAck | None = await broker.publish(
                data, subject, headers=headers, stream=stream, timeout=ACK_TIMEOUT_S
            )
            return ack
        except LEADERLESS:
            # The same msg_id makes a retry safe: a stored first try acks as a duplicate.
            if loop.time() + pause > give_up_at:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_S)
