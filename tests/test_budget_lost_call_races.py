"""Races between a lost call's booking and its request's reservation, found by review.

1. A lost call's give-back landing after a redelivery took over the reservation (HELD) must
   not hand the redelivery's room to other requests.
2. A user's message is charged once per request, however many of its calls were booked at
   their bound (lost, or billed and unusable) on the way.
3. A call a reaper booked at its bound while it ran, which then failed unbilled, is noted on
   its request, so a fallback needs room beside it.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import redis.asyncio as aioredis
from faststream.nats import NatsBroker
from opentelemetry import trace

from bus.messages import (
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    LedgerEvent,
    LlmResult,
    Status,
    TierQuota,
    now_ms,
)
from cost_ledger.budgets.config import EngineSettings
from cost_ledger.budgets.gate import Settlement
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.policy import name_token
from cost_ledger.budgets.projection import LedgerView, settled_by_router
from cost_ledger.budgets.scripts import Code
from cost_ledger.catalog import PriceCatalog
from flipsync.providers import dispatch_health
from router.call_markers import LEASES
from router.context import Fallback, RequestContext
from router.lost_events import lost_event
from router.paid_answers import PaidAnswers
from router.pipeline import Handler, Stage, compose
from router.providers.client import Completion
from router.providers.errors import ProviderCallError
from router.stages.budget import BudgetStage, estimate_input_tokens, subject_of
from router.stages.dispatch import Dispatcher
from router.token_bound import max_request_cost
from simulator.config import Faults
from simulator.server import SimulatedProvider
from tests.helpers import lapsed_call, make_request
from tests.test_budget_lost_calls import _ledger_event, one_reservation
from tests.test_budget_store import ACME, day_counter, make_store, tenant_budget
from tests.test_provider_fallback import MODEL as SPENT_MODEL
from tests.test_provider_fallback import FixedRoute, registry_of, settings_for

MODEL = "gpt-4o-mini"
CATALOG = PriceCatalog.load()


# --- 1. A give-back lands on a reservation a redelivery adopted (HELD) ----------------------


async def test_a_late_give_back_does_not_take_room_from_a_redelivery_that_adopted_the_reservation(
    redis_client: aioredis.Redis,
) -> None:
    """r1's first delivery reserved 400 and its call was lost; the lost call's first settle
    has not landed yet (the reaper's settle failed: docs/money.md says the ledger's settle
    then gives back). The redelivery finds the reservation HELD in full (nothing to grow) and
    makes its own call. Then the ledger settles the lost call with reserved_by=r1: it takes
    400 off the reservation the redelivery is now using, and another request is let into
    room the redelivery is about to spend. No reservation expired, yet spend passes the limit."""
    store = await make_store(redis_client, [tenant_budget(1000)])
    counter = day_counter("tenant:acme")
    assert (await store.reserve("r1", ACME, 400)).code is Code.RESERVED  # first delivery
    assert (await store.reserve("r1", ACME, 400)).code is Code.HELD  # redelivery, before settle
    # The lost call's first settle lands (the ledger consumer's), naming r1's reservation.
    await store.settle("r1-lost", ACME, cost=400, messages=0, at_ms=now_ms(), reserved_by="r1")
    other = await store.reserve("x", ACME, 600)
    if other.holds:
        await store.settle("x", ACME, cost=600, messages=0, at_ms=now_ms())
    settled = await store.settle("r1", ACME, cost=400, messages=0, at_ms=now_ms())
    assert settled.held  # the redelivery's reservation stood all along: nothing expired
    spent, _ = await store.counter(counter)
    assert spent <= 1000, f"{spent - 1000} micro-USD over with no reservation expired"


async def test_a_lost_call_settled_by_the_ledger_after_the_redelivery_reserved_stays_in_budget(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """The same through the real pieces: the reaper books the lost call but its settle fails
    (Redis error), so it publishes the event unsettled; the redelivery reserves (HELD, in
    full); the ledger consumer settles the event (LedgerView), giving back from the
    redelivery's reservation; another request fits; both calls are paid."""
    one = await one_reservation(redis_client, broker, "late", rooms=2)
    tenant, request, subject, tokens, store = (
        one.tenant,
        one.request,
        one.subject,
        one.tokens,
        one.store,
    )
    bound, limit, catalog = one.reserved, 2 * one.reserved, CATALOG

    class SettleFails:
        """The budgets as the reaper sees them while Redis errors on its settle."""

        engine = store.engine

        async def settle_event(
            self, event: LedgerEvent, *, final: bool = True, alerts: bool = True
        ) -> Settlement:
            raise ConnectionError("redis away for a moment")

    answers = PaidAnswers(redis_client, broker, catalog, lambda: "test", lease_s=30,
                          answer_ttl_s=60, budgets=SettleFails())  # fmt: skip
    ctx = RequestContext(request=request)
    try:  # the replica died
        async with lapsed_call(answers, ctx, redis_client, model=MODEL, input_tokens=tokens):
            assert await answers.reap() == 1  # booked and published; its settle failed
    finally:
        await answers.close()
    event = await _ledger_event(broker, tenant)
    assert not settled_by_router(event) and event.reserved_by == request.id
    # The redelivery reserves before the ledger consumer reaches the event: HELD in full.
    assert (await store.reserve(request.id, subject, bound)).code is Code.HELD
    await LedgerView(redis_client, store).settle_applied([event], [True])  # the ledger
    other = make_request(tenant=tenant, agent="listing")
    if (await store.reserve(other.id, subject_of(other), bound)).holds:
        await store.settle(other.id, subject_of(other), cost=bound, messages=0, at_ms=now_ms())
    # The redelivery's own call, paid, settled at its bound.
    await store.settle(request.id, subject, cost=bound, messages=0, at_ms=now_ms())
    spent, _ = await store.counter(day_counter(f"tenant:{tenant}"))
    assert spent <= limit, f"{spent - limit} micro-USD over (bound {bound}, limit {limit})"


