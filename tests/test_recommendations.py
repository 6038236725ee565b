"""Recommendations on a seeded ledger in a real Redis: a cheaper tier at acceptable quality,
task types that miss the cache, prompts long for their output; each with a monthly saving."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from bus.messages import LedgerEvent, Lever
from cost_ledger.aggregates import AggregateStore
from cost_ledger.api_models import Filter
from cost_ledger.catalog import PriceCatalog
from cost_ledger.recommendations import QualityEstimates, QualitySource, recommendations_view
from tests.cost_events import apply_all, ledger_event

DAYS = 10
SCALE = 30 // DAYS
"""The ledger holds 10 days; a month is 30."""
CATALOG = PriceCatalog.load()
WRITER_CALL = 2500 + 2000  # 1000 input x $2.50 + 200 output x $10.00 per 1M, on gpt-4o
MINI_CALL = 150 + 120  # the same tokens on gpt-4o-mini


def seeded() -> list[LedgerEvent]:
    """Ten days: a writer on gpt-4o, a pricer that hits the cache half the time, and a
    describer whose prompts are 160 times its output."""
    events = []
    for d in range(1, DAYS + 1):
        at = f"2026-10-{d:02d}T12:00:00"
        for i in range(30):
            events.append(
                ledger_event(at=at, agent="writer", model="gpt-4o", task_type="listing",
                             cost=WRITER_CALL, baseline=WRITER_CALL, input_tokens=1000,
                             output_tokens=200)
            )  # fmt: skip
            hit = i % 2 == 0
            events.append(
                ledger_event(at=at, agent="pricer", task_type="pricing", cost=0 if hit else 90,
                             baseline=500, lever=Lever.EXACT_CACHE if hit else Lever.ROUTED,
                             input_tokens=200, output_tokens=100)
            )  # fmt: skip
        for _ in range(10):
            events.append(
                ledger_event(at=at, agent="describer", task_type="describe", cost=1230,
                             baseline=20_000, input_tokens=8000, output_tokens=50)
            )  # fmt: skip
    return events


def quality(mini: float) -> Mapping[tuple[str, str], float]:
    """Quality on listings: gpt-4o 0.90, gpt-4o-mini `mini`, every other model 0.5."""
    out = {(m.name, "listing"): 0.5 for m in CATALOG.models()}
    out[("gpt-4o", "listing")] = 0.9
    out[("gpt-4o-mini", "listing")] = mini
    return out


def source(estimates: Mapping[tuple[str, str], float]) -> QualitySource:
    """A QualitySource returning fixed estimates."""

    async def read() -> QualityEstimates:
        return estimates

    return read


async def test_recommendations_with_monthly_savings(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    view = await recommendations_view(store, Filter(tenant="acme"), CATALOG, source(quality(0.88)))
    assert view.window_days == DAYS
    kinds = {(r.kind, r.agent or r.task_type): r for r in view.items}
    assert set(kinds) == {
        ("cheaper_tier", "writer"), ("cache_misses", "listing"), ("cache_misses", "describe"),
        ("long_prompts", "describer"),
    }  # fmt: skip

    cheaper = kinds[("cheaper_tier", "writer")]
    assert (cheaper.model, cheaper.suggested_model) == ("gpt-4o", "gpt-4o-mini")
    assert cheaper.monthly_saving_micro_usd == (WRITER_CALL - MINI_CALL) * 30 * DAYS * SCALE
    assert cheaper.evidence["candidate_quality"] == 0.88

    misses = kinds[("cache_misses", "listing")]
    fleet_rate = 150 / 700  # pricer's hits over every call
    expected = 300 * fleet_rate * WRITER_CALL * SCALE
    assert abs(misses.monthly_saving_micro_usd - expected) <= 1
    assert misses.evidence["hit_rate"] == 0

    long = kinds[("long_prompts", "describer")]
    assert long.evidence["ratio"] == 160 and long.evidence["fleet_median_ratio"] == 5
    input_cost = 8000 * 0.15 * 10 * DAYS  # micro-dollars over the window
    expected = (1 - 5 * 50 / 8000) * input_cost * SCALE
    assert abs(long.monthly_saving_micro_usd - expected) <= 1

    savings = [r.monthly_saving_micro_usd for r in view.items]
    assert savings == sorted(savings, reverse=True)
    assert view.total_monthly_saving_micro_usd == sum(savings)


async def test_no_cheaper_tier_when_quality_would_drop(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    await apply_all(store, seeded())
    view = await recommendations_view(store, Filter(tenant="acme"), CATALOG, source(quality(0.7)))
    assert not [r for r in view.items if r.kind == "cheaper_tier"]
    # Filtered to one agent: only that agent's recommendations.
    mine = await recommendations_view(
        store, Filter(tenant="acme", agent="describer"), CATALOG, source(quality(0.88))
    )
    assert [(r.kind, r.agent) for r in mine.items] == [("long_prompts", "describer")]
    empty = await recommendations_view(store, Filter(tenant="nobody"), CATALOG)
    assert empty.items == [] and empty.window_days == 0


async def test_no_cheaper_tier_from_a_handful_of_calls(redis_client: aioredis.Redis) -> None:
    """A model an agent used a few times (a shadow check, say) is no evidence for a tier:
    after the demo, one gpt-4.1-mini call of the bundles agent was recommended down a tier."""
    store = AggregateStore(redis_client)
    few = [
        ledger_event(at="2026-10-01T12:00:00", tenant="few", agent="writer", model="gpt-4o",
                     task_type="listing", cost=WRITER_CALL, baseline=WRITER_CALL,
                     input_tokens=1000, output_tokens=200)
        for _ in range(3)
    ]  # fmt: skip
    await apply_all(store, few)
    view = await recommendations_view(store, Filter(tenant="few"), CATALOG, source(quality(0.88)))
    assert not [r for r in view.items if r.kind == "cheaper_tier"]
