"""The simulated provider's models differ: weaker models fail validation more often."""

from __future__ import annotations

from simulator.quality import ModelQuality
from simulator.request import ChatRequest


def chat(model: str, i: int, task: str = "") -> ChatRequest:
    """A schema request for prompt i."""
    text = f"{task}Describe product {i}"
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}])


def rate(profile: ModelQuality, model: str, task: str = "") -> float:
    """Share of 2,000 prompts the model fails."""
    return sum(profile.fails(chat(model, i, task)) for i in range(2000)) / 2000


def test_failure_rates_follow_each_models_quality() -> None:
    profile = ModelQuality()
    strong, weak = rate(profile, "gpt-4o"), rate(profile, "gpt-4o-mini")
    assert abs(strong - 0.05) < 0.02 and abs(weak - 0.15) < 0.03
    assert rate(profile, "gpt-4.1-nano") > weak > strong


def test_hard_prompts_are_hard_for_every_model() -> None:
    # What the strong model fails, the weak one nearly always fails too: escalating helps.
    profile = ModelQuality()
    strong_fails = [i for i in range(2000) if profile.fails(chat("gpt-4o", i))]
    weak_too = sum(profile.fails(chat("gpt-4o-mini", i)) for i in strong_fails)
    assert strong_fails and weak_too / len(strong_fails) > 0.9


def test_same_prompt_same_verdict_and_task_overrides() -> None:
    profile = ModelQuality(by_task={"pricing": {"gpt-4o-mini": 0.5}})
    assert profile.fails(chat("gpt-4o-mini", 7)) == profile.fails(chat("gpt-4o-mini", 7))
    assert rate(profile, "gpt-4o-mini", "[task:pricing] ") > 0.4
    assert ModelQuality(seed=1).difficulty(chat("x", 1).messages) != profile.difficulty(
        chat("x", 1).messages
    )
