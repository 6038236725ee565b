"""The aggregate store counts each ledger event once, in every breakdown, on a real Redis."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from bus.messages import Lever
from cost_ledger import keys
from cost_ledger.aggregates import MARKER_VERSION, AggregateStore, Applied, Totals
from cost_ledger.keys import Dimension
from cost_ledger.report import SIMULATED_NOTE, build_report, render_report, usd
from tests.cost_events import as_old_deployment, ledger_event, ledger_keys

AT = "2026-11-02T10:15:00"


async def test_an_event_applies_once_to_every_breakdown(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    e = ledger_event(
        at=AT, event_id="e1", input_tokens=50, cached_input_tokens=20, output_tokens=10
    )
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
    applied = await asyncio.gather(
        *(store.apply(ledger_event(at=AT, event_id="same")) for _ in range(20))
    )
    assert sum(applied) == 1
    assert (await store.totals()).calls == 1


async def test_breakdowns_split_by_tenant_agent_model_lever_and_day(
    redis_client: aioredis.Redis,
) -> None:
    store = AggregateStore(redis_client)
    for e in (
        ledger_event(at=AT, agent="lister", cost=100, baseline=1000),
        ledger_event(at="2026-11-03T23:59:59", agent="pricer", model="gpt-4.1-nano", cost=40),
        ledger_event(at=AT, agent="lister", cost=0, baseline=900, lever=Lever.EXACT_CACHE),
        ledger_event(at=AT, tenant="beta", cost=7, baseline=70, simulated=True),
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
    await store.apply(ledger_event(at=AT, cost=123, baseline=1000))
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
        await store.apply(ledger_event(at=AT, tenant="acme:agent"))
    assert await redis_client.keys("*") == []


async def test_an_event_applied_before_the_cube_gets_only_its_cube_rows(
    redis_client: aioredis.Redis,
) -> None:
    store = AggregateStore(redis_client)
    events = [
        ledger_event(at=AT, agent="lister", workflow_id="wf-1"),
        ledger_event(at="2026-11-03T08:00:00", agent="pricer", cost=0, lever=Lever.EXACT_CACHE),
        ledger_event(at=AT, tenant="beta", model="gpt-4o", cost=900, baseline=900),
    ]
    for e in events:
        assert await store.apply_event(e) is Applied.NEW
    fresh = await ledger_keys(redis_client)
    current = str(MARKER_VERSION).encode()
    assert all(v == current for k, v in fresh.items() if ":seen:" in k)
    assert await as_old_deployment(redis_client) > 0
    old_totals = await store.totals()
    for e in events:  # the cube rows only: the aggregates already count the event
        assert await store.apply_event(e) is Applied.COMPLETED
        assert await store.apply(e) is False
    assert await store.totals() == old_totals
    assert await ledger_keys(redis_client) == fresh
    ttl = await redis_client.ttl(keys.seen(events[0].event_id))
    assert keys.SEEN_TTL_S - 60 < ttl <= keys.SEEN_TTL_S  # the marker keeps its expiry

    for scope in ("all", keys.scope("acme")):  # never counted twice, whatever it says
        await redis_client.set(keys.seen("odd", scope), "garbage")
    assert await store.apply_event(ledger_event(at=AT, event_id="odd")) is Applied.BEFORE


async def test_clear_deletes_only_the_ledgers_derived_keys(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    for i in range(30):
        await store.apply(ledger_event(at=AT, agent=f"agent{i % 3}"))
    await redis_client.set("fs:budget:ctr:x", 1)
    await redis_client.set("fs:ledger:other", 1)
    derived = len(await ledger_keys(redis_client)) - 1
    assert await store.clear() == derived > 30
    assert sorted(await redis_client.keys("*")) == [b"fs:budget:ctr:x", b"fs:ledger:other"]
