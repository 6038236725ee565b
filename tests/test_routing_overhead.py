"""Routing's own calls off the response path: shadow evaluation of a second candidate and
judge grading, each booked as routing's lever cost (overhead_of="routing") and each feeding
what routing learns from (the quality counts, the graded quality).

The rest of the pipeline is a plain handler here (what a provider would answer); Redis is
the session's real server.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import redis.asyncio as aioredis

from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.llm_client import LlmClient
from bus.messages import ErrorCode, LedgerEvent, Lever, LlmResult, Status, Usage
from bus.settings import Settings
from bus.settings_sections import RoutingSettings
from cost_ledger.catalog import PriceCatalog
from cost_ledger.lever_split import LeverSplit, lever_split
from flipsync.stack import Service, start_stack
from router.context import Fallback, RequestContext, Route
from router.routing.grades import GradeStore, grade_key
from router.routing.quality_store import QualityStore, quality_estimates
from router.stages.judge import Judges
from router.stages.off_path import ROUTING, chosen
from router.stages.route_shadow import RouteShadows
from tests.chaos_scenario import ledger_events
from tests.helpers import eventually, make_request

SERVED = "gpt-4o-mini"
SECOND = "gpt-4.1-mini"
JUDGE = "gpt-4o"


def answer(
    ctx: RequestContext, *, ok: bool = True, cost: int = 120, parsed: object = None
) -> LlmResult:
    """What the rest of the pipeline answers on ctx's route."""
    assert ctx.route is not None
    request = ctx.request
    return LlmResult(
        request_id=request.id, tenant=request.tenant, agent=request.agent,
        status=Status.OK if ok else Status.ERROR,
        error_code=None if ok else ErrorCode.SCHEMA_INVALID,
        reason="" if ok else "answer does not match the schema",
        content='{"title": "x"}', parsed=parsed if parsed is not None else {"title": "x"},
        model=ctx.route.model, provider="p", usage=Usage(input_tokens=40, output_tokens=10),
        cost_micro_usd=cost, baseline_micro_usd=900, lever=Lever.ROUTED,
    )  # fmt: skip


def served_ctx() -> tuple[RequestContext, LlmResult]:
    """A request routed to SERVED with SECOND as its next-best model, and its answer."""
    ctx = RequestContext(request=make_request(tenant="t-over"))
    ctx.route = Route(
        model=SERVED, provider="p", reason="policy",
        fallbacks=(Fallback(model=SERVED, provider="q"), Fallback(model=SECOND, provider="p")),
    )  # fmt: skip
    return ctx, answer(ctx)


async def test_shadow_evaluation_asks_the_second_model_books_routing_and_teaches(
    redis_client: aioredis.Redis,
) -> None:
    booked: list[LedgerEvent] = []

    async def book(event: LedgerEvent) -> None:
        booked.append(event)

    asked: list[RequestContext] = []
    valid = {"now": False}

    async def rest(ctx: RequestContext) -> LlmResult:
        asked.append(ctx)
        return answer(ctx, ok=valid["now"], cost=300)

    store = QualityStore(redis_client)
    shadows = RouteShadows(share=1.0, book=book, catalog_version=lambda: "v1", quality=store)
    ctx, served = served_ctx()
    assert shadows.start(ctx, served, rest)
    await shadows.drain()

    # The second candidate was asked, under its own id, uncached and without the session.
    assert [c.route.model for c in asked if c.route] == [SECOND]
    assert asked[0].request.id == ctx.request.id + "-route-shadow"
    (event,) = booked
    assert event.overhead_of == ROUTING and event.model == SECOND
    assert event.cost_micro_usd == 300 and event.baseline_micro_usd == 0
    split = LeverSplit()
    split.add(event)
    assert split.lever_cost == {ROUTING: 300} and split.net == {"routed": -300}  # its lever
    prior = PriceCatalog.load().get(SECOND).quality
    failed = (await quality_estimates(redis_client))[(SECOND, "text_generation")]
    assert failed.mean < prior  # its schema-invalid answer counted against it

    valid["now"] = True
    for _ in range(3):
        ctx, served = served_ctx()
        assert shadows.start(ctx, served, rest)
    await shadows.drain()
    assert len(booked) == 4
    passed = (await quality_estimates(redis_client))[(SECOND, "text_generation")]
    assert passed.mean > failed.mean  # valid answers count for it


