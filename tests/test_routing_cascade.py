"""The cascade as pure data: the ladder, its expected cost, and escalation on failure."""

from __future__ import annotations

from cost_ledger.catalog import Tier
from router.routing.cascade import Ladder, Rung, applies, build_ladder, escalate
from tests.test_routing_fixtures import candidates, features


def test_ladder_has_the_cheapest_model_of_each_tier_cheapest_first() -> None:
    ladder = build_ladder(features(0.5, has_schema=True), candidates())
    assert [(r.model, r.tier) for r in ladder.rungs] == [
        ("cheap", Tier.ECONOMY),
        ("quick", Tier.STANDARD),
        ("top", Tier.PREMIUM),
    ]
    assert [r.estimated_cost_micro_usd for r in ladder.rungs] == [150, 550, 4500]
    assert ladder.first().model == "cheap"


def test_ladder_keeps_the_requests_floor_and_vision() -> None:
    floored = build_ladder(features(0.5, has_schema=True), candidates(), quality_floor=0.79)
    assert [r.model for r in floored.rungs] == ["mid", "top"]
    seeing = build_ladder(features(0.5, images=1, has_schema=True), candidates())
    assert [r.model for r in seeing.rungs] == ["cheap", "mid", "top"]


def test_recorded_pass_rates_replace_the_prior() -> None:
    ladder = build_ladder(features(0.5, has_schema=True), candidates(), pass_rates={"cheap": 0.95})
    assert ladder.rungs[0].pass_rate == 0.95
    assert ladder.rungs[1].pass_rate == 0.78  # quick's catalog quality


def test_expected_cost_and_whether_the_cascade_pays() -> None:
    ladder = Ladder(
        task_type="extraction",
        rungs=(
            Rung(model="a", provider="p", tier=Tier.ECONOMY, estimated_cost_micro_usd=100,
                 pass_rate=0.9),
            Rung(model="b", provider="p", tier=Tier.PREMIUM, estimated_cost_micro_usd=1000,
                 pass_rate=0.99),
        ),
    )  # fmt: skip
    # 100 always, plus 1000 in the 10% of cases where a fails.
    assert ladder.expected_cost_micro_usd() == 200
    assert ladder.worth_it()
    hopeless = Ladder(
        task_type="extraction",
        rungs=(
            Rung(model="a", provider="p", tier=Tier.ECONOMY, estimated_cost_micro_usd=500,
                 pass_rate=0.2),
            ladder.rungs[1],
        ),
    )  # fmt: skip
    assert hopeless.expected_cost_micro_usd() == 1300
    assert not hopeless.worth_it()
    assert not Ladder(task_type="x", rungs=ladder.rungs[1:]).worth_it()


def test_escalation_climbs_one_rung_per_failure_then_stops() -> None:
    ladder = build_ladder(features(0.5, has_schema=True), candidates())
    first = escalate(ladder, "cheap", "answer does not match the schema at (root)")
    assert first is not None
    assert (first.from_model, first.to_model, first.to_provider) == ("cheap", "quick", "p2")
    assert first.reason == (
        "escalated from cheap to quick (standard): answer does not match the schema at (root)"
    )
    second = escalate(ladder, "quick", "validator failed")
    assert second is not None and second.to_model == "top"
    assert escalate(ladder, "top", "validator failed") is None
    assert escalate(ladder, "unknown", "x") is None


def test_cascade_applies_only_to_listed_task_types_with_a_schema() -> None:
    listed = frozenset({"extraction"})
    assert applies(features(0.5, has_schema=True), listed)
    assert not applies(features(0.5, has_schema=False), listed)
    assert not applies(features(0.5, has_schema=True, task_type="chat"), listed)
