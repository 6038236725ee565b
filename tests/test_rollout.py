"""Deterministic rollout: a 10% flag takes 10% of a request stream, the same request always
lands in the same arm, and an experiment's arms partition the traffic."""

from __future__ import annotations

import msgspec
import pytest

from bus.messages import FlagRule, Lever, LlmRequest
from optimizer.errors import FlagError
from optimizer.experiments import Arm, Experiment, arm_rules
from optimizer.flags import check_rule
from router.flags.decide import FlagSet
from router.flags.rollout import bucket, request_fingerprint
from tests.helpers import make_request

REQUESTS = 10_000
TOLERANCE = 1.5
"""Percentage points: 10,000 requests put a binomial 10% share within 0.3 points (1 sd)."""


def stream(count: int = REQUESTS) -> list[LlmRequest]:
    """A deterministic stream of distinct requests, as an agent would send them."""
    return [
        make_request(request_id=f"r{i}", text=f"Write a title for product #{i} (a teal mug).")
        for i in range(count)
    ]


def share(flags: FlagSet, requests: list[LlmRequest], arm: str) -> float:
    """Percentage of requests the flags put in arm."""
    hits = 0
    for request in requests:
        decision = flags.decide(request)
        hits += decision is not None and decision.arm == arm
    return 100 * hits / len(requests)


def test_a_ten_percent_rollout_takes_ten_percent_of_the_stream() -> None:
    rule = FlagRule(
        name="new-model", agent="ebay_listing", percent=10, model="gpt-4.1-nano", arm="x/new"
    )
    flags = FlagSet([rule])
    measured = share(flags, stream(), "x/new")
    assert abs(measured - 10) <= TOLERANCE, measured


def test_the_same_request_always_lands_in_the_same_arm() -> None:
    flags = FlagSet([FlagRule(name="new-model", percent=10, model="gpt-4.1-nano")])
    requests = stream(2_000)
    first = [flags.decide(r) for r in requests]
    # A retry or a repeat (new id, same content) and a second replica's fresh FlagSet agree.
    again = FlagSet([FlagRule(name="new-model", percent=10, model="gpt-4.1-nano")])
    for request, decision in zip(requests, first, strict=True):
        repeat = msgspec.structs.replace(request, id=request.id + "-retry")
        assert again.decide(repeat) == decision
    assert 0 < sum(d is not None for d in first) < len(requests)


def test_a_flag_applies_only_to_its_scope() -> None:
    flags = FlagSet([FlagRule(name="no-cache", tenant="t2", disable_levers=[Lever.EXACT_CACHE])])
    assert flags.decide(make_request(tenant="t1")) is None
    decision = flags.decide(make_request(tenant="t2"))
    assert decision is not None and decision.disabled == {Lever.EXACT_CACHE}


def test_a_specific_rule_overrides_a_broad_one() -> None:
    broad = FlagRule(name="all-off", disable_levers=[Lever.DEDUP, Lever.PATTERN], model="gpt-4o")
    agent = FlagRule(
        name="agent", agent="ebay_listing", enable_levers=[Lever.DEDUP], model="gpt-4o-mini"
    )
    decision = FlagSet([agent, broad]).decide(make_request())
    assert decision is not None
    assert decision.disabled == {Lever.PATTERN} and decision.model == "gpt-4o-mini"
    assert decision.rules == ("all-off", "agent")


def test_experiment_arms_partition_the_traffic() -> None:
    experiment = Experiment(
        name="split",
        agent="ebay_listing",
        arms=[Arm(name="a", percent=50), Arm(name="b", percent=30), Arm(name="c", percent=20)],
    )
    flags = FlagSet(arm_rules(experiment))
    requests = stream()
    counts = {"split/a": 0, "split/b": 0, "split/c": 0}
    for request in requests:
        decision = flags.decide(request)
        assert decision is not None and decision.arm is not None  # exactly one arm each
        counts[decision.arm] += 1
    for arm, expected in (("split/a", 50), ("split/b", 30), ("split/c", 20)):
        assert abs(100 * counts[arm] / REQUESTS - expected) <= TOLERANCE, counts


def test_independent_flags_split_independently() -> None:
    fingerprints = [request_fingerprint(r) for r in stream(4_000)]
    one = [bucket("flag-one", f) < 50 for f in fingerprints]
    two = [bucket("flag-two", f) < 50 for f in fingerprints]
    both = sum(a and b for a, b in zip(one, two, strict=True))
    assert abs(100 * both / len(fingerprints) - 25) <= 3  # independent halves: a quarter


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (FlagRule(name="x", percent=120), "percent"),
        (FlagRule(name="x", percent=60, bucket_from=50), "within"),
        (FlagRule(name="x", disable_levers=[Lever.ROUTED]), "not a switchable lever"),
        (FlagRule(name="x", routing_policy="random"), "unknown routing policy"),
        (FlagRule(name=""), "name"),
    ],
)
def test_a_bad_rule_is_refused_with_a_reason(rule: FlagRule, reason: str) -> None:
    with pytest.raises(FlagError, match=reason):
        check_rule(rule)
