"""The Batch API lane: bulk requests collected per model, sent as one batch, polled, split.

Requests stay unacked while their batch runs: each waits in its own pipeline coroutine, whose
in-progress acks keep JetStream from redelivering it. If the replica dies, another one gets
the request, finds in Redis the window it went in and the batch that window became (or finds
the batch by its metadata, if the first replica died before recording it), and waits for
that batch instead of paying for another.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from opentelemetry import trace
from redis.exceptions import RedisError

from bus.messages import ErrorCode, Lever, LlmResult, Usage, error_result
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from cost_ledger.savings import chain, paid_call_steps
from router.batching import keys
from router.batching.batch_api import BatchApiClient, BatchState, LineResult, batch_line
from router.batching.errors import BatchingError
from router.batching.outcome import Alone, Outcome, answered
from router.batching.policy import BatchPolicy
from router.batching.share_span import record_share
from router.batching.windows import Windows
from router.context import RequestContext
from router.validation import parse_answer_off_loop

log = logging.getLogger(__name__)
FETCH_TRIES = 10
"""Attempts at reading a finished batch's files before its requests get an error result."""


@dataclass(kw_only=True)
class _Waiter:
    ctx: RequestContext
    future: asyncio.Future[Outcome]
    span: trace.SpanContext


@dataclass(kw_only=True)
class _Poll:
    batch_id: str
    client: BatchApiClient
    model: str
    shared: trace.SpanContext | None
    started_ns: int = field(default_factory=time.time_ns)
    waiters: dict[str, list[_Waiter]] = field(default_factory=dict)

    def add(self, waiter: _Waiter) -> None:
        self.waiters.setdefault(waiter.ctx.request.id, []).append(waiter)


