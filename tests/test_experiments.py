"""Experiments: arms by rollout, per-arm sums from the ledger and the quality signals, a
report with confidence intervals that names the right winner, refuses to name one when the
difference is not significant, and a one-command promotion."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from scipy import stats as sp

from bus import subjects
from bus.codec import decode, encode
from bus.consumers import is_permanent
from bus.llm_client import LlmClient
from bus.messages import DeadLetter, LedgerEvent, Lever, LlmResult, QualitySignal, Usage
from cost_ledger.keys import SEEN_TTL_S
from flipsync.stack import Stack
from optimizer import keys
from optimizer.arm_stats import DLQ_LEDGER, ArmStats, ArmSums, replay_arm_event
from optimizer.errors import ExperimentError
from optimizer.experiments import Arm, Experiment, ExperimentStore, Metric, Status
from optimizer.flag_store import FlagStore, publish_change
from optimizer.report import arm_result, build_report, decide, promote, quality_problem, render
from optimizer.stats import mean_estimate, welch_p, wilson
from tests.helpers import eventually, make_request, router_stack

QUALITY = {"gpt-4o-mini": 0.95, "gpt-4.1-nano": 0.60}
"""The known share of valid answers of each simulated model in this test."""


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the router and the ledger (which runs the arm consumers)."""
    async with router_stack() as running:
        yield running


def sums(n: int, valid: int, cost: int = 100, latency: int = 50) -> ArmSums:
    """Sums of n requests of fixed cost and latency, valid of them valid."""
    return ArmSums(
        n=n,
        cost=n * cost,
        cost2=n * cost * cost + n,  # a little spread
        lat=n * latency,
        lat2=n * latency * latency + 4 * n,
        judged=n,
        valid=valid,
    )


def test_statistics_match_scipy() -> None:
    values = [3.0, 5.0, 4.0, 8.0, 6.0, 5.5]
    other = [7.0, 9.0, 8.5, 10.0, 7.5]
    a = mean_estimate(sum(values), sum(v * v for v in values), len(values))
    b = mean_estimate(sum(other), sum(v * v for v in other), len(other))
    assert a.value == pytest.approx(sp.tmean(values))
    expected = sp.ttest_ind(values, other, equal_var=False).pvalue
    assert welch_p(a, b) == pytest.approx(expected, rel=1e-9)
    interval = wilson(81, 100)  # the textbook Wilson interval of 81/100
    assert (interval.low, interval.high) == pytest.approx((0.7222, 0.8749), abs=1e-3)


def test_the_report_names_the_better_arm_and_refuses_a_close_call() -> None:
    experiment = Experiment(
        name="q",
        metric=Metric.QUALITY,
        min_samples=300,
        arms=[Arm(name="a", percent=50), Arm(name="b", percent=50)],
    )
    clear = decide(
        experiment, [arm_result("a", sums(400, 380), 0.05), arm_result("b", sums(400, 300), 0.05)]
    )
    assert clear.ready and clear.winner == "a", clear.verdict
    close = decide(
        experiment, [arm_result("a", sums(400, 362), 0.05), arm_result("b", sums(400, 356), 0.05)]
    )
    assert close.ready and close.winner is None and close.leader == "a"
    assert "not significant" in close.verdict
    early = decide(
        experiment, [arm_result("a", sums(100, 95), 0.05), arm_result("b", sums(100, 60), 0.05)]
    )
    assert not early.ready and early.winner is None and "waiting for samples" in early.verdict
    assert "a leads so far" in early.verdict
    # Found by a newcomer: a report with no sample at all named a leader.
    empty = decide(
        experiment, [arm_result("a", sums(0, 0), 0.05), arm_result("b", sums(0, 0), 0.05)]
    )
    assert not empty.ready and "no arm has a sample yet" in empty.verdict, empty.verdict
    assert "leads" not in empty.verdict


