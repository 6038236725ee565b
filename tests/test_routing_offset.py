"""A task type's shared offset: what one model's answers say about every model's level."""

from __future__ import annotations

from router.routing.offset import shifted, task_offset
from router.routing.quality import QualityBook, QualitySignal, SignalKind


def test_no_counts_no_offset_and_the_prior_bounds_it() -> None:
    assert task_offset([]) == 0.0
    assert task_offset([(0.7, 0.0, 0.0)]) == 0.0
    # 40 answers at 0.95 from a model rated 0.8: the task is easier than the priors say.
    easy = task_offset([(0.8, 38.0, 2.0)])
    assert 0.5 < easy < 1.6
    assert task_offset([(0.8, 38.0, 2.0)], prior_sd=0.3) < easy  # a tighter prior moves less
    assert task_offset([(0.8, 20.0, 20.0)]) < 0  # a harder task moves every model down
    assert abs(shifted(0.65, 0.0) - 0.65) < 1e-12
    assert shifted(0.65, easy) > 0.75


def test_one_models_answers_lift_the_others_estimate_on_that_task_only() -> None:
    priors = {"strong": 0.8, "cheap": 0.65}
    plain = QualityBook(priors=priors, prior_strength=50.0, discount=0.98)
    shared = QualityBook(priors=priors, prior_strength=50.0, discount=0.98, offset_sd=1.0)
    for book in (plain, shared):
        for i in range(60):
            good = i % 20 != 0  # the strong model answers 95% of this task well
            book.record(QualitySignal(model="strong", task_type="qa", kind=SignalKind.VALIDATOR,
                                      good=good))  # fmt: skip
    # Without the offset the cheap model keeps its prior, far under the strong one.
    assert plain.estimate("cheap", "qa").mean == 0.65
    lifted = shared.estimate("cheap", "qa").mean
    assert lifted > 0.75
    gap_plain = plain.estimate("strong", "qa").mean - 0.65
    assert shared.estimate("strong", "qa").mean - lifted < gap_plain
    assert shared.estimate("cheap", "other").mean == 0.65  # another task type: no evidence
    # The cheap model's own failures still count against it.
    for _ in range(30):
        shared.record(QualitySignal(model="cheap", task_type="qa", kind=SignalKind.VALIDATOR,
                                    good=False))  # fmt: skip
    assert shared.estimate("cheap", "qa").mean < 0.65
