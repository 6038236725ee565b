"""The packer: windows of compatible requests on one replica, each sent as one packed call.

Each request waits in its own pipeline coroutine (so its in-progress acks go on) for the
window's outcome: its own result, or word to go alone (a window of one, a failed call, an
item that was missing or invalid, which carries its share of the call, or one whose budgets
had no room for its part of the packing overhead).

A packed call can cost more than its items' reservations together (its own instructions,
each item's output wrapper): before it is sent, the items' reservations are grown to hold its
bound (router.context.cover), and an item a budget refuses that goes alone. Its cost is then
shared out with no item's share past its reservation, and lost with this replica it is booked
the same way (router.paid_answers), so settled spend never passes a budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import uuid
from dataclasses import dataclass

from opentelemetry import trace

from bus.messages import Lever, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd, cost_micro_usd
from cost_ledger.savings import chain, paid_call_steps
from router.batching.outcome import Alone, Outcome, answered
from router.batching.policy import PackPolicy
from router.batching.prompt import PackedCall, build_packed_call, inline_index
from router.batching.share_span import record_share
from router.batching.shares import share_cost, share_usage
from router.batching.split import split_answer
from router.batching.windows import Windows
from router.context import RequestContext, cover
from router.errors import RouterError
from router.health.store import HealthStore
from router.health.store import Outcome as Health
from router.paid_answers import PaidAnswers
from router.paid_calls import call_bound
from router.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class _Held:
    ctx: RequestContext
    future: asyncio.Future[Outcome]
    span: trace.SpanContext


class Packer:
    """Collects packable requests per key and sends each closed window as one call."""

    def __init__(
        self,
        policy: PackPolicy,
        registry: ProviderRegistry,
        catalog: PriceCatalog,
        baseline_model: str,
        tracer: trace.Tracer,
        leases: PaidAnswers | None = None,
        health: HealthStore | None = None,
    ) -> None:
        """leases: the packed call runs under a lease that books it if this replica dies;
        health: each answered packed call is counted in its provider's health (calls,
        latency, cost: `flipsync providers`), as dispatch counts its calls."""
        self._leases = leases
        self._health = health
        self._registry = registry
        self._catalog = catalog
        self._baseline_model = baseline_model
        self._tracer = tracer
        self._policy = policy
        self._windows: Windows[str, _Held] = Windows(
            window_ms=policy.window_ms,
            max_items=policy.max_items,
            deadline_slack_ms=policy.deadline_slack_ms,
            on_close=self._closed,
        )
        self._calls: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, ctx: RequestContext) -> Outcome:
        """Hold ctx in the window of key until the window's call answers it."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        span = trace.get_current_span().get_span_context()
        held = _Held(ctx=ctx, future=future, span=span)
        window_ms = self._policy.window_for(ctx.request.priority)
        self._windows.add(key, held, ctx.request.deadline_ms, window_ms)
        return await future

    def _closed(self, key: str, window: list[_Held]) -> None:
        items = [h for h in window if not h.future.done()]  # a cancelled waiter has left
        if len(items) == 1:
            items[0].future.set_result(Alone(reason="its packing window closed with no company"))
        elif items:
            # Its own trace (linked to each item's span): it serves several workflows at once.
            task = asyncio.get_running_loop().create_task(
                self._call(items), context=contextvars.Context()
            )
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, items: list[_Held]) -> None:
        try:
            items, call = await self._covered(items)
            if call is None:
                outcomes: list[Outcome] = [
                    Alone(reason="its packing window had no company the budgets made room for")
                ] * len(items)
            else:
                outcomes = await self._packed(items, call)
        except RouterError as exc:
            outcomes = [Alone(reason=f"the packed call failed: {exc.reason}")] * len(items)
        except Exception as exc:  # a bug must not strand the held requests
            log.exception("packed call of %d items failed", len(items))
            outcomes = [Alone(reason=f"the packed call failed: {type(exc).__name__}")] * len(items)
        for held, outcome in zip(items, outcomes, strict=True):
            if not held.future.done():
                held.future.set_result(outcome)

    async def _covered(self, items: list[_Held]) -> tuple[list[_Held], PackedCall | None]:
        """The items to pack, whose reservations now hold their packed call's bound, and that
        call (None with fewer than two left). An item whose budgets refused its part of the
        packing overhead is told to go alone at once: sent alone, it fits what it reserved."""
        route = items[0].ctx.route
        assert route is not None  # the stage only packs routed requests
        while len(items) > 1:
            call = build_packed_call([h.ctx.request for h in items], f"pack-{uuid.uuid4().hex}")
            granted = await cover(self._bound(call, route.model), [h.ctx for h in items])
            if all(granted):
                return items, call
            for held, ok in zip(items, granted, strict=True):
                if not ok and not held.future.done():
                    reason = "a budget has no room for its part of the packed call's overhead"
                    held.future.set_result(Alone(reason=reason))
            items = [held for held, ok in zip(items, granted, strict=True) if ok]
        return items, None

    def _bound(self, call: PackedCall, model: str) -> int:
        """The most the packed call can cost: what its lost call is booked at."""
        return call_bound(self._leases, self._catalog, call.request, model, call.input_tokens)

    async def _packed(self, items: list[_Held], call: PackedCall) -> list[Outcome]:
        route = items[0].ctx.route
        assert route is not None  # the stage only packs routed requests
        client = self._registry.get(route.provider)
        requests = [h.ctx.request for h in items]
        pack_id = call.request.id
        remaining = [r for h in items if (r := h.ctx.remaining_s()) is not None]
        links = [trace.Link(h.span) for h in items if h.span.is_valid]
        started = time.time_ns()
        with self._tracer.start_as_current_span(
            f"chat {route.model} packed", kind=trace.SpanKind.CLIENT, links=links
        ) as span:
            shared_call = span.get_span_context()
            span.set_attribute("flipsync.pack_id", pack_id)
            span.set_attribute("flipsync.pack_items", len(items))
            make = functools.partial(
                client.complete, call.request, route.model, min(remaining) if remaining else None
            )
            try:
                completion = await (
                    self._leases.leased(
                        call.request, provider=client.name, model=route.model,
                        input_tokens=call.input_tokens,
                        simulated=client.config.simulated, make=make,
                        payers=[h.ctx for h in items],
                    )
                    if self._leases is not None
                    else make()
                )  # fmt: skip
            except RouterError as exc:  # each workflow still sees the call it waited on
                for held in items:
                    self._share(
                        held, shared_call, pack_id, route.model, Usage(), 0, started, exc.reason
                    )
                raise
            price = self._catalog.get(route.model)
            # A call a reaper booked at its bound while it ran is booked once: not again here.
            total = 0 if completion.booked_as_lost else cost_micro_usd(price, completion.usage)
            span.set_attribute("flipsync.cost_micro_usd", total)
            if self._health is not None:
                await self._health.record(
                    client.name, route.model, Health.OK, latency_ms=completion.latency_ms,
                    cost_micro_usd=total, input_tokens=completion.usage.input_tokens,
                    output_tokens=completion.usage.output_tokens,
                )  # fmt: skip
        schemas = [r.output_schema.schema if r.output_schema else {} for r in requests]
        answers = split_answer(completion.content, schemas, inline=inline_index(schemas[0]))
        shared = call.shared_tokens
        n = len(items)
        input_weights = [shared + n * own for own in call.item_tokens]  # shared part split evenly
        usages = share_usage(completion.usage, input_weights, [a.output_tokens for a in answers])
        # No item's share past its reservation: together they hold the call's bound (cover).
        costs = share_cost(total, price, usages, [h.ctx.reserved_micro_usd for h in items])
        outcomes: list[Outcome] = []
        for i, held in enumerate(items):
            answer, usage, cost = answers[i], usages[i], costs[i]
            self._share(
                held, shared_call, pack_id, route.model, usage, cost, started, answer.problem
            )
            if not answer.ok:
                outcomes.append(Alone(reason=answer.problem, usage=usage, cost_micro_usd=cost))
                continue
            naive = Usage(input_tokens=call.alone_tokens[i], output_tokens=answer.output_tokens)
            baseline = baseline_micro_usd(self._catalog, self._baseline_model, naive)
            steps = paid_call_steps(price, usage, naive=baseline, alone=naive, packed=True)
            outcomes.append(
                answered(
                    held.ctx,
                    content=answer.content,
                    model=completion.model,
                    provider=client.name,
                    usage=usage,
                    cost_micro_usd=cost,
                    baseline_micro_usd=baseline,
                    savings_by_lever=chain(baseline, steps),
                    lever=Lever.PACKED,
                    reason=f"packed with {n - 1} others into {pack_id} ({route.reason})",
                    simulated=client.config.simulated,
                    pack_size=n,
                    checked=(answer.parsed, ""),  # split_answer checked it
                )
            )
        return outcomes

    def _share(
        self,
        held: _Held,
        shared: trace.SpanContext,
        pack_id: str,
        model: str,
        usage: Usage,
        cost: int,
        started_ns: int,
        problem: str,
    ) -> None:
        """The item's share of the packed call, as a span in its own workflow's trace."""
        record_share(
            self._tracer,
            held.span,
            shared=shared,
            kind="packed",
            call_id=pack_id,
            model=model,
            request_id=held.ctx.request.id,
            usage=usage,
            cost_micro_usd=cost,
            start_ns=started_ns,
            problem=problem,
        )

    async def close(self) -> None:
        """Send every open window now and wait for the calls in flight."""
        self._windows.close_all()
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