async def run_arm_traffic(stack: Stack, experiment: Experiment, requests: int, seed: int) -> None:
    """Send requests in the experiment's scope, and answer each as an agent's checks would:
    valid with the known quality of the model that served it."""
    client = LlmClient(stack.broker)
    limit = asyncio.Semaphore(32)
    number: dict[str, int] = {}

    async def one(i: int) -> LlmResult:
        async with limit:
            text = f"Write a title for product {seed}-{i}, a stoneware mug."
            request = make_request(tenant=experiment.tenant, agent="listing", text=text)
            number[request.id] = i
            return await client.request(request, timeout_s=30)

    # A change applies once the router reloaded its flags (router.flags.live): requests it
    # answered before that are in no arm and do not count, so more are sent in their place.
    results: list[LlmResult] = []
    sent = 0
    while len(results) < requests and sent < 2 * requests:
        wave = range(sent, sent + requests - len(results))
        sent += len(wave)
        for result in await asyncio.gather(*(one(i) for i in wave)):
            assert result.ok, result.reason
            if result.arm is not None:
                results.append(result)
    assert len(results) == requests, f"{sent - len(results)} requests answered in no arm"
    for result in results:
        signal = QualitySignal(
            request_id=result.request_id,
            tenant=result.tenant,
            agent=result.agent,
            task_type="text_generation",
            model=result.model,
            # Each prompt's verdict is its own draw, and its arm follows its fingerprint:
            # the run is the same whichever requests had to be sent again.
            valid=random.Random(f"{seed}-{number[result.request_id]}").random()
            < QUALITY[result.model],
        )
        await stack.broker.publish(
            encode(signal), subjects.quality(result.tenant), stream=subjects.STREAM_WORKFLOW
        )
    stats = ArmStats(stack.redis)

    async def all_judged() -> bool:
        judged = [(await stats.sums(experiment.name, a.name)).judged for a in experiment.arms]
        return sum(judged) == requests

    await eventually(all_judged, timeout_s=30)


def model_experiment(
    name: str, tenant: str, models: tuple[str, str], min_samples: int
) -> Experiment:
    """Two arms, one model each, half the tenant's traffic each, decided on quality."""
    return Experiment(
        name=name,
        tenant=tenant,
        metric=Metric.QUALITY,
        min_samples=min_samples,
        quality_floor=0.8,
        arms=[
            Arm(name="mini", percent=50, model=models[0]),
            Arm(name="nano", percent=50, model=models[1]),
        ],
    )


async def test_an_experiment_between_two_models_picks_the_better_one(stack: Stack) -> None:
    tenant = "epick"  # fixed (the module's own stack): arms follow the prompt's fingerprint
    store = ExperimentStore(stack.redis)
    experiment = model_experiment("pick", tenant, ("gpt-4o-mini", "gpt-4.1-nano"), 120)
    await publish_change(stack.broker.connection, await store.start(experiment))
    await run_arm_traffic(stack, experiment, 400, seed=1)
    stats = ArmStats(stack.redis)
    report = await build_report(store, stats, "pick")
    print(render(report))
    assert report.ready and report.winner == "mini", report.verdict
    mini = next(a for a in report.arms if a.name == "mini")
    assert mini.quality.low <= QUALITY["gpt-4o-mini"] <= mini.quality.high
    assert all(a.sums.n == a.sums.judged for a in report.arms)
    assert mini.cost.value > 0 and mini.latency.n == mini.sums.n

    _, change = await promote(store, stats, "pick")
    await publish_change(stack.broker.connection, change)
    rules = {rule.name: rule for rule in await FlagStore(stack.redis).rules()}
    assert rules["promoted:pick"].model == "gpt-4o-mini" and rules["promoted:pick"].percent == 100
    assert not any(name.startswith("exp:pick:") for name in rules)
    assert (await store.get("pick")).status is Status.PROMOTED
    with pytest.raises(ExperimentError, match="promoted, not running"):
        await promote(store, stats, "pick")


async def test_no_winner_is_called_when_the_difference_is_not_significant(stack: Stack) -> None:
    tenant = "nsame"  # fixed (the module's own stack): arms follow the prompt's fingerprint
    store = ExperimentStore(stack.redis)
    same = model_experiment("same", tenant, ("gpt-4o-mini", "gpt-4o-mini"), 60)
    await publish_change(stack.broker.connection, await store.start(same))
    await run_arm_traffic(stack, same, 160, seed=2)
    report = await build_report(store, ArmStats(stack.redis), "same")
    assert report.ready and report.winner is None, report.verdict
    with pytest.raises(ExperimentError, match="nothing to promote: no winner"):
        await promote(store, ArmStats(stack.redis), "same")
    assert (await store.get("same")).status is Status.RUNNING


