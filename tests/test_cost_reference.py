"""Cost benchmarks: each agent's cost per operation from the ledger aggregates, against the
reference figures of its operation type, worst first."""

from __future__ import annotations

from decimal import Decimal

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, Lever, Usage
from cost_ledger.aggregates import AggregateStore, Totals
from cost_ledger.reference import References, benchmarks, by_operation, vs_reference


def event(i: int, agent: str, cost: int) -> LedgerEvent:
    """A paid ledger event of an agent costing cost micro-dollars."""
    return LedgerEvent(
        event_id=f"e{agent}{i}",
        request_id=f"e{agent}{i}",
        tenant="t1",
        agent=agent,
        workflow_id="w",
        task_type="x",
        model="gpt-4o-mini",
        provider="simulated",
        usage=Usage(input_tokens=100, output_tokens=20),
        cost_micro_usd=cost,
        baseline_micro_usd=cost * 2,
        lever=Lever.ROUTED,
        catalog_version="v",
        paid_call=cost > 0,
        finished_ms=1_700_000_000_000,
    )


def test_the_reference_file_holds_the_seeds_figures() -> None:
    references = References.load()
    assert references.reference("image_analysis") == ("image_analysis", Decimal("0.002"))
    assert references.reference("text_generation") == ("text_generation", Decimal("0.003"))
    assert references.reference("seller_chat") == ("conversation", Decimal("0.0001"))
    assert references.reference("market_data") == ("market_research", Decimal("0.003"))
    assert references.reference("compliance") == ("overall", Decimal("0.0011"))
    assert references.overall_before == Decimal("0.0024")


def test_agents_above_their_reference_come_first_with_their_excess() -> None:
    references = References.load()
    by_agent = {
        "chat": Totals(spend_micro_usd=3_000, calls=10),  # $0.0003/op vs $0.0001: 3x
        "copy": Totals(spend_micro_usd=10_000, calls=10),  # $0.001/op vs $0.003: below
        "photos": Totals(spend_micro_usd=50_000, calls=10),  # $0.005/op vs $0.002
        "idle": Totals(),
    }
    tasks = {"chat": "seller_chat", "copy": "text_generation", "photos": "image_analysis"}
    rows = benchmarks(by_agent, tasks, references)
    assert [r.name for r in rows] == ["photos", "chat", "copy"]
    photos, chat, copy = rows
    assert photos.above and photos.excess == Decimal("0.003") and photos.ratio == Decimal("2.5")
    assert chat.above and chat.ratio == Decimal(3)
    assert not copy.above and copy.excess == Decimal("-0.002")
    ops = {row.name: row for row in by_operation(rows, references)}
    assert ops["image_analysis"].cost_per_op == Decimal("0.005")


async def test_the_report_reads_the_ledger_aggregates(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    for i in range(4):
        await store.apply(event(i, "seller_chat", 500))  # $0.0005/op vs $0.0001
        await store.apply(event(i, "seo_keywords", 1_000))  # $0.001/op vs $0.003
    text = await vs_reference(store, References.load())
    print(text)
    assert "above their reference: seller_chat\n" in text
    assert "+400%" in text and "-67%" in text
    assert "overall: $0.000750 per operation over 8 operations" in text
