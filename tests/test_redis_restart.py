"""Redis restarts empty under load: the budgets process notices, waits for requests in flight
to settle, rebuilds counters and aggregates from the LEDGER stream; every request gets one
terminal result, no request is paid twice, no budget is overspent, and the rebuilt views
equal the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bus import subjects
from bus.codec import decode
from bus.embedded import EmbeddedRedis
from bus.llm_client import LlmClient
from bus.messages import BudgetPeriod, ErrorCode, LedgerEvent, LlmResult, now_ms
from bus.settings import Settings
from cost_ledger.budgets.periods import period_key
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import eventually, make_request
from tests.test_notifier import budgets_file

pytestmark = [pytest.mark.slow, pytest.mark.chaos]
LIMIT_MICRO_USD = 600  # about half of what the load would spend
REQUESTS = 240


@pytest.fixture
async def redis_server() -> AsyncIterator[EmbeddedRedis]:
    """A redis-server of this test's own, which it restarts empty."""
    server = EmbeddedRedis()
    await server.start()
    yield server
    await server.stop()


def watched(redis: EmbeddedRedis, tmp_path: Path, limit_usd: str, **fields: object) -> Settings:
    """Settings of a stack on redis with a tenant-daily budget and a fast budget watch."""
    base = Settings(
        redis_url=redis.url,
        extra_agents=frozenset({"listing"}),
        budget_config=budgets_file(tmp_path, "daily", limit_usd, []),
        budget_watch_s=0.2,
        provider_timeout_s=2.0,
    )
    return base.model_copy(update=fields)


