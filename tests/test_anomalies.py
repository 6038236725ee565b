"""Anomalies on a synthetic hourly ledger in a real Redis: a spike injected at a known hour is
found and its cause named; an agent whose cost per call jumps is found with the model that
did it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from bus.messages import LedgerEvent
from cost_ledger.aggregates import AggregateStore
from cost_ledger.anomalies import THRESHOLD, anomalies_view, robust_scores
from cost_ledger.api_models import Filter
from tests.cost_events import apply_all, ledger_event

START = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = 72
SPIKE = "2026-11-02T14"
SWITCH = "2026-11-03T05"


def hour_at(i: int) -> str:
    """The i-th hour of the series, YYYY-MM-DDTHH."""
    return (START + timedelta(hours=i)).strftime("%Y-%m-%dT%H")


def steady_hours(seed: int = 5) -> list[LedgerEvent]:
    """Three agents, every hour: lister 2 calls of ~100, pricer 1 of ~300, tagger 3 of ~50."""
    rng = random.Random(seed)
    events = []
    for i in range(HOURS):
        at = f"{hour_at(i)}:20:00"
        for agent, calls, cost in (("lister", 2, 100), ("pricer", 1, 300), ("tagger", 3, 50)):
            for _ in range(calls):
                jitter = int(cost * rng.uniform(-0.1, 0.1))
                events.append(ledger_event(at=at, agent=agent, cost=cost + jitter))
    return events


def test_robust_scores() -> None:
    scores = robust_scores([10, 11, 9, 10, 12, 10, 100])
    assert scores[-1] > 20 and max(abs(s) for s in scores[:-1]) < THRESHOLD
    assert robust_scores([5, 5, 5]) == [0.0, 0.0, 0.0]
    mostly_equal = robust_scores([0, 0, 0, 0, 0, 7])  # MAD 0: mean absolute deviation instead
    assert mostly_equal[-1] > THRESHOLD and mostly_equal[0] == 0


async def test_spike_hour_is_found_with_its_agent(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    spike = [
        ledger_event(at=f"{SPIKE}:40:00", agent="pricer", model="gpt-4o", cost=3000)
        for _ in range(10)
    ]
    await apply_all(store, steady_hours() + spike)
    view = await anomalies_view(store, Filter(tenant="acme"))
    assert view.hours == HOURS
    assert [a.hour for a in view.spend] == [SPIKE]
    [found] = view.spend
    assert found.score > THRESHOLD
    assert found.spend_micro_usd - found.baseline_micro_usd > 29_000
    assert found.likely_cause.startswith("agent pricer +$0.03")
    firsts = [(c.dimension, c.name) for c in found.causes if c.change_micro_usd > 29_000]
    assert firsts == [("agent", "pricer"), ("model", "gpt-4o"), ("lever", "routed")]
    # The pricer's cost per call jumped in the same hour, and the model is why.
    per_call = [(a.agent, a.hour) for a in view.cost_per_call]
    assert per_call == [("pricer", SPIKE)]
    assert view.cost_per_call[0].causes[0].name == "gpt-4o"

    # Filtered to the agent, the spike is still found and explained by its model.
    mine = await anomalies_view(store, Filter(tenant="acme", agent="pricer"))
    assert [a.hour for a in mine.spend] == [SPIKE]
    assert mine.spend[0].likely_cause.startswith("agent pricer: model gpt-4o")
    quiet = await anomalies_view(store, Filter(tenant="acme", agent="lister"))
    assert quiet.spend == [] and quiet.cost_per_call == []


async def test_cost_per_call_jump_names_the_model(redis_client: aioredis.Redis) -> None:
    store = AggregateStore(redis_client)
    events = [
        e for e in steady_hours(seed=9) if not (e.agent == "tagger" and hour_at_of(e) == SWITCH)
    ]
    # One call on a dear model instead of three cheap ones: same spend, three times per call.
    events.append(ledger_event(at=f"{SWITCH}:10:00", agent="tagger", model="gpt-4.1", cost=150))
    await apply_all(store, events)
    view = await anomalies_view(store, Filter(tenant="acme"))
    [jump] = view.cost_per_call
    assert (jump.agent, jump.hour, jump.calls) == ("tagger", SWITCH, 1)
    assert jump.cost_per_call_micro_usd == 150
    assert 45 <= jump.baseline_cost_per_call_micro_usd <= 55
    assert jump.causes[0].dimension == "model" and jump.causes[0].name == "gpt-4.1"
    assert "model gpt-4.1" in jump.likely_cause
    assert view.spend == []  # the hour's spend barely moved: only the cost per call did


def hour_at_of(event: LedgerEvent) -> str:
    """The UTC hour an event counts in."""
    return datetime.fromtimestamp(event.finished_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H")
