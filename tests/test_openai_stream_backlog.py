"""A streamed /v1 answer to a client that reads slower than the provider writes.

Before, every piece the provider streamed was queued for the client, without bound: a client
reading nothing of a 40,000-word answer held 20,802 pieces after the answer had ended. Now at
most MAX_QUEUED_PIECES are kept; past them the relay stops, as for a piece missed on core
NATS, and the result's text follows whole: the client still gets the exact answer.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from api.openai_stream import MAX_QUEUED_PIECES, RelayedAnswer
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import LlmRequest, LlmResult, LlmStreamChunk, Status
from tests.helpers import make_request

WORDS = 3 * MAX_QUEUED_PIECES


class Bus:
    """A broker connection and a requester standing in for NATS and the router."""

    def __init__(self) -> None:
        self.on_piece: Any = None
        self.result: asyncio.Future[LlmResult] = asyncio.get_running_loop().create_future()
        self.unsubscribed = False

    async def subscribe(self, subject: str, cb: Any) -> Any:
        self.on_piece = cb
        return SimpleNamespace(unsubscribe=self.unsubscribe)

    async def unsubscribe(self) -> None:
        self.unsubscribed = True

    async def request(self, request: LlmRequest, timeout_s: float) -> LlmResult:
        return await self.result

    async def piece(self, request: LlmRequest, seq: int) -> None:
        chunk = LlmStreamChunk(request_id=request.id, call=1, seq=seq, content=f"w{seq} ")
        await self.on_piece(cast(Msg, SimpleNamespace(data=encode(chunk))))


async def test_a_client_reading_nothing_holds_a_bounded_backlog_and_gets_the_whole_answer() -> None:
    bus = Bus()
    request = make_request(tenant="acme", agent="listing")
    broker = cast(NatsBroker, SimpleNamespace(connection=bus))
    relayed = RelayedAnswer(broker, cast(LlmClient, bus), request, 5.0)
    starting = asyncio.create_task(relayed.start())
    await asyncio.sleep(0)
    await bus.piece(request, 0)
    assert await starting is None  # pieces are coming: the response streams
    for seq in range(1, WORDS):  # the provider writes on; the client reads nothing
        await bus.piece(request, seq)
    assert relayed.queued <= MAX_QUEUED_PIECES
    text = "".join(f"w{seq} " for seq in range(WORDS))
    bus.result.set_result(
        LlmResult(request_id=request.id, tenant="acme", agent="listing", status=Status.OK,
                  content=text, model="gpt-4o-mini")
    )  # fmt: skip
    written = ""
    async for event in relayed.events(0, include_usage=False):
        body = event.removeprefix(b"data: ").strip()
        if body == b"[DONE]":
            continue
        chunk = json.loads(body)
        assert "error" not in chunk
        written += chunk["choices"][0]["delta"].get("content") or ""
    assert written == text
    assert bus.unsubscribed