async def ledger_events(stack: Stack, tenant: str) -> list[LedgerEvent]:
    """The tenant's ledger events as the LEDGER stream keeps them."""
    js = stack.broker.connection.jetstream()
    subject = subjects.ledger(tenant)
    info = await js.stream_info(subjects.STREAM_LEDGER, subjects_filter=subject)
    count = (info.state.subjects or {}).get(subject, 0)
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        return [decode((await sub.next_msg(timeout=5)).data, LedgerEvent) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def test_redis_restarting_empty_under_load_overspends_nothing(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    tenant = f"r{uuid.uuid4().hex[:8]}"
    limit = f"{LIMIT_MICRO_USD / 1e6:.6f}"
    settings = watched(redis_server, tmp_path, limit, sim_latency_ms=20, budget_rebuild_grace_s=3.0)
    services = [Service.PROVIDER, Service.ROUTER, Service.LEDGER]
    stack = await start_stack(settings, services)
    try:
        client = LlmClient(stack.broker)
        results: list[LlmResult] = []

        async def ask(i: int) -> None:
            await asyncio.sleep(i * 0.02)  # a steady stream, not one burst
            request = make_request(tenant=tenant, agent="listing", text=f"Title for mug {i}")
            results.append(await client.request(request, timeout_s=80))

        load = asyncio.gather(*(ask(i) for i in range(REQUESTS)))

        async def some_answered() -> bool:
            return len(results) >= REQUESTS // 4

        await eventually(some_answered, timeout_s=40)
        # Redis dies and comes back on its port with nothing in it.
        assert len(results) < REQUESTS  # mid-load
        await redis_server.stop()
        await redis_server.start()
        await asyncio.wait_for(load, timeout=85)

        async def rebuilt() -> bool:
            return await stack.budgets.ready() if stack.budgets else False

        await eventually(rebuilt, timeout_s=20)
        events = await ledger_events(stack, tenant)
        totals = await stack.aggregates.totals(tenant)
        assert stack.budgets is not None
        day = period_key(BudgetPeriod.DAY, now_ms())
        spent, reserved = await stack.budgets.counter(f"tenant:{tenant}:{day}")
        assert stack.budget_runtime is not None and stack.budget_runtime.rebuilds == 1
    finally:
        await stack.stop()

    assert len(results) == REQUESTS  # one terminal result each
    assert len({r.request_id for r in results}) == REQUESTS
    paid = [e for e in events if e.cost_micro_usd > 0]
    assert len({e.request_id for e in paid}) == len(paid), "a request was paid twice"
    ledger_total = sum(e.cost_micro_usd for e in events)
    assert ledger_total <= LIMIT_MICRO_USD, f"overspent: {ledger_total} > {LIMIT_MICRO_USD}"
    refused = [r for r in results if r.error_code is ErrorCode.OVER_BUDGET]
    assert refused, "the budget never filled: this test no longer tests overspend"
    assert spent == ledger_total and reserved == 0  # counters rebuilt equal the ledger
    assert totals.spend_micro_usd == ledger_total  # aggregates rebuilt equal the ledger


async def test_one_slot_losing_its_marker_is_rebuilt_after_a_reservation_meets_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    from cost_ledger.budgets import keys

    tenant = f"s{uuid.uuid4().hex[:8]}"
    settings = watched(
        redis_server, tmp_path, "5.000000", sim_latency_ms=0, budget_rebuild_grace_s=0.5
    )
    stack = await start_stack(settings, [Service.PROVIDER, Service.ROUTER, Service.LEDGER])
    try:
        assert stack.budgets is not None and stack.budget_runtime is not None
        client = LlmClient(stack.broker)
        ask = [
            make_request(tenant=tenant, agent="listing", text=f"Title for lamp {i}") for i in (1, 2)
        ]
        first = await client.request(ask[0], timeout_s=20)
        assert first.ok, first.reason
        # Only this tenant's slot loses its marker: every node's sentinel is still there.
        # Each step is bounded, so a hang names its step (seen once: the test ran past 120 s).
        async with step("deleting the marker and checking one marker per node", 20):
            await stack.redis.delete(keys.ready(f"t:{tenant}"))
            assert await stack.budgets.ready(full=False)
        second = await client.request(ask[1], timeout_s=40)
        assert second.ok, second.reason  # held while not ready, answered after the rebuild
        async with step("checking every slot's marker after the rebuild", 20):
            # The rebuild marks the slot ready before it reloads the budgets and counts
            # itself, so the held request may be answered a moment before the count.
            while stack.budget_runtime.rebuilds == 0:  # noqa: ASYNC110 - a plain counter
                await asyncio.sleep(0.05)
            assert stack.budget_runtime.rebuilds == 1 and await stack.budgets.ready()
    finally:
        async with step("stopping the stack", 60):
            await stack.stop()


@contextlib.asynccontextmanager
async def step(what: str, within_s: float) -> AsyncIterator[None]:
    """Fail with what was being done when it takes longer than within_s."""
    try:
        async with asyncio.timeout(within_s):
            yield
    except TimeoutError:
        pytest.fail(f"{what} took more than {within_s:.0f} s")


async def test_closing_the_budget_watch_is_bounded_when_a_call_swallows_the_cancel(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation that lands inside a Redis call can be swallowed there (a stack's stop
    once waited past 60 s on the watch's full check): close() still returns, and the watch
    stops at its next round."""
    from cost_ledger.budgets import runtime as budget_runtime
    from cost_ledger.budgets.runtime import BudgetRuntime

    monkeypatch.setattr(budget_runtime, "CLOSE_GRACE_S", 0.2, raising=False)
    watcher = BudgetRuntime(Settings(budget_watch_s=0.05), redis_client, broker=None)  # type: ignore[arg-type]
    checks = 0

    async def stubborn(full: bool = False) -> bool:
        nonlocal checks
        checks += 1
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:  # swallowed, as a library call in flight may
            await asyncio.sleep(0.1)
        return True

    monkeypatch.setattr(watcher.store, "ready", stubborn)
    watcher.watch(None)  # type: ignore[arg-type]
    await asyncio.sleep(0.12)  # inside a check
    async with asyncio.timeout(2):
        await watcher.close()
    seen = checks
    await asyncio.sleep(0.3)
    assert checks == seen  # no round after close


async def test_a_rebuild_that_fails_on_nats_is_tried_again(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild that fails on something other than Redis (the ledger stream's NATS leader
    killed under the replay) is tried again at the next round: it used to end the watch, and
    every reservation then waited for a rebuild nobody would finish."""
    import nats.errors

    from cost_ledger.budgets.runtime import BudgetRuntime

    watcher = BudgetRuntime(Settings(budget_watch_s=0.05), redis_client, broker=None)  # type: ignore[arg-type]
    attempts = 0
    retried = asyncio.Event()

    async def not_ready(full: bool = False) -> bool:
        return attempts >= 2

    async def recover(js: object) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise nats.errors.TimeoutError  # the replay's stream_info during a failover
        retried.set()
        return True

    monkeypatch.setattr(watcher.store, "ready", not_ready)
    monkeypatch.setattr(watcher, "recover", recover)
    watcher.watch(None)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            await retried.wait()
    finally:
        await watcher.close()
    assert attempts == 2
