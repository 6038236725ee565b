"""Every paid call is booked: failed answers, answers kept for a redelivery, lost calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from bus.llm_client import LlmClient
from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    ErrorCode,
    Lever,
    LlmResult,
    Usage,
    error_result,
)
from flipsync.stack import Stack
from router.call_markers import EVENTS, LEASES
from router.context import PaidCall, RequestContext
from router.paid_answers import PaidAnswers
from router.paid_calls import booked
from router.providers.client import Completion
from simulator.config import Faults
from tests.helpers import (
    eventually,
    lapsed_call,
    make_request,
    pipeline_quiet,
    put_budgets,
    router_stack,
)

_MADE: list[PaidAnswers] = []
"""The PaidAnswers the tests made: each reaps every half lease until closed."""


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router and ledger, embedded."""
    async with router_stack(provider_max_retries=0) as running:
        yield running
        # Stop the tests' reapers before the stack closes its Redis client: one reaping
        # after that opens a connection again, which is still open when the session ends.
        while _MADE:
            await _MADE.pop().close()


def _answers(stack: Stack, lease_s: float = 30.0) -> PaidAnswers:
    assert stack.catalog is not None
    answers = PaidAnswers(
        stack.redis,
        stack.broker,
        stack.catalog,
        lambda: "test",
        lease_s=lease_s,
        answer_ttl_s=60,
    )
    _MADE.append(answers)
    return answers


async def test_invalid_answers_are_all_booked_within_budget(stack: Stack) -> None:
    assert stack.sim is not None
    client = LlmClient(stack.broker)
    sample = await client.request(make_request(agent="listing"), timeout_s=10)
    assert sample.ok and sample.cost_micro_usd > 0
    tenant = f"inv{uuid.uuid4().hex[:8]}"
    limit = sample.cost_micro_usd * 8
    change = BudgetChange(
        change_id=uuid.uuid4().hex,
        set_budgets=[
            BudgetSpec(
                name=f"{tenant}-day",
                scope=BudgetScope.TENANT,
                period=BudgetPeriod.DAY,
                limit_micro_usd=limit,
                tenant=tenant,
            )  # fmt: skip
        ],
    )
    await put_budgets(stack, change)
    await stack.sim.set_faults(Faults(schema_invalid=1.0))
    try:
        calls = (await stack.sim.stats()).calls
        requests = [
            make_request(tenant=tenant, agent="listing", text=f"Mug {i}") for i in range(30)
        ]
        results = await asyncio.gather(*(client.request(r, timeout_s=60) for r in requests))
        paid = (await stack.sim.stats()).calls - calls
    finally:
        await stack.sim.set_faults(Faults())
    await pipeline_quiet(stack, timeout_s=60)
    codes = {r.error_code for r in results}
    assert ErrorCode.SCHEMA_INVALID in codes and ErrorCode.OVER_BUDGET in codes
    totals = await stack.aggregates.totals(tenant)
    assert paid > 0 and totals.paid_calls == paid  # every provider call is in the ledger
    assert totals.spend_micro_usd == sum(r.cost_micro_usd for r in results)
    assert totals.spend_micro_usd <= limit


async def test_an_answer_is_kept_for_a_redelivery(stack: Stack) -> None:
    answers = _answers(stack)
    request = make_request(agent="listing")
    ctx = RequestContext(request=request)
    completion = Completion(content='{"title": "Teal mug"}', model="gpt-4o-mini-2024",
                            usage=Usage(input_tokens=40, output_tokens=9), latency_ms=5.0,
                            finish_reason="stop")  # fmt: skip

    async def make() -> Completion:
        return completion

    got = await answers.call(ctx, provider="sim", model="gpt-4o-mini", input_tokens=40,
                             simulated=True, make=make)  # fmt: skip
    assert got == completion
    assert len(ctx.paid) == 1 and ctx.paid[0].cost_micro_usd > 0
    kept = await answers.kept(request, "gpt-4o-mini")
    assert kept is not None and kept.completion() == completion
    assert await answers.kept(request, "gpt-4o") is None  # kept per model
    assert await stack.redis.zcard(LEASES) == 0 and await stack.redis.hlen(EVENTS) == 0


async def test_a_call_whose_replica_died_is_booked_at_its_maximum(stack: Stack) -> None:
    # The default 30 s lease: the test expires it itself (below). A short one would also
    # lapse, be renewed or be reaped in the background (every half lease) on its own when
    # the test process stalls, racing the freeze and the reap the test makes.
    answers = _answers(stack)
    tenant = f"lost{uuid.uuid4().hex[:8]}"
    request = make_request(tenant=tenant, agent="listing")
    ctx = RequestContext(request=request)
    # A replica that dies stops renewing its lease: stand in for it by freezing this one.
    async with lapsed_call(answers, ctx, stack.redis, input_tokens=40):
        booked_here = await answers.reap()
    assert booked_here == 1

    async def in_ledger() -> bool:
        return (await stack.aggregates.totals(tenant)).paid_calls == 1

    await eventually(in_ledger)
    totals = await stack.aggregates.totals(tenant)
    assert totals.spend_micro_usd >= 1  # its maximum cost: never below what it may have cost


