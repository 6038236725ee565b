"""The ledger as event sourcing: flush Redis, `flipsync ledger rebuild`, and every total is back
to the micro-dollar; budgets pick up where they were and enforcement goes on."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import (
    BudgetChange,
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    ErrorCode,
    LedgerEvent,
    LlmResult,
    now_ms,
)
from bus.settings import Settings
from cost_ledger import keys
from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.budgets.cli import add_commands, run_command
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.status import BudgetStatus
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.keys import Dimension
from cost_ledger.pricing import to_usd
from cost_ledger.rebuild import rebuild
from flipsync.stack import Stack, start_stack
from tests.cost_events import ledger_keys
from tests.helpers import eventually, make_request, pipeline_quiet, put_budgets

AGENTS = ("listing", "pricing-probe")
TENANT = "rebuilt"
LIMIT = 400


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """An embedded stack of its own: this module flushes its Redis."""
    path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text("[settings]\nmax_wait_s = 20\n")
    settings = Settings(sim_latency_ms=0, budget_config=path, extra_agents=frozenset(AGENTS))
    running = await start_stack(settings)
    yield running
    await running.stop()


@dataclass(frozen=True)
class Snapshot:
    """Everything the ledger's Redis view says about money."""

    totals: Totals
    tenant_totals: Totals
    breakdowns: dict[str, dict[str, Totals]]
    budgets: list[BudgetStatus]
    counters: dict[str, tuple[int, int]]


async def snapshot(stack: Stack) -> Snapshot:
    """Read totals, breakdowns, budget status and spent counters."""
    aggregates = AggregateStore(stack.redis)
    day = period_key(BudgetPeriod.DAY, now_ms())
    store = budgets(stack)
    scopes = ["global", f"tenant:{TENANT}", *(f"agent:{TENANT}:{a}" for a in AGENTS)]
    return Snapshot(
        totals=await aggregates.totals(),
        tenant_totals=await aggregates.totals(TENANT),
        breakdowns={
            d.value: await aggregates.breakdown(d, TENANT)
            for d in (Dimension.AGENT, Dimension.MODEL, Dimension.LEVER, Dimension.DAY)
        },
        budgets=await store.status(TENANT),
        counters={s: await store.counter(f"{s}:{day}") for s in scopes},
    )


def budgets(stack: Stack) -> BudgetStore:
    """The stack's budget store."""
    assert stack.budgets is not None
    return stack.budgets


async def ask(stack: Stack, n: int) -> list[LlmResult]:
    """n unique requests of the tenant, alternating agents."""
    client = LlmClient(stack.broker)
    requests = [
        make_request(tenant=TENANT, agent=AGENTS[i % 2], text=f"Title for item {uuid.uuid4()}")
        for i in range(n)
    ]
    return list(await asyncio.gather(*(client.request(r, timeout_s=60) for r in requests)))


async def flush_and_rebuild(stack: Stack, redis: aioredis.Redis) -> None:
    """Lose every key, then rebuild from the LEDGER stream."""
    await redis.flushall()
    report = await rebuild(
        stack.broker.connection.jetstream(), AggregateStore(stack.redis), budgets(stack)
    )
    assert report.malformed == 0


async def test_flush_then_rebuild_gives_identical_totals_and_enforcement_goes_on(
    stack: Stack,
) -> None:
    redis = stack.redis
    spec = BudgetSpec(
        name="rebuilt-daily", scope=BudgetScope.TENANT, period=BudgetPeriod.DAY,
        limit_micro_usd=LIMIT, tenant=TENANT,
    )  # fmt: skip
    change = BudgetChange(change_id=uuid.uuid4().hex, set_budgets=[spec])
    await put_budgets(stack, change)  # a run-time budget
    first = await ask(stack, 12)
    assert all(r.ok for r in first), [r.reason for r in first]
    await pipeline_quiet(stack)
    before = await snapshot(stack)
    assert before.tenant_totals.spend_micro_usd == sum(r.cost_micro_usd for r in first)
    assert before.counters[f"tenant:{TENANT}"] == (before.tenant_totals.spend_micro_usd, 0)

    await flush_and_rebuild(stack, redis)
    after = await snapshot(stack)
    assert after == before  # every total, breakdown, budget and counter, to the micro-dollar
    assert (await budgets(stack).live.load()).budgets[spec.name] == spec  # replayed change

    await flush_and_rebuild(stack, redis)  # again; then a rebuild over a full Redis
    report = await rebuild(
        stack.broker.connection.jetstream(), AggregateStore(redis), budgets(stack)
    )
    assert report.applied == 0 and report.settled == 0 and report.changes == 0
    assert await snapshot(stack) == before

    # Enforcement goes on from the rebuilt spend: refused only once the budget is used.
    served = list(first)
    for _ in range(30):
        [result] = await ask(stack, 1)
        if not result.ok:
            assert result.error_code is ErrorCode.OVER_BUDGET
            break
        served.append(result)
    else:
        pytest.fail("the budget never refused a request")
    await pipeline_quiet(stack)
    spent, reserved = await budgets(stack).counter(
        f"tenant:{TENANT}:{period_key(BudgetPeriod.DAY, now_ms())}"
    )
    assert spent == sum(r.cost_micro_usd for r in served) <= LIMIT and reserved == 0
    assert spent == (await AggregateStore(redis).totals(TENANT)).spend_micro_usd


