"""The error bound of the semantic cache: scores, learned thresholds, vetoes (pure)."""

from __future__ import annotations

import numpy as np

from bench.semantic_ceiling import Ceiling
from router.semantic.calibration import Calibrator, error_upper_bound, falling, judge, score
from router.semantic.policy import Candidate


def cand(entry_id: str, similarity: float, answer: str = "A") -> Candidate:
    """A candidate entry."""
    return Candidate(entry_id=entry_id, similarity=similarity, answer_key=answer, created_ms=0)


def test_score_rewards_clear_dense_matches_and_punishes_rivals() -> None:
    """A match among agreeing neighbours outscores a lone one; a close rival lowers it."""
    lone = score([cand("a", 0.9)])
    dense = score([cand("a", 0.9), cand("b", 0.88), cand("c", 0.85)])
    rivalled = score([cand("a", 0.9), cand("r", 0.89, "B")])
    assert lone is not None and dense is not None and rivalled is not None
    assert dense.score > lone.score > rivalled.score
    assert dense.votes == 3 and rivalled.opposition > 0.8
    assert score([]) is None


def test_a_young_calibrator_allows_nothing_and_a_learned_one_a_threshold() -> None:
    """No observation, no threshold; many right ones, a threshold; errors raise it to the
    edge of the wrong ones (the monotone error curve pools the edge with its neighbours)."""
    calibrator = Calibrator()
    assert calibrator.threshold(0.01, 0.7) is None
    for n in range(400):
        calibrator.observe(n / 1000, True)  # scores 0.000 .. 0.399, all right
    low = calibrator.threshold(0.01, 0.7)
    assert low is not None and low < 0.3
    for n in range(20):
        calibrator.observe(0.1 + n / 1000, False)  # wrong answers around 0.1
    high = calibrator.threshold(0.01, 0.7)
    assert high is not None and high >= 0.11 > low
    assert calibrator.at_or_above(0.1) == (20, 320)


def test_the_error_curve_is_monotone_and_keeps_the_errors() -> None:
    """falling: a non-decreasing error as the score falls, pooling violators, same total."""
    wrong = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    curve = falling(wrong)
    assert np.all(np.diff(curve) >= 0)
    assert curve.sum() == wrong.sum()
    assert curve.tolist() == [0.0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0]


def test_served_hits_checked_at_a_share_count_as_the_traffic_they_stand_for() -> None:
    """A served region seen only through a 5% share of checks is weighted by its lookups:
    the band below it, where every miss is labelled and 3% are wrong, may then be served
    (the expected error of everything served stays within the bound), which the tail of
    the observations alone (mostly that band) does not allow; more wrong ones in the band
    close it again."""
    calibrator = Calibrator()
    for n in range(300):
        calibrator.observe(0.30 + n / 10_000, True)  # before it served: all right
    for n in range(2000):
        calibrator.lookup(0.30 + (n % 300) / 10_000)  # served, 1 in 20 checked
        if n % 20 == 0:
            calibrator.observe(0.30 + (n % 300) / 10_000, True)
    for n in range(500):  # the band below: missed, each labelled, 3% wrong
        calibrator.lookup(0.20 + n / 10_000)
        calibrator.observe(0.20 + n / 10_000, n % 33 != 0)
    learned = calibrator.threshold(0.01, 0.7)
    assert learned is not None and learned < 0.21
    untraced = Calibrator()  # the same observations, no lookups counted
    for n in range(300):
        untraced.observe(0.30 + n / 10_000, True)
    for n in range(0, 2000, 20):
        untraced.observe(0.30 + (n % 300) / 10_000, True)
    for n in range(500):
        untraced.observe(0.20 + n / 10_000, n % 33 != 0)
    assert (untraced.threshold(0.01, 0.7) or 1.0) > 0.23
    for n in range(200):  # the band turns out a third wrong: mostly no longer served
        calibrator.observe(0.20 + n / 2000, n % 3 != 0)
    assert (calibrator.threshold(0.01, 0.7) or 1.0) > 0.23


def test_the_bound_is_an_upper_credible_bound() -> None:
    """Few observations leave a wide bound; many right ones a narrow one."""
    assert error_upper_bound(0, 0, 0.7) == 0.7
    assert error_upper_bound(0, 500, 0.7) < 0.01 < error_upper_bound(0, 50, 0.7)
    assert error_upper_bound(5, 100, 0.7) > 0.05


def test_judge_obeys_floor_veto_and_threshold() -> None:
    """Below the floor, vetoed by the entry's own record, or below the threshold: no hit."""
    calibrator = Calibrator()
    for _ in range(300):
        calibrator.observe(0.0, True)
    scored = score([cand("a", 0.9), cand("b", 0.88)])
    assert scored is not None
    kwargs = {"error_bound": 0.01, "confidence": 0.7, "min_similarity": 0.75}
    assert judge(scored, calibrator, entry_wrong_at=None, **kwargs).serve
    assert not judge(scored, None, entry_wrong_at=None, **kwargs).serve
    vetoed = judge(scored, calibrator, entry_wrong_at=scored.score + 0.01, **kwargs)
    assert not vetoed.serve and "wrong" in vetoed.reason
    floor = {"error_bound": 0.01, "confidence": 0.7, "min_similarity": 0.95}
    assert not judge(scored, calibrator, entry_wrong_at=None, **floor).serve


def test_the_ceiling_is_the_longest_prefix_within_the_bound() -> None:
    """bench.semantic_ceiling: lookups sorted by score, served while precision holds; a best
    entry under the similarity floor is never counted as servable."""
    ceiling = Ceiling(min_similarity=0.75)
    for n in range(99):  # 99 right lookups, scores falling with n
        ceiling.add([cand(f"e{n}", 0.99 - n / 1000)], "A")
    ceiling.add([cand("w", 0.80, "B")], "A")  # the lowest-scoring lookup is wrong
    ceiling.add([cand("low", 0.70)], "A")  # under the floor: not servable, right or not
    figures = ceiling.figures(0.01)
    assert ceiling.questions == 101
    assert figures["hits"] == 100  # 99 of 100 right is within a 1% bound
    assert figures["hit_rate"] == round(100 / 101, 4)
    assert ceiling.figures(0.005)["hits"] == 99  # a stricter bound stops before the wrong one


def test_no_lookup_below_every_observation_is_judged_safe() -> None:
    """The error of a score below every observation is unknown: a calibrator whose lookups
    all score there allows no threshold, however right its observations were."""
    calibrator = Calibrator()
    for n in range(500):
        calibrator.observe(0.3 + n / 10_000, True)
    for n in range(100):
        calibrator.lookup(0.1 + n / 10_000)
    assert calibrator.threshold(0.01, 0.7) is None
    calibrator.observe(0.1, True)  # a label down there: those lookups are judged now
    assert calibrator.threshold(0.01, 0.7) == 0.1
