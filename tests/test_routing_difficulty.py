"""Prompt difficulty: the Rasch fit, the ridge model, the shipped weights and the predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bus.messages import ChatMessage, LlmRequest
from router.routing.calibrate import ValueController
from router.routing.defaults import ShippedDefaults
from router.routing.difficulty import DifficultyModel, clip_text, fit_rasch, success_chance
from router.routing.per_task import MAX_TASK_TYPES
from router.routing.predict import PromptPredictor, prompt_text
from router.routing.static_embedder import DIMS


def test_rasch_recovers_abilities_and_difficulties() -> None:
    rng = np.random.default_rng(3)
    ability = np.array([-1.0, 0.0, 1.5])
    difficulty = rng.normal(0.0, 1.5, 3000)
    p = 1 / (1 + np.exp(-(ability[None, :] - difficulty[:, None])))
    outcomes = (rng.random(p.shape) < p).astype(float)
    outcomes[::7, 0] = np.nan  # unobserved pairs are skipped
    got_d, got_a = fit_rasch(outcomes)
    assert np.all(np.diff(got_a) > 0.8)  # the order and spacing of abilities
    assert np.corrcoef(got_d, difficulty)[0, 1] > 0.6  # three answers per prompt: noisy


def test_ridge_round_trip_and_layout_checks(tmp_path: Path) -> None:
    x = np.eye(4)
    model = DifficultyModel.fit(x, np.array([1.0, -1.0, 0.5, 0.0]), alpha=0.01, slope=0.5)
    assert model.predict(x[:1])[0] == pytest.approx(1.0, abs=0.05)
    model.save(tmp_path / "d.json")
    again = DifficultyModel.load(tmp_path / "d.json")
    assert again.slope == 0.5 and np.allclose(again.weights, model.weights, atol=1e-5)
    with pytest.raises(ValueError, match="another layout"):
        DifficultyModel.from_dict({**model.to_dict(), "embedder": "other"})


def test_the_shipped_files_load_and_say_where_they_came_from() -> None:
    model = DifficultyModel.load()
    assert model.weights.shape == (DIMS,) and 0 < model.slope <= 1.5
    assert "MMLU-Pro" in model.meta["sources"] and "RouteLLM" in model.meta["sources"]
    defaults = ShippedDefaults.load()
    assert defaults.quality_target == 0.95 and 0 < defaults.value_weight < 5


def test_chance_keeps_quality_on_a_typical_prompt() -> None:
    assert success_chance(0.8, 1.0, 1.0, 0.4) == pytest.approx(0.8)
    assert success_chance(0.8, 2.0, 1.0, 0.4) < 0.8 < success_chance(0.8, 0.0, 1.0, 0.4)
    assert clip_text("x" * 1000).startswith("x" * 256) and len(clip_text("x" * 1000)) < 400


class CountingEmbedder:
    """Counts embed calls; every text gets the same vector."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        """One fixed unit vector per text."""
        self.calls += 1
        return np.asarray(np.ones((len(texts), 2)) / np.sqrt(2))


def test_predictor_caches_reads_the_last_user_turn_and_tracks_the_mean() -> None:
    embedder = CountingEmbedder()
    predictor = PromptPredictor(DifficultyModel(weights=np.array([1.0, 1.0]), bias=0.0), embedder)
    first = predictor.difficulty_now("same text")
    assert predictor.difficulty_now("same text") == first and embedder.calls == 1
    assert predictor.mean("t") is None
    assert predictor.observe("t", 2.0) == 2.0 and predictor.mean("t") == 2.0
    request = LlmRequest(
        id="r", tenant="t", agent="a", task_type="t",
        messages=[ChatMessage(role="system", content="rules"),
                  ChatMessage(role="user", content="old"),
                  ChatMessage(role="assistant", content="answer"),
                  ChatMessage(role="user", content="the new ask")],
    )  # fmt: skip
    assert prompt_text(request) == "the new ask"


def test_controller_settles_near_its_target() -> None:
    controller = ValueController(start=0.1, target=0.9)
    for _ in range(2000):  # picks keep 95% of the best: room to save, the weight climbs
        controller.observe("t", 0.95, 1.0)
    high = controller.weight("t")
    for _ in range(2000):  # then only 80%: it comes down again
        controller.observe("t", 0.8, 1.0)
    assert high > 0.1 > controller.weight("t")
    with pytest.raises(ValueError):
        ValueController(start=0.1, target=0.0)


def test_what_routing_learns_per_task_type_is_bounded() -> None:
    """A sender inventing a task type per request must not grow routing state without end:
    past MAX_TASK_TYPES the least recently used is forgotten, and starts from its defaults."""
    predictor = PromptPredictor(
        DifficultyModel(weights=np.array([1.0, 1.0]), bias=0.0), CountingEmbedder()
    )
    controller = ValueController(start=0.1, target=0.9)
    predictor.observe("first", 2.0)
    controller.observe("first", 1.0, 1.0)
    assert controller.weight("first") != 0.1
    for n in range(MAX_TASK_TYPES):
        predictor.observe(f"flood-{n}", 1.0)
        controller.observe(f"flood-{n}", 1.0, 1.0)
    assert predictor.mean("first") is None and controller.weight("first") == 0.1
    assert predictor.mean(f"flood-{MAX_TASK_TYPES - 1}") == 1.0
