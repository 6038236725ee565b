"""What becomes of a pulled JetStream message: acked once handled, or nacked to be
redelivered after a delay (bus.pull_loop's messages, handed on by bus.handing_on)."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

log = logging.getLogger(__name__)

Verdict = float | None
"""What became of a message: None to ack it, a number of seconds to nack it and have it
redelivered after that long."""


def delivery_of(msg: Msg) -> int:
    """How many times JetStream has delivered msg, this time included."""
    return msg.metadata.num_delivered or 1


async def settle(msg: Msg, verdict: Verdict) -> None:
    """Ack msg, or nack it for redelivery after verdict seconds; a NATS failure here only
    means JetStream redelivers it after ack_wait (handlers are idempotent)."""
    try:
        if verdict is None:
            await msg.ack()
        elif verdict > 0:
            await msg.nak(delay=verdict)
        else:
            await msg.nak()  # at once
    except Exception as exc:
        log.warning("could not %s a message on %s: %s: %s", "ack" if verdict is None else
                    "nack", msg.subject, type(exc).__name__, exc)  # fmt: skip