# --- 2. A lost call charges a user's message, and its request charges it again --------------


async def test_a_lost_call_and_its_redelivery_stay_within_the_users_message_quota(
    redis_client: aioredis.Redis,
) -> None:
    """ann may send one paid message a day. Her request reserves that message; its call is
    lost and booked (a paid call of a user: settle_event charges a message for it too); the
    redelivery finds the reservation HELD, whose message is still held, so RESERVE checks
    nothing; its answer settles another message: 2 messages against a quota of 1."""
    store = await make_store(redis_client, [tenant_budget(10**9)],
                             tiers=[TierQuota(tier="free", messages=1)])  # fmt: skip
    request = msgspec.structs.replace(make_request(tenant="acme", agent="copy"),
                                      tags={"user": "ann"})  # fmt: skip
    subject = subject_of(request)
    assert (await store.reserve(request.id, subject, 400)).code is Code.RESERVED
    lost = lost_event(request, f"{request.id}-call", "sim", MODEL, 400, True, "test")
    await store.settle_event(lost, final=False)  # the reaper books the lost call
    users = f"user:{subject.tenant}:ann"  # the user's message counter
    quota = f"{users}:{period_key(BudgetPeriod.DAY, now_ms())}"
    again = await store.reserve(request.id, subject, 400)  # the redelivery
    if again.holds:
        await store.settle(request.id, subject, cost=100, messages=1, at_ms=now_ms())
    spent, _ = await store.counter(quota)
    assert spent <= 1, f"{spent} messages charged for one, quota 1 (redelivery {again.code!r})"