async def test_shadow_evaluation_skips_what_it_cannot_judge(redis_client: aioredis.Redis) -> None:
    async def book(event: LedgerEvent) -> None:
        raise AssertionError("nothing is booked")

    async def rest(ctx: RequestContext) -> LlmResult:
        raise AssertionError("nothing is asked")

    store = QualityStore(redis_client)
    none = RouteShadows(share=0.0, book=book, catalog_version=lambda: "v1", quality=store)
    ctx, served = served_ctx()
    assert not none.start(ctx, served, rest)
    every = RouteShadows(share=1.0, book=book, catalog_version=lambda: "v1", quality=store)
    failed = answer(ctx, ok=False)
    assert not every.start(ctx, failed, rest)  # the served answer itself failed
    free_text = RequestContext(request=make_request(schema=None), route=ctx.route)
    assert not every.start(free_text, answer(free_text), rest)  # nothing to validate
    alone = RequestContext(request=make_request(), route=Route(model=SERVED, provider="p",
                                                               reason="only one"))  # fmt: skip
    assert not every.start(alone, answer(alone), rest)  # no second model
    # The share is a ceiling chosen by a hash of the id: about 2% of ids are chosen.
    ids = [uuid.UUID(int=i).hex for i in range(5000)]
    assert 0.01 < sum(chosen(i, 0.02, "route-shadow") for i in ids) / len(ids) < 0.03


async def test_a_judge_scores_answers_into_the_graded_quality_and_books_routing(
    redis_client: aioredis.Redis,
) -> None:
    booked: list[LedgerEvent] = []

    async def book(event: LedgerEvent) -> None:
        booked.append(event)

    asked: list[RequestContext] = []

    async def rest(ctx: RequestContext) -> LlmResult:
        asked.append(ctx)
        return answer(ctx, cost=500, parsed={"score": 0.25, "reason": "title too vague"})

    judges = Judges(
        models={"text_generation": JUDGE, "extraction": "not-offered"},
        providers={JUDGE: "p", SERVED: "p"},
        share=1.0,
        grades=GradeStore(redis_client),
        book=book,
        catalog_version=lambda: "v1",
    )
    ctx, served = served_ctx()
    assert judges.start(ctx, served, rest)
    await judges.drain()
    (judged,) = asked
    assert judged.route is not None and judged.route.model == JUDGE
    assert judged.request.id == ctx.request.id + "-judge"
    assert judged.request.output_schema is not None
    question = judged.request.messages[-1].content
    assert isinstance(question, str) and "Write a title" in question and '"title"' in question
    (event,) = booked
    assert event.overhead_of == ROUTING and event.cost_micro_usd == 500
    assert event.baseline_micro_usd == 0 and event.model == JUDGE
    # The judge's score is a grade of the answering model, for its agent.
    grades = await redis_client.hgetall(grade_key("t-over", ctx.request.agent))
    assert float(grades[f"pair:text_generation|{SERVED}".encode()]) == 0.25
    assert float(grades[b"avg"]) == 0.25

    # A task type with no judge (or whose judge no provider offers) is not judged.
    extraction = msgspec.structs.replace(make_request(tenant="t-over"), task_type="extraction")
    other = RequestContext(request=extraction, route=ctx.route)
    assert not judges.start(other, answer(other), rest)


async def test_a_judgement_without_a_score_records_no_grade(redis_client: aioredis.Redis) -> None:
    booked: list[LedgerEvent] = []

    async def book(event: LedgerEvent) -> None:
        booked.append(event)

    async def rest(ctx: RequestContext) -> LlmResult:
        return answer(ctx, cost=50, parsed={"reason": "no score"})

    judges = Judges(models={"text_generation": JUDGE}, providers={JUDGE: "p"}, share=1.0,
                    grades=GradeStore(redis_client), book=book,
                    catalog_version=lambda: "v1")  # fmt: skip
    ctx, served = served_ctx()
    assert judges.start(ctx, served, rest)
    await judges.drain()
    assert [e.cost_micro_usd for e in booked] == [50]  # paid for all the same
    assert not await redis_client.exists(grade_key("t-over", ctx.request.agent))


