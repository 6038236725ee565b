"""Quality estimates: a Beta-Bernoulli belief per model and task type, fed by signals."""

from __future__ import annotations

import random

import pytest

from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from router.routing.quality import (
    QualityBook,
    QualitySignal,
    SignalKind,
    SignalWeights,
)


def _signal(good: bool, kind: SignalKind = SignalKind.SCHEMA, model: str = "m") -> QualitySignal:
    return QualitySignal(model=model, task_type="extraction", kind=kind, good=good)


def test_prior_comes_from_the_catalog() -> None:
    catalog = PriceCatalog.load()
    book = QualityBook.from_catalog(catalog, prior_strength=10)
    estimate = book.estimate("gpt-4o", "anything")
    assert estimate.mean == pytest.approx(catalog.get("gpt-4o").quality)
    assert estimate.alpha + estimate.beta == pytest.approx(10)
    assert estimate.observations == 0
    assert book.estimate("never-seen", "x").mean == pytest.approx(0.5)


def test_signals_move_the_estimate_by_their_weight() -> None:
    book = QualityBook(priors={"m": 0.8}, prior_strength=10)
    book.record(_signal(False))
    assert book.estimate("m", "extraction").mean == pytest.approx(8 / 11)
    book.record(_signal(False, SignalKind.FEEDBACK))  # explicit feedback weighs 3
    assert book.estimate("m", "extraction").mean == pytest.approx(8 / 14)
    assert book.estimate("m", "extraction").observations == 4
    assert book.estimate("m", "other").mean == pytest.approx(0.8)  # per task type


def test_the_estimate_converges_to_the_observed_rate() -> None:
    book = QualityBook(priors={"m": 0.9}, prior_strength=10)
    rng = random.Random(7)
    book.record_all(_signal(rng.random() < 0.6, SignalKind.VALIDATOR) for _ in range(5000))
    estimate = book.estimate("m", "extraction")
    assert estimate.mean == pytest.approx(0.6, abs=0.02)
    assert estimate.variance < 1e-4


def test_estimates_feed_the_policy_as_a_mapping() -> None:
    book = QualityBook(priors={"a": 0.7, "b": 0.9})
    book.record_all(_signal(True, model="a") for _ in range(30))
    estimates = book.estimates("extraction", ["a", "b"])
    assert estimates["a"] > 0.9 > estimates["b"] - 1e-9


def test_thompson_samples_are_reproducible_with_a_seed() -> None:
    book = QualityBook(priors={"a": 0.7, "b": 0.9})
    first = book.sample("extraction", ["a", "b"], random.Random(1))
    again = book.sample("extraction", ["a", "b"], random.Random(1))
    assert first == again and all(0 <= q <= 1 for q in first.values())


def test_snapshot_and_restore_round_trip() -> None:
    book = QualityBook(priors={"m": 0.8}, weights=SignalWeights(feedback=5.0))
    book.record(_signal(True))
    book.record(_signal(False, SignalKind.FEEDBACK))
    snapshot = book.snapshot()
    assert snapshot == {"extraction": {"m": [1.0, 5.0]}}
    other = QualityBook(priors={"m": 0.8})
    other.restore(snapshot)
    assert other.estimate("m", "extraction") == book.estimate("m", "extraction")


def test_bad_priors_are_refused() -> None:
    with pytest.raises(ValueError):
        QualityBook(priors={"m": 1.5})
    with pytest.raises(ValueError):
        QualityBook(prior_strength=0)


def test_one_early_failure_does_not_push_the_default_model_under_the_agents_floor() -> None:
    """A model under its task's floor gets no traffic, so no signals to recover: the default
    prior must outweigh a single bad answer."""
    settings = Settings()
    book = QualityBook.from_catalog(
        PriceCatalog.load(), prior_strength=settings.routing.quality_prior_strength
    )
    floor = settings.routing.task_quality_floors["text_generation"]
    book.record(QualitySignal(model="gpt-4o-mini", task_type="text_generation",
                              kind=SignalKind.VALIDATOR, good=False))  # fmt: skip
    assert book.estimate("gpt-4o-mini", "text_generation").mean >= floor
