"""Complexity tiers and the routing section of the settings."""

from __future__ import annotations

import pytest

from bus.messages import Priority
from bus.settings import Settings
from bus.settings_sections import RoutingSettings
from router.routing.config import RoutingConfig
from router.routing.tiers import ComplexityTier, Tiering, TierQuality, TierThresholds


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0.0, ComplexityTier.SIMPLE),
        (0.29999, ComplexityTier.SIMPLE),
        (0.3, ComplexityTier.MODERATE),
        (0.5, ComplexityTier.MODERATE),
        (0.69999, ComplexityTier.MODERATE),
        (0.7, ComplexityTier.COMPLEX),
        (1.0, ComplexityTier.COMPLEX),
    ],
)
def test_seed_thresholds(score: float, tier: ComplexityTier) -> None:
    assert TierThresholds().classify(score) is tier


def test_thresholds_per_task_type_with_a_default() -> None:
    tiering = Tiering(by_task={"pricing": TierThresholds(simple_below=0.1, complex_from=0.4)})
    assert tiering.classify(0.35, "pricing") is ComplexityTier.MODERATE
    assert tiering.classify(0.4, "pricing") is ComplexityTier.COMPLEX
    assert tiering.classify(0.4, "titles") is ComplexityTier.MODERATE
    assert tiering.thresholds("titles") == TierThresholds()


def test_equal_thresholds_leave_no_moderate_tier() -> None:
    two = TierThresholds(simple_below=0.5, complex_from=0.5)
    assert two.classify(0.4999) is ComplexityTier.SIMPLE
    assert two.classify(0.5) is ComplexityTier.COMPLEX


@pytest.mark.parametrize(("low", "high"), [(0.7, 0.3), (-0.1, 0.5), (0.2, 1.5)])
def test_bad_thresholds_are_refused(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="tier thresholds"):
        TierThresholds(simple_below=low, complex_from=high)


def test_tier_quality_requirements() -> None:
    quality = TierQuality()
    assert [quality.of(t) for t in ComplexityTier] == [0.6, 0.75, 0.85]
    with pytest.raises(ValueError):
        TierQuality(complex=1.2)


def test_routing_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FLIPSYNC_ROUTING",
        '{"policy": "cheapest", "tier_thresholds": {"extraction": [0.25, 0.6]},'
        ' "budget_shift": 0.5, "latency_weight": {"interactive": 0.9}}',
    )
    routing = Settings().routing
    assert routing.policy == "cheapest"
    config = RoutingConfig.from_settings(routing)
    assert config.tiering.thresholds("extraction") == TierThresholds(
        simple_below=0.25, complex_from=0.6
    )
    assert config.tiering.thresholds("other") == TierThresholds()
    assert config.budget_shift == 0.5
    assert config.latency_weight == {Priority.INTERACTIVE: 0.9}


def test_default_settings_give_the_seed_configuration() -> None:
    config = RoutingConfig.from_settings(RoutingSettings())
    defaults = RoutingConfig()
    assert config.tier_quality == defaults.tier_quality == TierQuality()
    assert (config.budget_shift, config.output_fill) == (defaults.budget_shift, 0.5)
    assert config.tiering.default == TierThresholds()
    assert dict(config.latency_weight) == {
        Priority.INTERACTIVE: 0.6,
        Priority.STANDARD: 0.3,
        Priority.BULK: 0.0,
    }
    with pytest.raises(ValueError):
        RoutingConfig(budget_shift=2.0)