def test_a_winner_under_the_quality_floor_is_not_promoted() -> None:
    experiment = Experiment(
        name="cheap",
        metric=Metric.COST_PER_VALID,
        min_samples=100,
        quality_floor=0.9,
        arms=[Arm(name="control", percent=50), Arm(name="short", percent=50)],
    )
    report = decide(
        experiment,
        [
            arm_result("control", sums(500, 480, cost=300), 0.05),
            arm_result("short", sums(500, 430, cost=150), 0.05),
        ],
    )
    assert report.winner == "short"  # half the cost per valid answer...
    problem = quality_problem(report, "short")
    assert problem is not None and "under the quality floor of 90.0%" in problem


async def test_a_bad_experiment_is_refused_with_a_reason(redis_client: aioredis.Redis) -> None:
    store = ExperimentStore(redis_client)
    one_arm = Experiment(name="x", arms=[Arm(name="a", percent=10)])
    with pytest.raises(ExperimentError, match="at least two arms"):
        await store.start(one_arm)
    too_much = Experiment(name="x", arms=[Arm(name="a", percent=60), Arm(name="b", percent=60)])
    with pytest.raises(ExperimentError, match="more than 100%"):
        await store.start(too_much)
    assert not await redis_client.exists(keys.EXPERIMENTS)


# --- the per-arm sums: once per event, never stuck on a bad event ---------------------------


def arm_event(event_id: str, request_id: str, arm: str, cost: int = 10) -> LedgerEvent:
    """A ledger event of one request in an arm, 40 ms long."""
    return LedgerEvent(
        event_id=event_id,
        request_id=request_id,
        tenant="t1",
        agent="listing",
        workflow_id="",
        task_type="text_generation",
        model="gpt-4o-mini",
        provider="simulated",
        usage=Usage(input_tokens=10, output_tokens=5),
        cost_micro_usd=cost,
        baseline_micro_usd=100,
        lever=Lever.ROUTED,
        catalog_version="test",
        paid_call=True,
        started_ms=1_000,
        finished_ms=1_040,
        arm=arm,
    )


def verdict(request_id: str, *, valid: bool) -> QualitySignal:
    """An agent's verdict on one request's answer."""
    return QualitySignal(
        request_id=request_id,
        tenant="t1",
        agent="listing",
        task_type="text_generation",
        model="gpt-4o-mini",
        valid=valid,
    )


async def test_each_event_counts_once_and_a_request_is_judged_once(
    redis_client: aioredis.Redis,
) -> None:
    stats = ArmStats(redis_client)
    await redis_client.hset(keys.EXPERIMENTS, "x", b"{}")  # an experiment runs: keep quality
    assert await stats.add_quality(verdict("r1", valid=True))  # before its ledger event
    assert await stats.add_event(arm_event("e1", "r1", "x/a"))
    assert not await stats.add_event(arm_event("e1", "r1", "x/a"))  # a redelivery
    assert not await replay_arm_event(redis_client, arm_event("e1", "r1", "x/a"))  # a rebuild
    assert await stats.add_event(arm_event("e2", "r1", "x/a", cost=30))  # the request's 2nd
    assert await stats.add_event(arm_event("e3", "r2", "x/a"))
    assert await stats.add_quality(verdict("r2", valid=False))  # after its ledger event
    assert not await stats.add_quality(verdict("r2", valid=True))  # a second verdict
    sums = await stats.sums("x", "a")
    assert (sums.n, sums.cost, sums.cost2) == (3, 50, 100 + 900 + 100)
    assert (sums.lat, sums.lat2) == (120, 3 * 1600)
    assert (sums.judged, sums.valid) == (2, 1)
    # Redis rounds TTL to the second: half a second of a stalled test process since the
    # marker was set reads one less.
    assert SEEN_TTL_S - 60 < await redis_client.ttl(keys.event_seen("e1")) <= SEEN_TTL_S
    assert await replay_arm_event(redis_client, arm_event("e4", "r3", "x/b"))
    assert (await stats.sums("x", "b")).n == 1


