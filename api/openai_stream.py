"""A streamed /v1 answer written to the client as the provider generates it.

The endpoint subscribes to the request's llm.stream subject before it publishes the request.
If the terminal result comes first (a cache, the pattern responder, dedup, packing, an
error: no provider call streamed), the whole answer is written as chunks, as before. If a
text piece comes first, the response starts at once and each piece is written as it
arrives; when the terminal result is in, the rest is written from it: any text the pieces
missed, tool calls, the finish chunk with the provider's finish_reason, and the usage the
cost was settled from (the ledger's usage). The pieces travel on core NATS, best effort, so
the result stays the record: a gap in a call's pieces stops relaying, and the result's text
past what was written is sent instead. Should the written text not be the start of the result's
(a retry or fallback answered after a call had already streamed), the stream ends with an
OpenAI error event rather than a spliced answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats.errors
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from api.openai_errors import OpenAIError
from api.openai_response import (
    answer_model,
    answer_tail,
    chunk_event,
    completion_id,
    error_event,
)
from bus import subjects
from bus.codec import decode
from bus.errors import WireError
from bus.llm_client import LlmClient
from bus.messages import LlmRequest, LlmResult, LlmStreamChunk

SPLICED = "the answer was retried after part of it had been streamed; ask again"
"""The error a stream ends with when its written text is not the start of the result's."""
MAX_QUEUED_PIECES = 4096
"""Pieces kept for a client that reads slower than the provider writes. Past them a piece is
missed, as on core NATS: relaying stops and the result says the rest. Unbounded, a client
that read nothing kept every piece of its answer (20,802 of a 40,000-word answer, measured)."""


class Written:
    """The text a stream has written so far, from the pieces of one provider call in order."""

    def __init__(self) -> None:
        self.text = ""
        self._call: int | None = None
        self._next = 0
        self._relaying = True

    def take(self, piece: LlmStreamChunk) -> str:
        """The piece's text to write, or "" once a piece was missed or another call began
        (from then on the terminal result says the rest)."""
        if self._call is None:
            self._call = piece.call
        if not self._relaying or piece.call != self._call or piece.seq != self._next:
            self._relaying = False
            return ""
        self._next += 1
        self.text += piece.content
        return piece.content

    def rest(self, content: str) -> str | None:
        """What the result's content adds to the written text; None when the written text is
        not its start (a retried call had already streamed part of another answer)."""
        return content[len(self.text) :] if content.startswith(self.text) else None


class RelayedAnswer:
    """One streamed request: its text pieces as they arrive, then its terminal result."""

    def __init__(
        self, broker: NatsBroker, client: LlmClient, request: LlmRequest, timeout_s: float
    ) -> None:
        self._broker = broker
        self._client = client
        self._request = request
        self._timeout_s = timeout_s
        self._pieces: asyncio.Queue[LlmStreamChunk] = asyncio.Queue(MAX_QUEUED_PIECES)
        self._missed = False
        self._first: LlmStreamChunk | None = None
        self._result: asyncio.Task[LlmResult] | None = None
        self._sub: Subscription | None = None

    async def start(self) -> LlmResult | None:
        """Publish the request; its result when that came before any text piece (answer it
        whole), else None: the pieces are coming, write events()."""
        request = self._request
        subject = subjects.llm_stream(request.tenant, request.agent, request.id)
        self._sub = await self._broker.connection.subscribe(subject, cb=self._on_piece)
        self._result = asyncio.create_task(self._client.request(request, self._timeout_s))
        piece = asyncio.create_task(self._pieces.get())
        try:
            await asyncio.wait({self._result, piece}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self.close()
            raise
        finally:
            piece.cancel()
        if self._result.done() or not piece.done() or piece.cancelled():
            await self.close()
            return await self._result
        self._first = piece.result()
        return None

    async def events(self, created: int, *, include_usage: bool) -> AsyncIterator[bytes]:
        """The SSE events: a role chunk and each piece as it arrives, then the result's tail."""
        assert self._first is not None and self._result is not None
        first, result_task = self._first, self._result
        head = {
            "id": f"chatcmpl-{self._request.id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": first.model or self._request.model_hint,
            "system_fingerprint": None,
        }
        try:
            yield chunk_event(head, {"role": "assistant", "content": ""})
            written = Written()
            if text := written.take(first):
                yield chunk_event(head, {"content": text})
            while True:
                piece = asyncio.create_task(self._pieces.get())
                await asyncio.wait({result_task, piece}, return_when=asyncio.FIRST_COMPLETED)
                if not piece.done():
                    piece.cancel()
                    break
                if text := written.take(piece.result()):
                    yield chunk_event(head, {"content": text})
            result = await result_task
            if not result.ok:
                yield error_event(OpenAIError.of_result(result, {}))
                return
            rest = written.rest(result.content)
            if rest is None:
                yield error_event(OpenAIError(502, SPLICED, kind="api_error", code="spliced"))
                return
            head["id"], head["model"] = completion_id(result), answer_model(result)
            for event in answer_tail(head, result, rest, include_usage=include_usage):
                yield event
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop listening for pieces; a result not yet in is no longer waited for."""
        if self._result is not None and not self._result.done():
            self._result.cancel()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    @property
    def queued(self) -> int:
        """Pieces received and not yet written."""
        return self._pieces.qsize()

    async def _on_piece(self, msg: Msg) -> None:
        if self._missed or self._pieces.full():  # the client lags: the result says the rest
            self._missed = True
            return
        with contextlib.suppress(WireError):  # not a piece: the result will say the text
            self._pieces.put_nowait(decode(msg.data, LlmStreamChunk))
