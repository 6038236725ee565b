"""A request whose deadline passes while a stage waits gets a deadline_exceeded result."""

from __future__ import annotations

import asyncio
import time

import nats.errors
from faststream.nats import NatsBroker

from bus.messages import ChatMessage, ErrorCode, LlmRequest, LlmResult, Priority, Status
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


class OwnTimeout:
    """A stage whose own wait (a NATS request, say) times out long before any deadline."""

    name = "own-timeout"

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        raise nats.errors.TimeoutError


class Slow:
    """A stage that answers after a while, as a Batch API lane holding a paid batch does."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> LlmResult:
        await asyncio.sleep(self.seconds)
        return LlmResult(
            request_id=ctx.request.id,
            tenant=ctx.request.tenant,
            agent=ctx.request.agent,
            status=Status.OK,
        )


def request(deadline_in_ms: int, priority: Priority = Priority.STANDARD) -> LlmRequest:
    return LlmRequest(
        id=f"late-{priority}",
        tenant="t1",
        agent="a1",
        task_type="text_generation",
        messages=[ChatMessage(role="user", content="hello there, what is new?")],
        deadline_ms=int(time.time() * 1000) + deadline_in_ms,
        priority=priority,
    )


def service(stage: object | None = None, settings: Settings | None = None) -> RouterService:
    return RouterService(
        settings=settings or Settings(),
        stages=[stage or Stuck()],  # type: ignore[list-item]
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


async def test_a_stage_s_own_timeout_is_not_reported_as_the_deadline() -> None:
    result = await asyncio.wait_for(service(OwnTimeout()).answer(request(60_000)), timeout=10)
    assert result.error_code is ErrorCode.INTERNAL
    assert "TimeoutError" in result.reason and "deadline" not in result.reason


async def test_a_bulk_request_held_by_the_batch_lane_is_not_cut_off() -> None:
    slow = Slow(0.1 + DEADLINE_GRACE_S + 0.3)  # answers after the guard would have fired
    bulk = request(100, Priority.BULK)
    result = await asyncio.wait_for(service(slow).answer(bulk), timeout=10)
    assert result.status is Status.OK and result.error_code is None
    # Without the Batch API no lane can hold it: the guard applies to bulk too.
    off = Settings(batch_api=False)
    result = await asyncio.wait_for(service(slow, off).answer(bulk), timeout=10)
    assert result.error_code is ErrorCode.DEADLINE_EXCEEDED
