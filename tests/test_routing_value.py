"""Value mode of the routing policy: per-prompt chances against cost, and cost-aware shortfall."""

from __future__ import annotations

import pytest

from router.routing.config import RoutingConfig
from router.routing.explore import cheaper_pick, explores
from router.routing.policy import Policy, choose
from tests.test_routing_fixtures import candidates, features

# With 1,000 input and 250 output tokens: cheap 150, quick 550, mid 800, top 4500 micro-USD.
CHANCES = {"cheap": 0.80, "quick": 0.85, "mid": 0.86, "top": 0.90}


def value(weight: float, shortfall: float = 0.02) -> RoutingConfig:
    """A value-mode config."""
    return RoutingConfig(value_weight=weight, shortfall_weight=shortfall)


@pytest.mark.parametrize(
    ("weight", "model"),
    [
        (0.0, "top"),  # quality only
        (0.1, "mid"),  # .86 - .1 * 800/4500 beats .90 - .1 and .85 - .1 * 550/4500
        (1.0, "cheap"),  # a dollar matters more than 0.1 of quality
    ],
)
def test_value_weight_trades_quality_for_cost(weight: float, model: str) -> None:
    decision = choose(
        features(0.5), candidates(), policy=Policy.CHEAPEST,
        quality_estimates=CHANCES, config=value(weight),
    )  # fmt: skip
    assert decision.model == model
    assert "best expected value" in decision.reason


def test_value_mode_ignores_the_tier_requirement_but_keeps_the_floor() -> None:
    # Complexity 0.95 would ask 0.85 of a tier; in value mode only the floor counts.
    chances = {"cheap": 0.75, "quick": 0.70, "mid": 0.72, "top": 0.90}
    free = choose(
        features(0.95), candidates(), policy=Policy.CHEAPEST,
        quality_estimates=chances, config=value(0.5),
    )  # fmt: skip
    assert free.model == "cheap" and free.required_quality == 0.0
    floored = choose(
        features(0.95), candidates(), policy=Policy.CHEAPEST, quality_floor=0.8,
        quality_estimates=chances, config=value(0.5),
    )  # fmt: skip
    assert floored.model == "top"


def test_no_model_reaches_the_floor_weighs_cost() -> None:
    # top is 30x dearer than cheap for 0.02 more: the old rule took top whatever it cost.
    chances = {"cheap": 0.60, "quick": 0.55, "mid": 0.58, "top": 0.62}
    decision = choose(
        features(0.5), candidates(), policy=Policy.CHEAPEST, quality_floor=0.9,
        quality_estimates=chances, config=value(0.3),
    )  # fmt: skip
    assert decision.model == "cheap"
    assert "no candidate is predicted to reach 0.90" in decision.reason
    # A large enough gain still buys the dear model: 0.02 * log2(4501/151) = 0.098 < 0.2.
    chances["top"] = 0.80
    dear = choose(
        features(0.5), candidates(), policy=Policy.CHEAPEST, quality_floor=0.9,
        quality_estimates=chances, config=value(0.3),
    )  # fmt: skip
    assert dear.model == "top"


def test_tier_mode_is_unchanged_without_a_value_weight() -> None:
    decision = choose(features(0.95), candidates(), policy=Policy.CHEAPEST)
    assert decision.model == "top" and decision.required_quality == 0.85


def test_balanced_value_mode_weighs_latency_a_little() -> None:
    # quick (1.2 s) and cheap (3.1 s) promise the same: balanced prefers the faster when the
    # cost difference is worth less than its latency.
    chances = {"cheap": 0.85, "quick": 0.85, "mid": 0.5, "top": 0.5}
    balanced = choose(
        features(0.5), candidates(), policy=Policy.BALANCED,
        quality_estimates=chances, config=value(0.05),
    )  # fmt: skip
    cheapest = choose(
        features(0.5), candidates(), policy=Policy.CHEAPEST,
        quality_estimates=chances, config=value(0.05),
    )  # fmt: skip
    assert (balanced.model, cheapest.model) == ("quick", "cheap")


def test_exploring_is_stable_and_never_dearer() -> None:
    ids = [f"req-{i}" for i in range(10_000)]
    share = sum(explores(i, 0.03) for i in ids) / len(ids)
    assert 0.025 < share < 0.035
    assert explores("req-1", 0.03) == explores("req-1", 0.03)
    assert not any(explores(i, 0.0) for i in ids[:100])
    options, costs = ["a", "b", "c"], [100, 300, 900]
    picks = {cheaper_pick(i, options, costs, 500) for i in ids[:200]}
    assert picks == {"a", "b"}
    assert cheaper_pick("x", options, costs, 100) is None
