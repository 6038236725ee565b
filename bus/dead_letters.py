"""Dead letters for messages consumed with nats-py directly (bus.pull_loop): a message that
can never be processed is kept on dlq.<source>, with its error code and reason, once per
stream message, as bus.consumers.dead_letter_publisher does for FastStream's consumers."""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bus import subjects
from bus.codec import encode
from bus.messages import DeadLetter, ErrorCode


class DeadLetters:
    """Publishes the dead letters of one source (a service) to the DLQ stream."""

    def __init__(self, js: JetStreamContext, source: str) -> None:
        self._js = js
        self._source = source
        self._subject = subjects.dead_letter(source)

    async def keep(self, msg: Msg, code: ErrorCode, reason: str) -> None:
        """Keep msg on the dead-letter queue; raises when NATS did not take it."""
        letter = DeadLetter.of(
            msg.subject,
            code,
            reason,
            msg.data,
            {k: v for k, v in (msg.headers or {}).items() if isinstance(v, str)},
        )
        # The stream sequence as message id: a redelivery is not dead-lettered twice.
        seq = msg.metadata.sequence.stream
        await self._js.publish(
            self._subject,
            encode(letter),
            stream=subjects.STREAM_DLQ,
            headers={"Nats-Msg-Id": f"{self._source}-{seq}"},
        )
