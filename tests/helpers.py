"""Small helpers the tests share: building requests and waiting on the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bus.messages import BudgetChange, ChatMessage, LlmRequest, OutputSchema

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from redis.asyncio import Redis

    from flipsync.stack import Stack
    from router.context import RequestContext
    from router.paid_answers import PaidAnswers

TITLE_SCHEMA = OutputSchema(
    name="title",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["title"],
        "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 80}},
    },
)


def make_request(
    *,
    tenant: str = "t1",
    agent: str = "ebay_listing",
    text: str = "Write a title for a teal stoneware mug.",
    request_id: str | None = None,
    schema: OutputSchema | None = TITLE_SCHEMA,
) -> LlmRequest:
    """A small structured request, unique unless request_id is given."""
    return LlmRequest(
        id=request_id or uuid.uuid4().hex,
        tenant=tenant,
        agent=agent,
        task_type="text_generation",
        messages=[ChatMessage(role="user", content=text)],
        output_schema=schema,
        max_output_tokens=100,
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until check() is true; fail the test with TimeoutError otherwise."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polling state held in another server
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def router_stack(**settings: Any) -> AsyncIterator[Stack]:
    """An embedded stack with the simulated provider (no latency), the router and the ledger
    (which runs the experiment consumers), knowing the listing agents; settings override."""
    from bus.settings import Settings
    from flipsync.stack import Service, start_stack

    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
    fields: dict[str, Any] = {"sim_latency_ms": 0, "extra_agents": frozenset({"listing"})}
    running = await start_stack(Settings(**{**fields, **settings}), services)
    try:
        yield running
    finally:
        await running.stop()


async def pipeline_quiet(stack: Stack, timeout_s: float = 30.0) -> None:
    """Wait until the router has acked every request, then the ledger every event. The router
    acks a request only after publishing its result and then its ledger event, so a caller
    holding every result can still see a quiet ledger consumer before the last event lands:
    the router's consumer is checked first, each time."""
    await consumers_quiet(stack.broker.connection.jetstream(), ledger=True, timeout_s=timeout_s)


async def consumers_quiet(js: JetStreamContext, *, ledger: bool, timeout_s: float = 30.0) -> None:
    """Wait until the router's consumer has every request acked (and with ledger, then the
    ledger's consumer every event).

    A requester's result can arrive before the results stream holds it: NATS delivers a
    published message to core subscribers at once and queues it for the stream, whose ack
    comes only once it is stored. The router acks a request only after those acks, so once
    its consumer is quiet every result and ledger event it published is stored."""
    from bus import subjects

    consumers = [(subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)]
    if ledger:
        consumers.append((subjects.STREAM_LEDGER, subjects.DURABLE_LEDGER))

    async def done() -> bool:
        for stream, durable in consumers:
            info = await js.consumer_info(stream, durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await eventually(done, timeout_s=timeout_s)


async def put_budgets(stack: Stack, change: BudgetChange) -> None:
    """Publish a budget change and wait until the stack's router runs with it. The router
    reads changes from the LEDGER stream on its own time: requests sent right after the
    publish can run before the budget exists (a loaded CI machine did, stop 26)."""
    from cost_ledger.budgets.control import publish_change

    assert stack.budgets is not None
    live = stack.budgets.live
    expected = live.rules.apply(change)
    await publish_change(stack.broker.connection.jetstream(), change)

    async def in_force() -> bool:
        return await live.current() == expected

    await eventually(in_force)


@contextlib.asynccontextmanager
async def lapsed_call(
    answers: PaidAnswers,
    ctx: RequestContext,
    redis: Redis,
    *,
    input_tokens: int,
    model: str = "gpt-4o-mini",
) -> AsyncIterator[asyncio.Task[Any]]:
    """A provider call through answers that never answers, its lease lapsed at once, as when
    its replica died (a reaper books it now); the call is cancelled on the way out."""
    from router.call_markers import LEASES

    started = asyncio.Event()

    async def hang() -> Any:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    call = asyncio.create_task(
        answers.call(
            ctx, provider="sim", model=model, input_tokens=input_tokens, simulated=True, make=hang
        )  # fmt: skip
    )
    try:
        await started.wait()
        [lease] = await redis.zrange(LEASES, 0, -1)
        assert isinstance(lease, bytes)
        await redis.zadd(LEASES, {lease: 0})
        yield call
    finally:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