class BatchLane:
    """Sends bulk requests through the providers' Batch APIs, one window per model."""

    def __init__(
        self,
        *,
        policy: BatchPolicy,
        clients: Mapping[str, BatchApiClient],
        catalog: PriceCatalog,
        baseline_model: str,
        redis: aioredis.Redis,
        poll_s: float,
        tracer: trace.Tracer,
    ) -> None:
        self._clients = clients
        self._catalog = catalog
        self._baseline_model = baseline_model
        self._redis = redis
        self._poll_s = poll_s
        self._tracer = tracer
        self._windows: Windows[tuple[str, str], _Waiter] = Windows(
            window_ms=policy.window_ms, max_items=policy.max_items, on_close=self._closed
        )
        self._polls: dict[str, _Poll] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.held = 0
        """Requests this lane holds now (in a window or waiting for a batch)."""

    async def submit(self, ctx: RequestContext) -> Outcome:
        """Hold ctx until its batch answers it (or sends it the normal way)."""
        route = ctx.route
        client = self._clients.get(route.provider) if route else None
        if route is None or client is None:
            return Alone(reason="its provider has no Batch API client")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        span = trace.get_current_span().get_span_context()
        waiter = _Waiter(ctx=ctx, future=future, span=span)
        self.held += 1
        try:
            try:
                batch_id = await self._earlier_batch(client, ctx.request.id)
            except (BatchingError, RedisError) as exc:  # cannot tell: treat it as a first time
                log.warning("no earlier batch found for %s: %s", ctx.request.id, exc)
                batch_id = None
            if batch_id is not None:
                self._watch(client, batch_id, route.model, None, [waiter])
            else:
                self._windows.add((route.provider, route.model), waiter)
            return await future
        finally:
            self.held -= 1

    async def _earlier_batch(self, client: BatchApiClient, request_id: str) -> str | None:
        """The batch an earlier delivery of this request went in, if any."""
        raw_window = await self._redis.get(keys.request_window(request_id))
        if raw_window is None:
            return None
        window = _text(raw_window)
        batch_id = await self._redis.get(keys.window_batch(window))
        if batch_id is not None:
            return _text(batch_id)
        found = await client.find(window)  # its replica died before recording the batch
        if found is not None:
            await self._redis.set(keys.window_batch(window), found, ex=keys.CLAIM_TTL_S)
        return found

    def _closed(self, key: tuple[str, str], window: list[_Waiter]) -> None:
        waiters = [w for w in window if not w.future.done()]
        if waiters:
            self._spawn(self._start(self._clients[key[0]], key[1], waiters))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # An empty context: a batch serves many workflows; its spans link to theirs.
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, client: BatchApiClient, model: str, waiters: list[_Waiter]) -> None:
        window_id = uuid.uuid4().hex
        lines, seen = [], set()
        for w in waiters:  # one line per request id: custom_ids must be unique in a batch
            if w.ctx.request.id not in seen:
                seen.add(w.ctx.request.id)
                lines.append(batch_line(w.ctx.request, model, client.config.max_tokens_param))
        links = [trace.Link(w.span) for w in waiters if w.span.is_valid]
        try:
            with self._tracer.start_as_current_span("batch create", links=links) as span:
                span.set_attribute("flipsync.batch_lines", len(lines))
                async with self._redis.pipeline(transaction=False) as pipe:
                    for line in lines:
                        key = keys.request_window(line["custom_id"])
                        pipe.set(key, window_id, ex=keys.CLAIM_TTL_S)
                    await pipe.execute()
                batch_id = await client.create(lines, window_id)
                span.set_attribute("flipsync.batch_id", batch_id)
                shared = span.get_span_context()
        except (BatchingError, RedisError) as exc:
            log.warning("batch of %d requests not created: %s", len(lines), exc)
            for w in waiters:
                _settle(w, Alone(reason=f"the batch could not be created: {exc}"))
            return
        try:
            await self._redis.set(keys.window_batch(window_id), batch_id, ex=keys.CLAIM_TTL_S)
        except RedisError as exc:  # the batch exists: a redelivery finds it by its metadata
            log.warning("batch %s not recorded in Redis: %s", batch_id, exc)
        self._watch(client, batch_id, model, shared, waiters)

    def _watch(
        self,
        client: BatchApiClient,
        batch_id: str,
        model: str,
        shared: trace.SpanContext | None,
        waiters: list[_Waiter],
    ) -> None:
        poll = self._polls.get(batch_id)
        if poll is None:
            poll = _Poll(batch_id=batch_id, client=client, model=model, shared=shared)
            self._polls[batch_id] = poll
            self._spawn(self._follow(poll))
        for waiter in waiters:
            poll.add(waiter)

    async def _follow(self, poll: _Poll) -> None:
        """Poll the batch until it ends, then answer every waiter from its files."""
        state = await self._until_done(poll)
        if state is None:  # every waiter left (the service stopped): a redelivery resumes
            del self._polls[poll.batch_id]
            return
        results: dict[str, LineResult] | None = None
        for attempt in range(FETCH_TRIES):
            try:
                results = await poll.client.results(state)
                break
            except BatchingError as exc:
                log.warning("batch %s results not read (try %d): %s", poll.batch_id, attempt, exc)
                await asyncio.sleep(self._poll_s)
        del self._polls[poll.batch_id]  # a waiter coming after this starts a new poll
        for request_id, waiters in poll.waiters.items():
            for waiter in waiters:
                if results is None:
                    request = waiter.ctx.request
                    reason = f"the results of batch {poll.batch_id} could not be read"
                    outcome: Outcome = error_result(
                        request.id, request.tenant, request.agent, ErrorCode.PROVIDER_ERROR, reason
                    )
                else:
                    line = results.get(request_id)
                    checked = await _checked(waiter.ctx, line)
                    outcome = self._outcome(waiter.ctx, poll, state, line, checked)
                self._share(poll, waiter, outcome)
                _settle(waiter, outcome)

    def _share(self, poll: _Poll, waiter: _Waiter, outcome: Outcome) -> None:
        """The request's share of the batch, as a span in its own workflow's trace."""
        paid = isinstance(outcome, LlmResult) and outcome.lever is Lever.BATCH_API
        usage = outcome.usage if paid else Usage()
        record_share(
            self._tracer,
            waiter.span,
            shared=poll.shared,
            kind="batch_api",
            call_id=poll.batch_id,
            model=outcome.model if isinstance(outcome, LlmResult) and outcome.model else poll.model,
            request_id=waiter.ctx.request.id,
            usage=usage,
            cost_micro_usd=outcome.cost_micro_usd if paid else 0,
            start_ns=poll.started_ns,
            problem="" if paid else outcome.reason,
        )

    async def _until_done(self, poll: _Poll) -> BatchState | None:
        while any(not w.future.done() for ws in poll.waiters.values() for w in ws):
            try:
                state = await poll.client.state(poll.batch_id)
                if state.done:
                    return state
            except BatchingError as exc:  # keep polling: the batch is paid for, wait it out
                log.warning("batch %s not polled: %s", poll.batch_id, exc)
            await asyncio.sleep(self._poll_s)
        return None

    def _outcome(
        self,
        ctx: RequestContext,
        poll: _Poll,
        state: BatchState,
        line: LineResult | None,
        checked: tuple[object | None, str] | None,
    ) -> Outcome:
        if line is None:
            return Alone(reason=f"batch {poll.batch_id} ended {state.status} without its answer")
        if line.problem or line.usage is None:
            return Alone(reason=line.problem)
        route = ctx.route
        assert route is not None  # only routed requests enter the lane
        price = self._catalog.get(route.model)
        config = poll.client.config
        baseline = baseline_micro_usd(self._catalog, self._baseline_model, line.usage)
        steps = paid_call_steps(price, line.usage, naive=baseline, batch=True)
        return answered(
            ctx,
            content=line.content,
            model=line.model or route.model,
            provider=config.name,
            usage=line.usage,
            cost_micro_usd=cost_micro_usd(price, line.usage, batch=True),
            baseline_micro_usd=baseline,
            savings_by_lever=chain(baseline, steps),
            lever=Lever.BATCH_API,
            reason=f"batch {poll.batch_id} ({route.reason})",
            simulated=config.simulated,
            checked=checked,
        )

    async def close(self) -> None:
        """Stop polling; held requests are redelivered elsewhere and find their batch there."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _checked(
    ctx: RequestContext, line: LineResult | None
) -> tuple[object | None, str] | None:
    """A batch answer checked against its request's schema off the loop (a batch brings
    many answers at once, of any length), or None when there is nothing to check."""
    schema = ctx.request.output_schema
    if line is None or line.problem or line.usage is None or schema is None:
        return None
    return await parse_answer_off_loop(line.content, schema.schema)


def _settle(waiter: _Waiter, outcome: Outcome) -> None:
    if not waiter.future.done():
        waiter.future.set_result(outcome)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
