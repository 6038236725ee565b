"""The aggregate store counts each ledger event once, in every breakdown, on a real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from bus.messages import LedgerEvent, Lever, Usage
from cost_ledger import keys
from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.keys import Dimension
from cost_ledger.report import SIMULATED_NOTE, build_report, render_report, usd


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def event(
    event_id: str,
    *,
    tenant: str = "acme",
    agent: str = "lister",
    model: str = "gpt-4o-mini",
    cost: int = 100,
    baseline: int = 1000,
    lever: Lever = Lever.ROUTED,
    at: str = "2026-11-02T10:15:00",
    simulated: bool = False,
) -> LedgerEvent:
    """A ledger event with sensible defaults."""
    return LedgerEvent(
        event_id=event_id,
        request_id=f"req-{event_id}",
        tenant=tenant,
        agent=agent,
        workflow_id="wf-1",
        task_type="general",
        model=model,
        provider="openai",
        usage=Usage(input_tokens=50, cached_input_tokens=20, output_tokens=10),
        cost_micro_usd=cost,
        baseline_micro_usd=baseline,
        lever=lever,
        catalog_version="2026-11-01",
        paid_call=cost > 0,
        simulated=simulated,
        started_ms=_ms(at) - 500,
        finished_ms=_ms(at),
    )


async def test_an_event_applies_once_to_every_breakdown(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    e = event("e1")
    assert await store.apply(e) is True
    assert await store.apply(e) is False
    expected = Totals(
        spend_micro_usd=100,
        baseline_micro_usd=1000,
        calls=1,
        paid_calls=1,
        input_tokens=50,
        cached_input_tokens=20,
        output_tokens=10,
    )
    assert await store.totals() == expected
    assert await store.totals("acme") == expected
    assert await store.totals("other") == Totals()
    for tenant in (None, "acme"):
        assert await store.breakdown(Dimension.AGENT, tenant) == {"lister": expected}
        assert await store.breakdown(Dimension.MODEL, tenant) == {"gpt-4o-mini": expected}
        assert await store.breakdown(Dimension.PROVIDER, tenant) == {"openai": expected}
        assert await store.breakdown(Dimension.LEVER, tenant) == {"routed": expected}
        assert await store.breakdown(Dimension.DAY, tenant) == {"2026-11-02": expected}
        assert await store.breakdown(Dimension.HOUR, tenant) == {"2026-11-02T10": expected}
    assert await store.breakdown(Dimension.TENANT) == {"acme": expected}
    assert await store.breakdown(Dimension.TENANT, "acme") == {"acme": expected}
    assert await store.members(Dimension.TENANT) == ["acme"]
    ttl = await redis_client.ttl(keys.seen("e1"))
    assert keys.SEEN_TTL_S - 60 < ttl <= keys.SEEN_TTL_S


async def test_concurrent_redeliveries_count_once(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    applied = await asyncio.gather(*(store.apply(event("same")) for _ in range(20)))
    assert sum(applied) == 1
    assert (await store.totals()).calls == 1


async def test_breakdowns_split_by_tenant_agent_model_lever_and_day(
    redis_client: aioredis.Redis,
) -> None:
    store = AggregateStore(redis_client)
    for e in (
        event("a1", agent="lister", cost=100, baseline=1000),
        event("a2", agent="pricer", model="gpt-4.1-nano", cost=40, at="2026-11-03T23:59:59"),
        event("a3", agent="lister", cost=0, baseline=900, lever=Lever.EXACT_CACHE),
        event("b1", tenant="beta", cost=7, baseline=70, simulated=True),
    ):
        assert await store.apply(e)
    acme = await store.totals("acme")
    assert (acme.spend_micro_usd, acme.baseline_micro_usd) == (140, 2900)
    assert (acme.calls, acme.paid_calls, acme.simulated_events) == (3, 2, 0)
    assert acme.savings_micro_usd == 2760
    agents = await store.breakdown(Dimension.AGENT, "acme")
    assert {a: t.calls for a, t in agents.items()} == {"lister": 2, "pricer": 1}
    days = await store.breakdown(Dimension.DAY, "acme")
    assert {d: t.spend_micro_usd for d, t in days.items()} == {"2026-11-02": 100, "2026-11-03": 40}
    levers = await store.breakdown(Dimension.LEVER, "acme")
    assert levers["exact_cache"].savings_micro_usd == 900
    assert levers["exact_cache"].paid_calls == 0
    tenants = await store.breakdown(Dimension.TENANT)
    assert tenants["beta"].simulated_events == 1 and tenants["acme"] == acme
    everyone = await store.totals()
    assert everyone.calls == 4 and everyone.spend_micro_usd == 147


async def test_report_of_real_spend_has_no_simulated_note(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await store.apply(event("r1", cost=123, baseline=1000))
    report = await build_report(store, "acme")
    assert report.spend_usd == Decimal("0.000123")
    assert report.savings_by_lever_usd == {"routed": Decimal("0.000877")}
    assert not report.simulated
    text = render_report(report)
    assert SIMULATED_NOTE not in text
    assert "$0.000123" in text and "87.7%" in text and "tenant acme" in text
    assert usd(-1_500_000) == "-$1.500000"


async def test_a_tenant_name_that_could_alias_another_scope_is_refused(
    redis_client: aioredis.Redis,
) -> None:
    store = AggregateStore(redis_client)
    with pytest.raises(ValueError, match="subject token"):
        await store.apply(event("x", tenant="acme:agent"))
    assert await redis_client.keys("*") == []
