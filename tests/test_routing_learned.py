"""The learned router: prompt features, scoring, its weights file, and training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from router.routing.learned import (
    HASH_SIZE,
    N_FEATURES,
    LinearModel,
    PromptRouter,
    prompt_vector,
)
from router.routing.training import Example, fit, is_test, load_routellm, split

GSM8K_STYLE = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)
MMLU_STYLE = "What is the capital of France?\nA. Paris\nB. Rome\nC. Madrid\nD. Berlin\nAnswer:"


def test_prompt_vector_is_deterministic_and_normalised() -> None:
    vector = prompt_vector("Sold 48 clips, then 24 clips.")
    assert vector == prompt_vector("Sold 48 clips, then 24 clips.")
    hashed = [v for i, v in vector.items() if i < HASH_SIZE]
    assert math.isclose(math.sqrt(sum(v * v for v in hashed)), 1.0)
    assert all(0 <= i < N_FEATURES for i in vector)
    # Numbers fold to one token: the same sentence with other numbers has the same features.
    assert prompt_vector("Sold 7 clips, then 3 clips.") == vector


def test_scores_and_complexity_rank() -> None:
    zero = LinearModel(weights=(0.0,) * N_FEATURES, bias=0.0)
    strong = LinearModel(weights=(0.0,) * N_FEATURES, bias=math.log(3))  # p = 0.75
    router = PromptRouter(weak=zero, strong=strong, gain_quantiles=(0.0, 0.1, 0.3))
    score = router.score("anything")
    assert score.p_weak == pytest.approx(0.5) and score.p_strong == pytest.approx(0.75)
    assert score.gain == pytest.approx(0.25)
    assert score.complexity == pytest.approx(0.5 + 0.5 * 0.75)  # between the 2nd and 3rd
    assert router.rank(-1.0) == 0.0 and router.rank(0.05) == 0.25 and router.rank(9) == 1.0


def test_weights_round_trip_and_refuse_another_layout(tmp_path: Path) -> None:
    model = LinearModel(weights=tuple(i / N_FEATURES for i in range(N_FEATURES)), bias=0.5)
    router = PromptRouter(weak=model, strong=model, gain_quantiles=(0.0, 1.0), meta={"c": 1})
    path = tmp_path / "router.json"
    router.save(path)
    again = PromptRouter.load(path)
    assert again.to_dict() == router.to_dict()
    assert again.score(MMLU_STYLE).gain == pytest.approx(0.0)
    data = router.to_dict()
    with pytest.raises(ValueError, match="feature layout"):
        PromptRouter.from_dict({**data, "hash_bits": 8})
    with pytest.raises(ValueError, match="weights"):
        PromptRouter.from_dict({**data, "weak": {"bias": 0, "weights": [0.0]}})


def test_shipped_weights_load_and_rank_math_word_problems_above_trivia() -> None:
    router = PromptRouter.load()
    assert router.meta["licence"] == "Apache-2.0" and "RouteLLM" in router.meta["source"]
    assert router.meta["train_prompts"] > 10_000
    assert router.complexity(GSM8K_STYLE) > 0.7 > 0.3 > router.complexity(MMLU_STYLE)


def test_split_is_deterministic_and_about_a_fifth() -> None:
    prompts = [f"prompt number {i}" for i in range(2000)]
    test_share = sum(map(is_test, prompts)) / len(prompts)
    assert 0.17 < test_share < 0.23
    assert [is_test(p) for p in prompts] == [is_test(p) for p in prompts]


def _examples(n: int) -> list[Example]:
    # Weak fails exactly on the prompts that ask for a proof; strong gets everything right.
    out = []
    for i in range(n):
        hard = i % 3 == 0
        words = "prove the theorem about primes" if hard else "name the colour of the sky"
        out.append(
            Example(dataset="toy", prompt=f"{words} case {i}", weak_ok=not hard, strong_ok=True)
        )
    return out


def test_training_learns_where_the_weak_model_fails() -> None:
    router = fit(_examples(90), c=10.0, folds=3)
    hard = router.score("please prove the theorem about primes")
    easy = router.score("name the colour of the sky")
    assert hard.p_weak < 0.5 < easy.p_weak
    assert hard.gain > easy.gain and hard.complexity > easy.complexity
    assert len(router.gain_quantiles) > 2 and router.meta["train_prompts"] == 90


def test_loader_reads_the_routellm_layout(tmp_path: Path) -> None:
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    (tmp_path / "mmlu").mkdir()
    (tmp_path / "gsm8k_responses.csv").write_text(
        f"prompt,{weak},{strong},{weak}_response,{strong}_response\n"
        'What is 2+2?,False,True,"5","2 + 2 = 4"\n'
    )
    (tmp_path / "mmlu" / "mmlu_toy.csv").write_text(
        f'prompt,{weak},{strong}\n"Pick one\nA. x\nB. y\nAnswer:",True,False\n'
    )
    examples = load_routellm(tmp_path)
    assert [(e.dataset, e.weak_ok, e.strong_ok) for e in examples] == [
        ("gsm8k", False, True),
        ("mmlu", True, False),
    ]
    assert examples[0].strong_response == "2 + 2 = 4"
    assert examples[1].prompt.endswith("Answer:")
    train, test = split(examples)
    assert len(train) + len(test) == 2
