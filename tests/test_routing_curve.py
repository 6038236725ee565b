"""The cost/quality arithmetic of bench/routing (RouteLLM's way of reporting a router)."""

from __future__ import annotations

import pytest

from bench.routing_curve import (
    Case,
    apgr,
    by_threshold,
    fewest_strong_calls,
    random_at,
    random_strong_calls,
    routed,
    threshold_for,
)


def _cases() -> list[Case]:
    # Four prompts: strong alone is right on the first two; both are right on the third;
    # neither on the fourth. Strong calls cost 10, weak ones 1.
    flags = [(False, True), (False, True), (True, True), (False, False)]
    return [
        Case(dataset="d", weak_ok=w, strong_ok=s, weak_cost=1, strong_cost=10) for w, s in flags
    ]


def test_routed_counts_accuracy_cost_and_share() -> None:
    point = routed("x", _cases(), [True, False, False, False])
    assert (point.accuracy, point.cost, point.strong_share) == (0.5, 13, 0.25)
    assert point.as_dict(strong_cost=40)["cost_vs_strong"] == 0.325


def test_random_is_the_expectation_at_the_same_share() -> None:
    point = random_at("r", _cases(), 2)
    # Weak gets 1/4, strong 3/4: halfway is 1/2. Cost: 4 + (40 - 4) / 2.
    assert point.accuracy == pytest.approx(0.5) and point.cost == 22
    assert point.strong_share == 0.5


def test_fewest_strong_calls_follow_the_scores() -> None:
    cases = _cases()
    good_scores = [0.9, 0.8, 0.1, 0.2]
    assert fewest_strong_calls(cases, good_scores, 0.75) == 2
    bad_scores = [0.1, 0.2, 0.9, 0.8]
    assert fewest_strong_calls(cases, bad_scores, 0.75) == 4
    assert fewest_strong_calls(cases, good_scores, 0.25) == 0
    assert threshold_for(good_scores, 2) == 0.8
    assert by_threshold(good_scores, 0.8) == [True, True, False, False]
    assert random_strong_calls(cases, 0.75) == 4
    assert random_strong_calls(cases, 0.5) == 2


def test_apgr_is_higher_for_a_better_ranking() -> None:
    cases = _cases()
    assert apgr(cases, [0.9, 0.8, 0.1, 0.2]) > 0.5 > apgr(cases, [0.1, 0.2, 0.9, 0.8])