async def test_a_billed_failure_and_its_fallback_stay_within_the_users_message_quota(
    redis_client: aioredis.Redis,
) -> None:
    """One delivery, no redelivery: the first call's answer is unusable (billed), booked at
    once as a lost call (a message charged), then dispatch falls back (room_for grows only
    the money counters) and the request settles its answer (a message again)."""
    store = await make_store(redis_client, [tenant_budget(10**9)],
                             tiers=[TierQuota(tier="free", messages=1)])  # fmt: skip
    request = msgspec.structs.replace(make_request(tenant="acme", agent="copy"),
                                      tags={"user": "bob"})  # fmt: skip
    subject = subject_of(request)
    assert (await store.reserve(request.id, subject, 400)).code is Code.RESERVED
    unusable = lost_event(request, f"{request.id}-call", "sim", MODEL, 400, True, "test")
    await store.settle_event(unusable, final=False)  # _book_now's reap
    assert (await store.extend(request.id, subject, 400)).holds  # room_for the fallback
    await store.settle(request.id, subject, cost=100, messages=1, at_ms=now_ms())
    quota = f"user:{subject.tenant}:bob:{period_key(BudgetPeriod.DAY, now_ms())}"
    spent, _ = await store.counter(quota)
    assert spent <= 1, f"{spent} messages charged for one user message, quota 1"