async def test_requests_wait_while_redis_is_flushed_until_the_rebuild(stack: Stack) -> None:
    await stack.redis.flushall()
    calls = (await stack.sim.stats()).calls if stack.sim else 0
    pending = asyncio.create_task(ask(stack, 1))
    js = stack.broker.connection.jetstream()

    async def taken() -> bool:
        info = await js.consumer_info(subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)
        return bool(info.num_ack_pending >= 1)

    await eventually(taken)
    with pytest.raises(TimeoutError):  # held: the spent counters are not trustworthy
        await asyncio.wait_for(asyncio.shield(pending), 1.0)
    assert stack.sim is None or (await stack.sim.stats()).calls == calls  # nothing paid
    await rebuild(js, AggregateStore(stack.redis), budgets(stack))
    [result] = await pending
    assert result.ok or result.error_code is ErrorCode.OVER_BUDGET, result.reason


async def test_a_ledger_event_replayed_twice_is_counted_once(stack: Stack) -> None:
    await pipeline_quiet(stack)
    js = stack.broker.connection.jetstream()
    raw = await js.get_last_msg(subjects.STREAM_LEDGER, subjects.ledger(TENANT), direct=True)
    assert raw.data is not None
    event = msgspec.json.decode(raw.data, type=LedgerEvent)
    before = await snapshot(stack)
    # The same event again under a new message id: JetStream keeps both copies.
    await js.publish(subjects.ledger(TENANT), encode(event), headers={"Nats-Msg-Id": "again"})
    await pipeline_quiet(stack)
    await rebuild(js, AggregateStore(stack.redis), budgets(stack))
    assert await snapshot(stack) == before


async def test_the_rebuild_command_reports_what_it_replayed(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="flipsync")
    add_commands(parser.add_subparsers(dest="command", required=True))
    settings = Settings(
        nats_url=stack.nats_url, redis_url=stack.redis_url,
        budget_config=stack.settings.budget_config,
    )  # fmt: skip
    before = await AggregateStore(stack.redis).totals()
    assert await run_command(parser.parse_args(["ledger", "rebuild"]), settings) == 0
    out = capsys.readouterr().out
    assert "ledger rebuilt" in out and "0 newly applied" in out
    assert f"total spend ${to_usd(before.spend_micro_usd):,.6f}" in out


async def test_a_fresh_rebuild_restores_every_view_and_budgets_count_once(stack: Stack) -> None:
    await pipeline_quiet(stack)
    redis = stack.redis
    before, stored = await snapshot(stack), await ledger_keys(redis)
    assert any(":cube:" in k for k in stored)
    # Derived keys lost or wrong: the cube deleted, an aggregate off, a seen marker gone.
    await redis.delete(*await redis.keys("fs:ledger:cube:*"))
    total_key = keys.aggregate(keys.scope(TENANT), Dimension.TOTAL, keys.TOTAL_MEMBER)
    await redis.hincrby(total_key, "spend_micro_usd", 999)
    await redis.delete(next(k for k in stored if ":seen:" in k))
    js = stack.broker.connection.jetstream()
    report = await rebuild(js, AggregateStore(redis), budgets(stack), fresh=True)
    assert report.cleared > 0 and report.applied == len(
        [k for k in stored if ":seen:{all}:" in k]
    )  # one per event
    assert report.settled == 0  # the budget counters had every event: none counted twice
    assert await snapshot(stack) == before
    assert await ledger_keys(redis) == stored
