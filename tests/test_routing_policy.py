"""The routing policy as a pure function: every policy, every tier boundary, every fallback."""

from __future__ import annotations

import pytest

from bus.messages import Priority, Usage
from bus.settings_sections import RoutingSettings
from cost_ledger.pricing import cost_micro_usd
from router.routing.config import RoutingConfig
from router.routing.errors import NoCandidateError
from router.routing.policy import Policy, choose
from router.routing.tiers import ComplexityTier
from tests.test_routing_fixtures import TEST_CATALOG, candidates, features


@pytest.mark.parametrize(
    ("complexity", "tier", "model"),
    [
        (0.0, ComplexityTier.SIMPLE, "cheap"),
        (0.2999, ComplexityTier.SIMPLE, "cheap"),
        (0.3, ComplexityTier.MODERATE, "quick"),  # exactly at the seed boundary
        (0.6999, ComplexityTier.MODERATE, "quick"),
        (0.7, ComplexityTier.COMPLEX, "top"),  # exactly at the seed boundary
        (1.0, ComplexityTier.COMPLEX, "top"),
    ],
)
def test_cheapest_at_every_tier_boundary(
    complexity: float, tier: ComplexityTier, model: str
) -> None:
    decision = choose(features(complexity), candidates(), policy=Policy.CHEAPEST)
    assert (decision.tier, decision.model) == (tier, model)


def test_cheapest_returns_model_provider_cost_and_reason() -> None:
    decision = choose(features(0.82), candidates(), policy=Policy.CHEAPEST)
    assert decision.model == "top" and decision.provider == "p3"
    # 1,000 input tokens and half of 500 output tokens, at catalog prices.
    usage = Usage(input_tokens=1000, output_tokens=250)
    assert decision.estimated_cost_micro_usd == cost_micro_usd(TEST_CATALOG.get("top"), usage)
    assert decision.estimated_cost_micro_usd == 4500
    assert (
        decision.reason == "complex (0.82) on extraction: top is the cheapest with quality >= 0.85"
    )
    assert decision.required_quality == 0.85 and decision.quality == 0.90
    assert decision.estimated_latency_ms == pytest.approx(5800)


def test_moderate_takes_the_cheapest_model_good_enough() -> None:
    decision = choose(features(0.5), candidates(), policy=Policy.CHEAPEST)
    assert decision.model == "quick" and decision.estimated_cost_micro_usd == 550
    assert decision.reason.startswith("moderate (0.50) on extraction: quick is the cheapest")


def test_fastest_takes_the_lowest_latency_above_the_requirement() -> None:
    simple = choose(features(0.1), candidates(), policy=Policy.FASTEST)
    assert simple.model == "quick"  # 1.2 s beats cheap's 3.1 s; all qualify at 0.60
    assert "quick is the fastest with quality >= 0.60 (est. 1200 ms)" in simple.reason
    complex_ = choose(features(0.9), candidates(), policy=Policy.FASTEST)
    assert complex_.model == "top"  # the only one with quality >= 0.85


def test_balanced_weighs_latency_by_priority() -> None:
    # Simple tier: cheap (150, 3.1 s), quick (550, 1.2 s), mid (800, 2.4 s), top (4500, 5.8 s).
    interactive = choose(
        features(0.1), candidates(), policy=Policy.BALANCED, priority=Priority.INTERACTIVE
    )
    assert interactive.model == "quick"
    assert "latency weight 0.60" in interactive.reason
    bulk = choose(features(0.1), candidates(), policy=Policy.BALANCED, priority=Priority.BULK)
    assert bulk.model == "cheap"  # bulk does not care about latency: the cheapest
    standard = choose(features(0.1), candidates(), policy=Policy.BALANCED)
    assert standard.model == "cheap"  # weight 0.3: 3.7x dearer is not worth 2.6x faster


def test_balanced_under_full_budget_pressure_is_cheapest() -> None:
    decision = choose(
        features(0.1),
        candidates(),
        policy=Policy.BALANCED,
        priority=Priority.INTERACTIVE,
        budget_pressure=1.0,
    )
    assert decision.model == "cheap"
    assert "latency weight 0.00" in decision.reason


