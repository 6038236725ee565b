"""Value mode of the routing policy: per-prompt chances against cost, and cost-aware shortfall."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bus.messages import Priority, Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.routing.candidates import candidates_from_catalog
from router.routing.config import RoutingConfig
from router.routing.explore import cheaper_pick, explores
from router.routing.policy import Policy, RouteDecision, choose, rank
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


def test_ranking_every_model_equals_picking_one_at_a_time() -> None:
    """rank() sorts the options once and re-sorts only when a pick changed what the order
    depends on; on the shipped catalog, with random chances, floors, weights, deadlines and
    ties, its order equals taking rank's first choice among what earlier picks left."""
    rng = random.Random(11)
    shipped = candidates_from_catalog(PriceCatalog.load())
    for _ in range(300):
        chances = {c.model: round(rng.uniform(0.5, 0.95), rng.choice([1, 2, 6])) for c in shipped}
        config = value(rng.choice([0.0, 0.05, 0.1, 1.0]), rng.choice([0.0, 0.02, 0.2]))
        policy = rng.choice(list(Policy))
        floor = rng.choice([0.0, 0.7, 0.85, 0.99])
        deadline = rng.choice([None, None, 1500.0, 4000.0, 1.0])
        priority = rng.choice(list(Priority))
        wanted = features(rng.random(), input_tokens=rng.choice([50, 1000, 20000]))
        ranked = rank(
            wanted, shipped, policy=policy, quality_floor=floor, deadline_ms=deadline,
            priority=priority, quality_estimates=chances, config=config, count=len(shipped),
        )  # fmt: skip
        reference = rank(
            wanted, shipped, policy=policy, quality_floor=floor, deadline_ms=deadline,
            priority=priority, quality_estimates=chances, config=config, count=1,
        )  # fmt: skip
        assert ranked[0] == reference[0]
        models = [d.model for d in ranked]
        assert models == one_at_a_time(ranked, rank_args=(wanted, shipped, policy, floor,
                                       deadline, priority, chances, config))  # fmt: skip


def one_at_a_time(ranked: list[RouteDecision], rank_args: tuple[Any, ...]) -> list[str]:
    """The models that rank(count=1) picks when each earlier pick is taken out of the
    candidates in turn: the reference order."""
    wanted, shipped, policy, floor, deadline, priority, chances, config = rank_args
    left = list(shipped)
    out: list[str] = []
    while left:
        [pick] = rank(
            wanted, left, policy=policy, quality_floor=floor, deadline_ms=deadline,
            priority=priority, quality_estimates=chances, config=config, count=1,
        )  # fmt: skip
        out.append(pick.model)
        left = [c for c in left if c.model != pick.model]
    return out


def test_a_candidates_estimate_is_what_pricing_charges_for_the_same_tokens() -> None:
    rng = random.Random(7)
    every = candidates_from_catalog(PriceCatalog.load())
    assert len(every) > 5
    for candidate in every:
        for tokens in [
            (0, 0),
            (1, 1),
            *((rng.randint(0, 200_000), rng.randint(0, 20_000)) for _ in range(200)),
        ]:
            usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1])
            assert candidate.cost_micro_usd(*tokens) == cost_micro_usd(candidate.price, usage)