async def test_an_unusable_answer_and_its_fallback_charge_one_user_message_end_to_end(
    sims: dict[str, SimulatedProvider], redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """The billed-failure path through the real budget stage and dispatch: provider a answers
    200 with a body that is not JSON (booked at once, with a message for the user), b answers
    as the fallback and the stage settles it (another message). Quota: 1 message a day."""
    tenant = f"quota{uuid.uuid4().hex[:8]}"
    request = msgspec.structs.replace(make_request(tenant=tenant, agent="listing"),
                                      tags={"user": "cy"})  # fmt: skip
    bound = max_request_cost(request, CATALOG.get(SPENT_MODEL), EngineSettings().input_margin,
                             estimate=estimate_input_tokens(request))  # fmt: skip
    limit = 3 * bound
    budget = BudgetSpec(name=f"{tenant}-daily", scope=BudgetScope.TENANT,
                        period=BudgetPeriod.DAY, limit_micro_usd=limit, tenant=tenant)  # fmt: skip
    store = await make_store(redis_client, [budget], tiers=[TierQuota(tier="free", messages=1)])
    settings = settings_for(["a", "b"])
    registry = registry_of(settings, sims)
    await sims["a"].set_faults(Faults(malformed_json=1.0))
    paid = PaidAnswers(redis_client, broker, CATALOG, lambda: "test", lease_s=30,
                       answer_ttl_s=60, budgets=store)  # fmt: skip
    tracer = trace.get_tracer("test")
    dispatcher = Dispatcher(registry, CATALOG, "gpt-4o", tracer,
                            health=dispatch_health(settings, redis_client), paid=paid)  # fmt: skip
    stages: list[Stage] = [
        FixedRoute("a", (Fallback(model=SPENT_MODEL, provider="b"),)),
        BudgetStage(store, CATALOG, lambda model: "a"),
    ]
    handler: Handler = compose(stages, dispatcher, tracer)
    try:
        got = await handler(RequestContext(request=request))
    finally:
        await paid.close()
        await registry.close()
    assert isinstance(got, LlmResult) and got.ok and got.provider == "b", got
    quota = f"user:{name_token(tenant)}:cy:{period_key(BudgetPeriod.DAY, now_ms())}"
    spent, _ = await store.counter(quota)
    assert spent <= 1, f"{spent} messages charged for one answered user message, quota 1"


# --- 3. A call booked by a reaper, then failed unbilled, is not noted on its request --------


async def test_a_call_booked_by_a_reaper_then_failed_keeps_its_room_for_the_fallback(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """The replica's loop stalls past the call's lease: a reaper books the call at its bound
    B and (reserved_by) takes B off the request's reservation. Then the call fails without an
    answer (a timeout: not billed). _call_under_lease drops the marker, finds it gone, but
    notes nothing: the request still believes it holds its whole reservation, so dispatch
    makes the fallback with no room_for check (spent == 0), while Redis gave that room away."""
    one = await one_reservation(redis_client, broker, "lapse", rooms=2)
    tenant, request, subject, tokens, store = (
        one.tenant,
        one.request,
        one.subject,
        one.tokens,
        one.store,
    )
    bound, limit, answers = one.reserved, 2 * one.reserved, one.answers

    async def top_up(extra: int) -> bool:  # as the budget stage wires it
        grown = await store.extend(request.id, subject, extra)
        if grown.holds:
            ctx.reserved_micro_usd = (ctx.reserved_micro_usd or 0) + extra
        return grown.holds

    ctx = RequestContext(request=request, reserved_micro_usd=bound, top_up=top_up)
    started, reaped = asyncio.Event(), asyncio.Event()

    async def stalls_then_times_out() -> Completion:
        started.set()
        await reaped.wait()
        raise ProviderCallError.transient("a", MODEL, "timed out", timed_out=True)

    call = asyncio.create_task(
        answers.call(
            ctx,
            provider="a",
            model=MODEL,
            input_tokens=tokens,
            simulated=True,
            make=stalls_then_times_out,
        )  # fmt: skip
    )
    try:
        await started.wait()
        [lease] = await redis_client.zrange(LEASES, 0, -1)
        assert isinstance(lease, bytes)
        await redis_client.zadd(LEASES, {lease: 0})  # the lease lapsed (stalled loop)
        assert await answers.reap() == 1  # booked at B, B taken off the reservation
        reaped.set()
        failed = await asyncio.gather(call, return_exceptions=True)
        assert isinstance(failed[0], ProviderCallError)
    finally:
        await answers.close()
    assert await store.counter(day_counter(f"tenant:{tenant}")) == (bound, 0)
    # Dispatch's check before the fallback (router/stages/dispatch.py _first_answer).
    spent = ctx.committed_micro_usd() + ctx.booked_micro_usd
    fallback_made = not spent or await ctx.room_for(bound)
    other = make_request(tenant=tenant, agent="listing")  # another request meanwhile
    if (await store.reserve(other.id, subject_of(other), bound)).holds:
        await store.settle(other.id, subject_of(other), cost=bound, messages=0, at_ms=now_ms())
    if fallback_made:  # the fallback answers at its bound; the stage settles it
        await store.settle(request.id, subject, cost=bound, messages=0, at_ms=now_ms())
    total, _ = await store.counter(day_counter(f"tenant:{tenant}"))
    assert total <= limit, f"{total - limit} micro-USD over (booked here {ctx.booked_micro_usd})"
    assert ctx.booked_micro_usd == bound, "the reaper's booking was not noted on the request"


async def test_a_redelivery_books_its_earlier_deliverys_lost_call_before_it_reserves(
    redis_client: aioredis.Redis, broker: NatsBroker
) -> None:
    """The redelivery of a request whose replica died mid-call reaches a replica whose reaper
    has not run yet: the budget stage books the lapsed call first (book_lost_calls), so its
    give-back lands before the redelivery takes the reservation over, and the reservation is
    grown back to hold the redelivery's own call beside the booked one."""
    one = await one_reservation(redis_client, broker, "redo", rooms=3)  # delivery 1 reserved
    tenant, request, tokens, store = one.tenant, one.request, one.tokens, one.store
    bound, answers = one.reserved, one.answers
    counter = day_counter(f"tenant:{tenant}")
    first = RequestContext(request=request, reserved_micro_usd=bound)
    seen: list[tuple[int, int]] = []

    async def answer(ctx: RequestContext) -> LlmResult:
        seen.append(await store.counter(counter))
        return LlmResult(request_id=request.id, tenant=tenant, agent=request.agent,
                         status=Status.OK, content="{}", model=MODEL, provider="sim",
                         cost_micro_usd=bound, baseline_micro_usd=bound)  # fmt: skip

    stages: list[Stage] = [FixedRoute("sim", model=MODEL),
                           BudgetStage(store, CATALOG, lambda model: "sim",
                                       book_lost_calls=answers.reap)]  # fmt: skip
    ctx = RequestContext(request=request, delivery=2, defer_after=True)
    try:  # delivery 1's replica died mid-call: its lease lapsed, no reaper ran yet
        async with lapsed_call(answers, first, redis_client, model=MODEL, input_tokens=tokens):
            result = await compose(stages, answer, trace.get_tracer("t"))(ctx)
            await ctx.run_after()
    finally:
        await answers.close()
    assert result.ok
    assert seen == [(bound, bound)], "the lost call booked, the reservation grown back first"
    assert await store.counter(counter) == (2 * bound, 0)