def test_a_failure_after_a_paid_answer_carries_its_cost() -> None:
    ctx = RequestContext(request=make_request())
    failed = error_result("r1", "t1", "a", ErrorCode.INTERNAL, "a bug")
    assert booked(ctx, failed) == failed  # nothing paid: nothing to book
    ctx.paid.append(PaidCall(model="gpt-4o-mini", provider="sim",
                             usage=Usage(input_tokens=10, output_tokens=5),
                             cost_micro_usd=7, simulated=True))  # fmt: skip
    charged = booked(ctx, failed)
    assert charged.cost_micro_usd == 7 and charged.lever is Lever.ROUTED
    assert charged.error_code is ErrorCode.INTERNAL


async def test_only_a_claimed_before_id_looks_for_a_kept_answer(stack: Stack) -> None:
    """The kept-answer lookup (a round trip) runs only where it can find something: an id
    claimed by an earlier delivery, or a model this delivery was already answered by."""
    from router.stages.dispatch import answer_may_be_kept
    from router.stages.ids import RequestIdStage

    ids = RequestIdStage(stack.redis)
    seen: list[bool] = []

    async def rest(ctx: RequestContext) -> LlmResult:
        seen.append(ctx.new_id)
        r = ctx.request
        return error_result(r.id, r.tenant, r.agent, ErrorCode.INTERNAL, "stop here")

    request = make_request(agent="listing")
    first, again = RequestContext(request=request), RequestContext(request=request, delivery=2)
    await ids(first, rest)
    await ids(again, rest)
    assert seen == [True, False]
    assert not answer_may_be_kept(first, "gpt-4o-mini")
    assert answer_may_be_kept(again, "gpt-4o-mini")  # a redelivery: an answer may be kept
    first.paid.append(PaidCall(model="gpt-4o-mini", provider="sim", usage=Usage(),
                               cost_micro_usd=1, simulated=True))  # fmt: skip
    assert answer_may_be_kept(first, "gpt-4o-mini") and not answer_may_be_kept(first, "gpt-4o")


async def test_a_live_call_longer_than_its_lease_is_not_booked_as_lost(stack: Stack) -> None:
    """The heartbeat renews a running call's lease: the reaper books only dead replicas'."""
    # The heartbeat renews every 0.5 s: a loaded CI machine may stall this process for a few
    # hundred milliseconds (a 0.3 s lease once expired there), never for a whole second.
    answers = _answers(stack, lease_s=1.5)
    ctx = RequestContext(request=make_request(agent="listing"))
    completion = Completion(content="ok", model="gpt-4o-mini", usage=Usage(output_tokens=1),
                            latency_ms=1.0, finish_reason="stop")  # fmt: skip

    async def slow() -> Completion:
        for _ in range(5):  # 3.5 s, more than two leases, reaped all along (also in the background)
            await asyncio.sleep(0.7)
            assert await answers.reap() == 0
            assert await stack.redis.zcard(LEASES) == 1  # still held, not booked as lost
        return completion

    got = await answers.call(ctx, provider="sim", model="gpt-4o-mini", input_tokens=40,
                             simulated=True, make=slow)  # fmt: skip
    assert got == completion
    assert await stack.redis.zcard(LEASES) == 0 and await stack.redis.hlen(EVENTS) == 0


async def test_a_refused_permit_drops_the_lease_and_sends_nothing(stack: Stack) -> None:
    """Dispatch asks the circuit for a permit beside the paid-call lease: when the permit is
    refused, nothing is sent, the lease goes, and nothing is booked as lost."""
    import functools

    from router.health.breaker import BreakerState
    from router.health.store import Permit
    from router.stages.dispatch import CircuitOpenError, when_permitted

    answers = _answers(stack)
    ctx = RequestContext(request=make_request(agent="listing"))
    refused: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
    refused.set_result(Permit(allowed=False, state=BreakerState.OPEN, retry_in_s=2.0))
    sent: list[str] = []

    async def send() -> Completion:
        sent.append("sent")
        raise AssertionError("a refused call was sent")

    make = functools.partial(when_permitted, refused, "sim/gpt-4o-mini", send)
    with pytest.raises(CircuitOpenError, match="sim/gpt-4o-mini: circuit open"):
        await answers.call(ctx, provider="sim", model="gpt-4o-mini", input_tokens=40,
                           simulated=True, make=make)  # fmt: skip
    assert not sent and not ctx.paid
    assert await stack.redis.zcard(LEASES) == 0 and await stack.redis.hlen(EVENTS) == 0