def test_budget_pressure_shifts_toward_cheaper_tiers() -> None:
    calm = choose(features(0.82), candidates(), policy=Policy.CHEAPEST, budget_pressure=0.0)
    tight = choose(features(0.82), candidates(), policy=Policy.CHEAPEST, budget_pressure=1.0)
    assert (calm.tier, calm.model) == (ComplexityTier.COMPLEX, "top")
    assert (tight.tier, tight.model) == (ComplexityTier.MODERATE, "quick")
    assert tight.complexity == pytest.approx(0.52)
    assert "lowered to 0.52 by budget pressure 1.00" in tight.reason
    assert tight.estimated_cost_micro_usd < calm.estimated_cost_micro_usd
    half = choose(features(0.82), candidates(), policy=Policy.CHEAPEST, budget_pressure=0.3)
    assert half.tier is ComplexityTier.COMPLEX  # 0.82 - 0.09 = 0.73 is still complex


def test_budget_pressure_never_lowers_the_requests_own_floor() -> None:
    decision = choose(
        features(0.1), candidates(), policy=Policy.CHEAPEST, budget_pressure=1.0, quality_floor=0.88
    )
    assert decision.model == "top"
    assert "quality >= 0.88 (the request's floor)" in decision.reason


def test_recorded_quality_estimates_override_the_catalog_prior() -> None:
    good_cheap = {"cheap": 0.80}
    decision = choose(
        features(0.5), candidates(), policy=Policy.CHEAPEST, quality_estimates=good_cheap
    )
    assert decision.model == "cheap" and decision.quality == 0.80
    poor_top = {"top": 0.70}
    best = choose(features(0.9), candidates(), policy=Policy.CHEAPEST, quality_estimates=poor_top)
    assert best.model == "mid"  # nothing reaches 0.85 now: the best is mid (0.80)
    assert "no candidate reaches quality 0.85; mid is the best (0.80)" in best.reason


def test_deadline_excludes_slow_models() -> None:
    decision = choose(features(0.5), candidates(), policy=Policy.CHEAPEST, deadline_ms=1000.0)
    # Nothing finishes 250 tokens in 1 s: the fastest is chosen, and the reason says so.
    assert decision.model == "quick"
    assert "no candidate meets the 1000 ms deadline; quick is the fastest" in decision.reason
    timely = choose(features(0.1), candidates(), policy=Policy.CHEAPEST, deadline_ms=3000.0)
    assert timely.model == "quick"  # cheap (3.1 s) would miss it
    relaxed = choose(features(0.1), candidates(), policy=Policy.CHEAPEST, deadline_ms=3100.0)
    assert relaxed.model == "cheap"  # exactly on time is on time


def test_images_need_a_vision_model() -> None:
    decision = choose(features(0.5, images=1), candidates(), policy=Policy.CHEAPEST)
    assert decision.model == "mid"  # quick is cheaper but has no image input
    blind = [c for c in candidates() if c.model == "quick"]
    with pytest.raises(NoCandidateError) as caught:
        choose(features(0.5, images=1), blind, policy=Policy.CHEAPEST)
    assert caught.value.rejected == {"quick": "no image input"}
    assert "no image input" in caught.value.reason


def test_context_window_rules_out_small_models() -> None:
    decision = choose(features(0.1, input_tokens=31_800), candidates(), policy=Policy.CHEAPEST)
    assert decision.model == "mid"  # cheap (16k) and quick (32k, with the answer) are too small
    with pytest.raises(NoCandidateError):
        choose(features(0.1, input_tokens=200_000), candidates(), policy=Policy.CHEAPEST)


def test_per_task_type_thresholds_come_from_configuration() -> None:
    config = RoutingConfig.from_settings(
        RoutingSettings(tier_thresholds={"titles": (0.5, 0.9)}, complex_quality=0.9)
    )
    titles = choose(
        features(0.4, task_type="titles"), candidates(), policy=Policy.CHEAPEST, config=config
    )
    other = choose(features(0.4), candidates(), policy=Policy.CHEAPEST, config=config)
    assert titles.tier is ComplexityTier.SIMPLE and other.tier is ComplexityTier.MODERATE


def test_same_input_same_decision_and_ties_go_to_quality_then_name() -> None:
    first = choose(features(0.1), candidates(), policy=Policy.FASTEST)
    again = choose(features(0.1), tuple(reversed(candidates())), policy=Policy.FASTEST)
    assert first == again
