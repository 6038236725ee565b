"""A call lost with its replica is booked within the budget its request reserved.

The replica dies while the provider answers: its reservation is no longer kept alive and
expires, its paid-call lease expires and the lost call is booked at its maximum. Settled
spend must still never pass the budget (tests/test_budget_concurrency.py kills a replica
mid-burst and once found it 15 micro-USD over).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus import subjects
from bus.codec import decode
from bus.messages import BudgetPeriod, BudgetScope, BudgetSpec, LedgerEvent, LlmRequest, Usage
from cost_ledger.budgets import keys
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.policy import Subject, name_token
from cost_ledger.budgets.projection import LedgerView, settled_by_router
from cost_ledger.budgets.scripts import Code
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.catalog import PriceCatalog
from router.call_markers import LEASES
from router.context import RequestContext
from router.paid_answers import PaidAnswers
from router.providers.client import Completion
from router.stages.budget import estimate_input_tokens, subject_of
from router.token_bound import max_request_cost
from tests.helpers import lapsed_call, make_request
from tests.test_budget_store import day_counter, make_store

MODEL = "gpt-4o-mini"


async def _ledger_event(broker: NatsBroker, tenant: str) -> LedgerEvent:
    """The one ledger event of tenant (each test has a tenant of its own)."""
    js = broker.connection.jetstream()
    sub = await js.subscribe(subjects.ledger(tenant), ordered_consumer=True)
    try:
        msg = await sub.next_msg(timeout=10)
    finally:
        await sub.unsubscribe()
    return decode(msg.data, LedgerEvent)


@dataclass(frozen=True)
class OneReservation:
    """A tenant's budget, one request's reservation in it, and paid-call booking into it."""

    tenant: str
    request: LlmRequest
    subject: Subject
    tokens: int
    reserved: int
    store: BudgetStore
    answers: PaidAnswers


async def one_reservation(
    redis: aioredis.Redis, broker: NatsBroker, prefix: str, *, rooms: int = 1
) -> OneReservation:
    """A tenant of its own whose budget holds rooms times what the budget stage reserves for
    one request on MODEL, that reservation made, and paid-call booking into that budget."""
    tenant = f"{prefix}{uuid.uuid4().hex[:8]}"
    catalog = PriceCatalog.load()
    request = make_request(tenant=tenant, agent="listing")
    subject = subject_of(request)
    tokens = estimate_input_tokens(request)
    reserved = max_request_cost(
        request, catalog.get(MODEL), EngineSettings().input_margin, estimate=tokens
    )
    budget = BudgetSpec(
        name=f"{tenant}-daily",
        scope=BudgetScope.TENANT,
        period=BudgetPeriod.DAY,
        limit_micro_usd=rooms * reserved,
        tenant=tenant,
    )
    store = await make_store(redis, [budget])
    assert (await store.reserve(request.id, subject, reserved)).code is Code.RESERVED
    answers = PaidAnswers(redis, broker, catalog, lambda: "test", lease_s=30,
                          answer_ttl_s=60, budgets=store)  # fmt: skip
    return OneReservation(tenant, request, subject, tokens, reserved, store, answers)


async def test_a_lost_call_never_takes_settled_spend_past_the_budget(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    one = await one_reservation(redis_client, broker, "lost")
    tenant, request, tokens = one.tenant, one.request, one.tokens
    reserved, store, answers = one.reserved, one.store, one.answers
    limit = reserved
    ctx = RequestContext(request=request)
    try:
        # The replica dies: its lease lapses and another replica's reaper books the call.
        async with lapsed_call(answers, ctx, redis_client, model=MODEL, input_tokens=tokens):
            assert await answers.reap() == 1
    finally:
        await answers.close()
    # Its reservation, no longer kept alive, expires; another request takes the room it held.
    group = keys.tenant_group(name_token(tenant))
    await redis_client.zadd(keys.reservations(group), {request.id: 0})
    await store.sweep()
    other = make_request(tenant=tenant, agent="listing")
    if (await store.reserve(other.id, subject_of(other), reserved)).holds:
        await store.settle(other.id, subject_of(other), cost=9, messages=0,
                           at_ms=ctx.started_ms)  # fmt: skip
    # Only then does the ledger consumer reach the lost call's event.
    event = await _ledger_event(broker, tenant)
    assert settled_by_router(event)  # the reaper settled it: the ledger does not again
    await LedgerView(redis_client, store).settle_applied([event], [True])

    spent, held = await store.counter(day_counter(f"tenant:{tenant}"))
    assert held == 0
    assert spent >= event.cost_micro_usd  # the lost call is booked ...
    assert spent <= limit, f"{spent - limit} micro-USD over: lost call {event.cost_micro_usd}"


async def test_a_live_call_whose_lease_lapsed_is_booked_within_its_reservation(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    one = await one_reservation(redis_client, broker, "stall")
    tenant, request, subject, tokens = one.tenant, one.request, one.subject, one.tokens
    reserved, store, answers = one.reserved, one.store, one.answers
    started, answer = asyncio.Event(), asyncio.Event()

    async def slow() -> Completion:
        started.set()
        await answer.wait()
        return Completion(content="Teal mug", model=MODEL, usage=Usage(input_tokens=20,
                          output_tokens=5), latency_ms=1.0, finish_reason="stop")  # fmt: skip

    ctx = RequestContext(request=request)
    call = asyncio.create_task(
        answers.call(
            ctx, provider="sim", model=MODEL, input_tokens=tokens, simulated=True, make=slow
        )  # fmt: skip
    )
    try:
        await started.wait()
        # The replica is alive, its loop stalled past the lease: another replica books the call.
        [lease] = await redis_client.zrange(LEASES, 0, -1)
        assert isinstance(lease, bytes)
        await redis_client.zadd(LEASES, {lease: 0})
        assert await answers.reap() == 1
        answer.set()  # then the answer arrives, and the request settles it as the stage does
        await call
        kept = await answers.kept(request, MODEL)  # what a redelivery would price again
        assert kept is not None and kept.completion().booked_as_lost
    finally:
        await answers.close()
    [paid] = ctx.paid
    assert paid.cost_micro_usd == 0 and call.result().booked_as_lost  # booked once, by the reap
    await store.settle(request.id, subject, cost=paid.cost_micro_usd, messages=0,
                       at_ms=ctx.started_ms)  # fmt: skip

    spent, held = await store.counter(day_counter(f"tenant:{tenant}"))
    assert held == 0
    assert spent <= reserved, f"{spent - reserved} micro-USD over: one call booked twice"


async def test_a_redelivery_after_a_lost_call_needs_room_for_its_own_call(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """The replica dies while the provider answers; the request is redelivered while its
    reservation still stands. The lost call is booked at its bound and taken off that
    reservation, so the redelivery (which finds it HELD) must find room for its own call.
    Before, it took the standing reservation as its own: the lost call and the redelivery's
    call were both settled against one reservation, up to twice the budget's room."""
    one = await one_reservation(redis_client, broker, "again")
    tenant, request, subject, tokens = one.tenant, one.request, one.subject, one.tokens
    reserved, store, answers = one.reserved, one.store, one.answers
    ctx = RequestContext(request=request)
    try:  # the replica died
        async with lapsed_call(answers, ctx, redis_client, model=MODEL, input_tokens=tokens):
            assert await answers.reap() == 1
    finally:
        await answers.close()
    counter = day_counter(f"tenant:{tenant}")
    assert await store.counter(counter) == (reserved, 0)  # booked, and off the reservation
    event = await _ledger_event(broker, tenant)
    assert event.reserved_by == request.id and event.cost_micro_usd == reserved
    # The redelivery, the budget full with the lost call: refused, nothing held for it.
    again = await store.reserve(request.id, subject, reserved)
    assert again.code is Code.DENIED and again.spent == reserved
    assert await store.counter(counter) == (reserved, 0)