async def test_an_event_that_can_never_count_is_refused_as_permanent(
    redis_client: aioredis.Redis,
) -> None:
    stats = ArmStats(redis_client)
    for arm in ("exp/a.b", "exp/a/b"):
        with pytest.raises(ValueError, match="not a valid subject token"):
            await stats.add_event(arm_event("bad", "r", arm))
        assert not await replay_arm_event(redis_client, arm_event("bad", "r", arm))
    with pytest.raises(ValueError, match="beyond 64 bits"):
        await stats.add_event(arm_event("huge", "r", "x/a", cost=2**40))
    await redis_client.hset(keys.arm_stats("x", "a"), "cost2", 2**63 - 50)
    with pytest.raises(ResponseError, match="overflow") as overflow:
        await stats.add_event(arm_event("over", "r", "x/a"))
    assert is_permanent(overflow.value) and is_permanent(ValueError("bad arm"))
    assert not is_permanent(RedisConnectionError("down"))
    assert not is_permanent(ReadOnlyError("READONLY replica"))
    assert not is_permanent(ResponseError("BUSY running a script"))
    assert not await redis_client.exists(keys.event_seen("over"))  # nothing half-written
    assert (await stats.sums("x", "a")).n == 0


async def test_bad_arms_and_overflows_are_dead_lettered_and_counting_goes_on(
    stack: Stack,
) -> None:
    tenant = f"d{uuid.uuid4().hex[:8]}"
    letters = await stack.broker.connection.subscribe(subjects.dead_letter(DLQ_LEDGER))
    bad = msgspec.structs.replace(arm_event(f"{tenant}-bad", "r1", "exp/a.b"), tenant=tenant)
    sums_key = keys.arm_stats(tenant, "a")
    await stack.redis.hset(sums_key, "cost2", 2**63 - 50)
    over = msgspec.structs.replace(arm_event(f"{tenant}-over", "r2", f"{tenant}/a"), tenant=tenant)
    good = msgspec.structs.replace(arm_event(f"{tenant}-ok", "r3", f"{tenant}/b"), tenant=tenant)
    for event in (bad, over, good):
        await stack.broker.publish(
            encode(event), subjects.ledger_arm(tenant), stream=subjects.STREAM_LEDGER
        )
    reasons = []
    for _ in range(2):
        msg = await letters.next_msg(timeout=10)
        letter = decode(msg.data, DeadLetter)
        assert decode(letter.payload, LedgerEvent).tenant == tenant
        reasons.append(letter.reason)
    await letters.unsubscribe()
    assert any("not a valid subject token" in r for r in reasons), reasons
    assert any("overflow" in r for r in reasons), reasons
    stats = ArmStats(stack.redis)

    async def good_counted() -> bool:
        return (await stats.sums(tenant, "b")).n == 1

    await eventually(good_counted)
    assert (await stats.sums(tenant, "a")).n == 0


async def test_only_events_with_an_arm_reach_the_experiment_consumer(stack: Stack) -> None:
    tenant = f"n{uuid.uuid4().hex[:8]}"
    js = stack.broker.connection.jetstream()
    plain = msgspec.structs.replace(arm_event(f"{tenant}-plain", "p1", ""), tenant=tenant)
    armed = msgspec.structs.replace(
        arm_event(f"{tenant}-armed", "p2", f"{tenant}/a"), tenant=tenant
    )
    before = await js.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_EXPERIMENT_LEDGER)
    for event in (plain, armed):
        subject = subjects.ledger_for(tenant, event.arm)
        await stack.broker.publish(encode(event), subject, stream=subjects.STREAM_LEDGER)
    aggregates = stack.aggregates

    async def both_booked() -> bool:
        return (await aggregates.totals(tenant)).calls == 2  # the ledger reads every subject

    await eventually(both_booked)
    stats = ArmStats(stack.redis)

    async def armed_counted() -> bool:
        return (await stats.sums(tenant, "a")).n == 1

    await eventually(armed_counted)
    after = await js.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_EXPERIMENT_LEDGER)
    assert after.delivered.stream_seq > before.delivered.stream_seq
    assert after.num_pending == 0
    # Only the armed event was delivered to the experiment consumer, the plain one never.
    assert after.delivered.consumer_seq - before.delivered.consumer_seq == 1
