"""A request whose deadline passes while a stage waits gets a deadline_exceeded result."""

from __future__ import annotations

import asyncio
import time

from faststream.nats import NatsBroker

from bus.messages import ChatMessage, ErrorCode, LlmRequest, LlmResult
from bus.settings import Settings
from router.context import RequestContext
from router.pipeline import Handler
from router.service import DEADLINE_GRACE_S, RouterService


class Stuck:
    """A stage that waits far longer than any deadline (a lost dedup leader, say)."""

    name = "stuck"

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        await asyncio.sleep(60)
        return await call_next(ctx)


async def never(ctx: RequestContext) -> LlmResult:
    raise AssertionError("the terminal handler must not be reached")


def service() -> RouterService:
    return RouterService(
        settings=Settings(),
        stages=[Stuck()],
        terminal=never,
        catalog_version="test",
        broker=NatsBroker(),  # never connected: answer() publishes nothing
    )


async def test_a_stage_stuck_past_the_deadline_yields_a_timeout_result() -> None:
    request = LlmRequest(
        id="late-1",
        tenant="t1",
        agent="a1",
        task_type="text_generation",
        messages=[ChatMessage(role="user", content="hello there, what is new?")],
        deadline_ms=int(time.time() * 1000) + 200,
    )
    started = time.monotonic()
    result = await asyncio.wait_for(service().answer(request), timeout=10)
    assert result.error_code is ErrorCode.DEADLINE_EXCEEDED
    assert "deadline" in result.reason
    assert time.monotonic() - started < 0.2 + DEADLINE_GRACE_S + 1.0