async def test_in_the_stack_shadow_and_judge_calls_are_booked_as_routing_lever_cost() -> None:
    settings = Settings(
        sim_latency_ms=0,
        pack_max_items=1,
        routing=RoutingSettings(
            shadow_share=1.0,
            judge_models={"text_generation": JUDGE},
            judge_share=1.0,
            cascade_task_types=frozenset(),
            explore_share=0.0,
        ),
    )
    stack = await start_stack(settings, {Service.PROVIDER, Service.ROUTER, Service.LEDGER})
    try:
        tenant = f"t{uuid.uuid4().hex[:8]}"
        req = make_request(tenant=tenant)
        result = await LlmClient(stack.broker).request(req, timeout_s=20)
        assert result.ok, result.reason
        js = stack.broker.connection.jetstream()

        expected = {req.id + "-route-shadow", req.id + "-judge"}

        async def booked() -> bool:
            # Shadow and judge are booked off the answer's path, each on its own time:
            # wait for both events before looking at what the ledger made of them.
            events = await ledger_events(stack.broker, tenant)
            return {e.request_id for e in events if e.overhead_of} >= expected

        await eventually(booked, timeout_s=20)
        events = await ledger_events(stack.broker, tenant)
        own = {e.request_id: e for e in events if e.overhead_of}
        assert set(own) == expected
        assert own[req.id + "-judge"].model == JUDGE
        assert own[req.id + "-route-shadow"].model != result.model
        assert all(e.overhead_of == ROUTING and e.baseline_micro_usd == 0 for e in own.values())
        paid = sum(e.cost_micro_usd for e in own.values())

        async def split_counts_both() -> bool:
            split = await lever_split(js, {tenant})
            return split.lever_cost.get(ROUTING, 0) == paid and len(split.gross) > 0

        await eventually(split_counts_both, timeout_s=20)
    finally:
        await stack.stop()


async def test_a_shadow_call_under_way_at_stop_ends_and_is_booked_first(
    nats_server: EmbeddedNats, redis_server: EmbeddedRedis
) -> None:
    # The session's servers outlive the stack, so what it booked can be read after its stop.
    settings = Settings(
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        sim_latency_ms=400,  # the shadow call is still at the provider when stop() begins
        pack_max_items=1,
        routing=RoutingSettings(
            shadow_share=1.0, cascade_task_types=frozenset(), explore_share=0.0
        ),
    )
    before = asyncio.all_tasks()
    stack = await start_stack(settings, {Service.PROVIDER, Service.ROUTER})
    tenant = f"t{uuid.uuid4().hex[:8]}"
    req = make_request(tenant=tenant)
    try:
        result = await LlmClient(stack.broker).request(req, timeout_s=20)
        assert result.ok, result.reason
    finally:
        await stack.stop()
    # Nothing the router started runs on (a lost-call reaper left running reconnected to
    # Redis after the stop, and its connection was never closed).
    left = [t for t in asyncio.all_tasks() - before if "/router/" in _code_of(t)]
    assert not left, left
    broker = make_broker(nats_server.url)
    await broker.connect()
    try:
        events = await ledger_events(broker, tenant)
    finally:
        await broker.stop()
    shadow = [e for e in events if e.request_id == req.id + "-route-shadow"]
    assert len(shadow) == 1 and shadow[0].overhead_of == ROUTING
    assert shadow[0].paid_call and shadow[0].cost_micro_usd > 0


def _code_of(task: asyncio.Task[object]) -> str:
    """The file of the coroutine a task runs."""
    code = getattr(task.get_coro(), "cr_code", None)
    return code.co_filename if code is not None else ""
