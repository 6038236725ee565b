"""Experiments: arms by rollout, per-arm sums from the ledger and the quality signals, a
report with confidence intervals that names the right winner, refuses to name one when the
difference is not significant, and a one-command promotion."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from scipy import stats as sp

from bus import subjects
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import LlmResult, QualitySignal
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from optimizer import keys
from optimizer.arm_stats import ArmStats, ArmSums
from optimizer.errors import ExperimentError
from optimizer.experiments import Arm, Experiment, ExperimentStore, Metric, Status
from optimizer.flag_store import FlagStore, publish_change
from optimizer.report import arm_result, build_report, decide, promote, quality_problem, render
from optimizer.stats import mean_estimate, welch_p, wilson
from tests.helpers import eventually, make_request

QUALITY = {"gpt-4o-mini": 0.95, "gpt-4.1-nano": 0.60}
"""The known share of valid answers of each simulated model in this test."""


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the router and the ledger (which runs the arm consumers)."""
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER}
    settings = Settings(sim_latency_ms=0, extra_agents=frozenset({"listing"}))
    running = await start_stack(settings, services)
    yield running
    await running.stop()


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


async def run_arm_traffic(stack: Stack, experiment: Experiment, requests: int, seed: int) -> None:
    """Send requests in the experiment's scope, and answer each as an agent's checks would:
    valid with the known quality of the model that served it."""
    client = LlmClient(stack.broker)
    rng = random.Random(seed)
    limit = asyncio.Semaphore(32)

    async def one(i: int) -> LlmResult:
        async with limit:
            text = f"Write a title for product {seed}-{i}, a stoneware mug."
            request = make_request(tenant=experiment.tenant, agent="listing", text=text)
            return await client.request(request, timeout_s=30)

    results = await asyncio.gather(*(one(i) for i in range(requests)))
    for result in results:
        assert result.ok and result.arm is not None, result.reason
        signal = QualitySignal(
            request_id=result.request_id,
            tenant=result.tenant,
            agent=result.agent,
            task_type="text_generation",
            model=result.model,
            valid=rng.random() < QUALITY[result.model],
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
    tenant = f"e{uuid.uuid4().hex[:8]}"
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
    tenant = f"n{uuid.uuid4().hex[:8]}"
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
