"""A rebuild from the LEDGER stream restores the workspace and project views: their budget
counters and their report rows, to the micro-dollar; events applied before workspaces existed
get their workspace rows from a rebuild, counted once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from bus.llm_client import LlmClient
from bus.messages import BudgetChange, BudgetPeriod, BudgetScope, BudgetSpec, now_ms
from bus.settings import Settings
from cost_ledger.aggregates import AggregateStore, Applied
from cost_ledger.api_models import Filter, SpendResponse
from cost_ledger.batch_apply import BatchApplier
from cost_ledger.budgets.periods import period_key
from cost_ledger.budgets.store import BudgetStore
from cost_ledger.cube import PLACES_VERSION
from cost_ledger.rebuild import rebuild
from cost_ledger.spend import spend_view
from flipsync.stack import Stack, start_stack
from tests.cost_events import ledger_event, ledger_keys
from tests.helpers import make_request, pipeline_quiet, put_budgets

TENANT = "placed"
AGENT = "listing"
PLACES = [("eu", "spring"), ("eu", "fall"), ("us", "spring"), ("default", "default")]


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """An embedded stack of its own: this module flushes its Redis."""
    path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text("[settings]\nmax_wait_s = 20\n")
    settings = Settings(sim_latency_ms=0, budget_config=path, extra_agents=frozenset({AGENT}))
    running = await start_stack(settings)
    yield running
    await running.stop()


def budgets(stack: Stack) -> BudgetStore:
    """The stack's budget store."""
    assert stack.budgets is not None
    return stack.budgets


async def views(stack: Stack) -> tuple[dict[str, tuple[int, int]], SpendResponse, SpendResponse]:
    """The workspace and project counters of today, the tenant's spend view and eu's."""
    day = period_key(BudgetPeriod.DAY, now_ms())
    scopes = [f"workspace:{TENANT}:{w}" for w in ("eu", "us", "default")]
    scopes += [f"project:{TENANT}:{w}:{p}" for w, p in PLACES]
    store = budgets(stack)
    counters = {s: await store.counter(f"{s}:{day}") for s in scopes}
    aggregates = AggregateStore(stack.redis)
    return (
        counters,
        await spend_view(aggregates, Filter(tenant=TENANT)),
        await spend_view(aggregates, Filter(tenant=TENANT, workspace="eu")),
    )


async def test_flush_then_rebuild_restores_workspace_and_project_views(stack: Stack) -> None:
    spec = BudgetSpec(
        name="placed-eu", scope=BudgetScope.WORKSPACE, period=BudgetPeriod.DAY,
        limit_micro_usd=10_000_000, tenant=TENANT, workspace="eu",
    )  # fmt: skip
    await put_budgets(stack, BudgetChange(change_id=uuid.uuid4().hex, set_budgets=[spec]))
    client = LlmClient(stack.broker)
    requests = [
        msgspec.structs.replace(
            make_request(tenant=TENANT, agent=AGENT, text=f"Title for item {uuid.uuid4()}"),
            workspace=w,
            project=p,
        )
        for w, p in PLACES * 2
    ]
    results = await asyncio.gather(*(client.request(r, timeout_s=60) for r in requests))
    assert all(r.ok for r in results), [r.reason for r in results]
    await pipeline_quiet(stack)
    before = await views(stack)
    counters, tenant_view, eu_view = before
    eu_cost = sum(r.cost_micro_usd for q, r in zip(requests, results, strict=True)
                  if q.workspace == "eu")  # fmt: skip
    assert counters[f"workspace:{TENANT}:eu"] == (eu_cost, 0)
    assert eu_view.totals.spend_micro_usd == eu_cost and eu_view.totals.calls == 4
    assert {r.name for r in tenant_view.by_project} == {f"{w}/{p}" for w, p in PLACES}
    rows = await budgets(stack).status(TENANT, workspace="eu")
    assert [r.spent for r in rows if r.budget == spec.name] == [eu_cost]

    await stack.redis.flushall()
    report = await rebuild(
        stack.broker.connection.jetstream(), AggregateStore(stack.redis), budgets(stack)
    )
    assert report.malformed == 0 and report.applied == len(requests)
    assert await views(stack) == before  # counters and report rows, to the micro-dollar


async def test_events_applied_before_workspaces_get_their_rows_once(
    redis_client: aioredis.Redis,
) -> None:
    store = AggregateStore(redis_client)
    events = [
        ledger_event(at="2026-11-02T10:00:00", workspace="eu", project="spring", cost=300),
        ledger_event(at="2026-11-02T11:00:00", workspace="eu", project="fall", cost=200),
        ledger_event(at="2026-11-02T12:00:00", cost=50),
    ]
    assert await BatchApplier(store).apply(events) == [Applied.NEW] * 3
    full = await ledger_keys(redis_client)
    where = Filter(tenant="acme")
    expected = await spend_view(store, where)
    assert {r.name: r.spend_micro_usd for r in expected.by_workspace} == {"default": 50, "eu": 500}
    # As a deployment before workspaces left it: markers at version 2, no workspace rows.
    async for key in redis_client.scan_iter(match="fs:ledger:seen:*"):
        await redis_client.set(key, str(PLACES_VERSION - 1), keepttl=True)
    async for key in redis_client.scan_iter(match="fs:ledger:cube:*"):
        for raw in await redis_client.hkeys(key):
            field = raw.decode() if isinstance(raw, bytes) else str(raw)
            if field.startswith(("workspace|", "project|")):
                await redis_client.hdel(key, field)
        name = key.decode() if isinstance(key, bytes) else str(key)
        if "workspace=" in name or "project=" in name:
            await redis_client.delete(key)
    assert (await spend_view(store, where)).by_workspace == []
    for event in events:  # what a rebuild does with each replayed event
        assert await store.apply_event(event) is Applied.COMPLETED
        assert await store.apply_event(event) is Applied.BEFORE
    assert await spend_view(store, where) == expected
    assert await ledger_keys(redis_client) == full
