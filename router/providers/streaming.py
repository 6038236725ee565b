"""A provider call made with stream=True, its text relayed to the requester as it arrives.

The dispatcher asks for a stream only when the request does (LlmRequest.stream) and sends no
tools. The body asks for stream_options.include_usage, so the provider's last chunk carries
the usage of the whole answer, and the cost is settled from it exactly as for a whole answer.
A stream that ends without usage is booked at its bound (the estimated input and the full
max output), never at zero. Each content delta goes to a ChunkRelay, which publishes it on
core NATS (llm.stream.<tenant>.<agent>.<id>); the terminal result is unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from typing import Any, Protocol

import nats.errors
from faststream.nats import NatsBroker
from openai.types.chat import ChatCompletionChunk

from bus import subjects
from bus.codec import encode
from bus.messages import LlmRequest, LlmStreamChunk, Usage
from router.providers.messages import openai_messages
from router.providers.stream_usage import StreamSummary, add_chunk
from router.providers.usage import implausible
from router.tokens import count_messages_tokens, count_text_tokens

log = logging.getLogger(__name__)


class Relay(Protocol):
    """Where a streamed call's text pieces go as they arrive."""

    def begin(self) -> None:
        """A new provider call starts (a retry or a fallback): its pieces count from 0."""

    async def send(self, text: str, model: str) -> None:
        """Relay one piece of text."""


class ChunkRelay:
    """Publishes a request's text pieces on its llm.stream subject (core NATS, best effort)."""

    def __init__(self, broker: NatsBroker, request: LlmRequest) -> None:
        self._broker = broker
        self._request_id = request.id
        self._subject = subjects.llm_stream(request.tenant, request.agent, request.id)
        self._call = 0
        self._seq = 0

    def begin(self) -> None:
        """A new provider call starts: a fresh call id (unique across retries, fallbacks and
        replicas), its pieces counting from 0."""
        self._call = secrets.randbits(48)
        self._seq = 0

    async def send(self, text: str, model: str) -> None:
        """Publish one piece; a bus failure loses only the piece (the result carries it)."""
        chunk = LlmStreamChunk(
            request_id=self._request_id, call=self._call, seq=self._seq, content=text, model=model
        )
        self._seq += 1
        with contextlib.suppress(nats.errors.Error):
            await self._broker.connection.publish(self._subject, encode(chunk))


class ChunkRelays:
    """Makes the relay of each streamed request, on one broker."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    def for_request(self, request: LlmRequest) -> Relay | None:
        """The request's relay, or None when it is not to be streamed."""
        return ChunkRelay(self._broker, request) if request.stream else None


def stream_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body of a streamed call: stream=True with the usage asked for at the end."""
    return body | {"stream": True, "stream_options": {"include_usage": True}}


async def relay_chunks(
    chunks: Any, relay: Relay, *, fallback_usage: Usage
) -> tuple[StreamSummary, Usage]:
    """Read an openai AsyncStream of ChatCompletionChunk, relaying each content delta; the
    assembled answer and the usage to price (the provider's, else fallback_usage)."""
    relay.begin()
    out = StreamSummary()
    async for chunk in chunks:
        assert isinstance(chunk, ChatCompletionChunk)
        added = add_chunk(out, chunk.model_dump(mode="json"))
        if added:
            await relay.send(added, out.model)
    if out.usage is None:
        return out, fallback_usage
    return out, plausible_or_bound(out.usage, fallback_usage)


def plausible_or_bound(usage: Usage, bound: LlmRequest | Usage) -> Usage:
    """usage, unless no call can have billed it (router.providers.usage.implausible): then
    the call's bound (a request's bound_usage, or a bound already taken), with a warning."""
    problem = implausible(usage)
    if problem is None:
        return usage
    log.warning("provider reported an impossible usage (%s): booked at the call's bound", problem)
    return bound if isinstance(bound, Usage) else bound_usage(bound)


def bound_usage(request: LlmRequest) -> Usage:
    """The most a call can have billed: the estimated input and the whole max output."""
    tokens = count_messages_tokens(openai_messages(request.messages))
    if request.output_schema is not None:
        tokens += count_text_tokens(json.dumps(request.output_schema.schema))
    return Usage(input_tokens=tokens, output_tokens=request.max_output_tokens)
