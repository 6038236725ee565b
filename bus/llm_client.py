"""How an agent asks for an LLM call: publish on the request subject, wait for the one result."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import nats.errors
from faststream.nats import NatsBroker
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from bus import subjects
from bus.codec import decode, encode
from bus.errors import WireError
from bus.messages import ErrorCode, LlmRequest, LlmResult, error_result
from bus.messages.base import now_ms
from bus.publishing import publish, scoped_msg_id
from bus.streams import DUPLICATE_WINDOW_S

POLL_S = 5.0
"""How often a waiting requester also looks for its result in the results stream."""
SAME_AS_STORED_S = 1.0
"""How long a duplicate ack's check of the stored request may wait for NATS."""
FRESH_MS = int(DUPLICATE_WINDOW_S * 1000 / 2)
"""A request created this recently (by its created_ms) was, if ever, published within the
requests stream's duplicate window, so a second publish of it is acked as a duplicate: its
stored result is looked up only then. An older one is looked up before it is published."""


class LlmClient:
    """Sends LlmRequests through JetStream and returns their results; never calls a provider."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def request(self, request: LlmRequest, timeout_s: float) -> LlmResult:
        """The terminal result of request; a stored one if this request id was answered before.

        Subscribing before publishing means the result cannot slip past; a requester that
        restarted finds a finished result in the results stream instead of asking again: a
        fresh request's (FRESH_MS) once its publish is acked as a duplicate, an older one's
        before it is published (past the duplicate window a publish would be a new request).
        """
        nc = self._broker.connection
        subject = subjects.llm_result(request.tenant, request.agent, request.id)
        fresh = 0 <= now_ms() - request.created_ms < FRESH_MS
        if not fresh:
            stored = await self._stored(subject)
            if stored is not None:
                return stored
        sub = await nc.subscribe(subject)
        try:
            data = encode(request)
            ack = await publish(
                self._broker,
                data,
                subjects.llm_request(request.tenant, request.agent),
                stream=subjects.STREAM_REQUESTS,
                msg_id=scoped_msg_id(request.tenant, request.agent, request.id),
            )
            if ack is not None and ack.duplicate:
                stored = await self._stored(subject) if fresh else None  # subscribed: none lost
                if stored is not None:
                    return stored
                if not await self.same_as_stored(ack.seq, data):
                    return error_result(
                        request.id, request.tenant, request.agent, ErrorCode.MALFORMED,
                        f"request id {request.id!r} was just used for another request; "
                        "choose a unique id (a UUID)",
                    )  # fmt: skip
            return await self._wait(sub, request, subject, timeout_s)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _wait(
        self, sub: Subscription, request: LlmRequest, subject: str, timeout_s: float
    ) -> LlmResult:
        """The result from sub; every POLL_S also from the results stream, since a result
        published while this connection was away (a NATS node lost, a reconnect) never
        reaches a core subscription, but the stream keeps it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=min(POLL_S, remaining))
                return decode(msg.data, LlmResult)
            except nats.errors.TimeoutError:
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    late = await self._stored(subject)
                    if late is not None:
                        return late
        return error_result(
            request.id,
            request.tenant,
            request.agent,
            ErrorCode.DEADLINE_EXCEEDED,
            f"no result within {timeout_s:.1f}s",
        )

    async def same_as_stored(self, seq: int | None, data: bytes) -> bool:
        """Whether the stored message a duplicate ack points at is this very request (a true
        retry of our own publish); True when it is gone, since it cannot be told apart."""
        if seq is None:
            return True
        try:
            stored = await self._broker.connection.jetstream(timeout=SAME_AS_STORED_S).get_msg(
                subjects.STREAM_REQUESTS, seq, direct=True
            )
        except NotFoundError:
            return True
        except (nats.errors.Error, TimeoutError):
            # Not allowed to read the requests stream (an agent's NATS user may read only its
            # results: a direct get by sequence cannot be held to one tenant), or NATS away:
            # it cannot be told apart either (seen in CI: a 5 s timeout raised out of request)
            return True
        return stored.data == data or same_request(stored.data or b"", data)

    async def _stored(self, subject: str) -> LlmResult | None:
        js = self._broker.connection.jetstream()
        try:
            raw = await js.get_last_msg(subjects.STREAM_RESULTS, subject, direct=True)
        except NotFoundError:
            return None
        return decode(raw.data, LlmResult) if raw.data else None


def same_request(stored: bytes, sent: bytes) -> bool:
    """Whether two encoded requests ask the same thing, when and until when aside: a retry
    rebuilds its request (an HTTP call with the same Idempotency-Key gets a new deadline, a
    resumed workflow a new created_ms), and was refused as a reused id while the first call
    was still running (found by review: two identical /v1 calls sent together)."""
    try:
        a, b = (decode(raw, LlmRequest) for raw in (stored, sent))
    except WireError:
        return False
    timeless = {"created_ms": 0, "deadline_ms": 0}
    return msgspec.structs.replace(a, **timeless) == msgspec.structs.replace(b, **timeless)
