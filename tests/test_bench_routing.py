"""bench/routing's arithmetic: APGR of random mixing is 0.5, the envelope, a wide CSV suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.routing_data import load_wide, thinned
from bench.routing_eval import (
    accuracy_at_cost,
    apgr,
    best_pair_mix,
    cost_for_accuracy,
    envelope,
    oracle_choice,
    value_choices,
)


def test_random_mixing_recovers_half_and_a_perfect_router_more() -> None:
    quality = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # strong, cheap
    cost = np.array([[10, 1]] * 4)
    cheap = (4.0, 0.25)
    strong = (40.0, 0.75)
    mix_c, mix_q = best_pair_mix(quality, cost)
    assert apgr(mix_c, mix_q, cheap, strong) == pytest.approx(0.5)
    chance = quality * 0.8 + 0.1  # a router that knows which prompts need the strong model
    sweep = value_choices(chance, cost.astype(float), [0.0, 0.5, 5.0])
    costs, accs = sweep.points(quality, cost)
    assert apgr(costs, accs, cheap, strong) == pytest.approx(0.75, abs=0.01)  # at 22: all of it
    assert accuracy_at_cost(costs, accs, 20) == pytest.approx(0.25 + 0.5 * 16 / 18)  # a mix
    assert cost_for_accuracy(costs, accs, 0.75) == 22.0  # two strong calls, two cheap ones
    assert list(oracle_choice(quality, cost)) == [0, 1, 1, 0]


def test_envelope_is_the_concave_hull_and_flat_beyond() -> None:
    costs = np.array([0.0, 10.0, 4.0, 12.0])
    accs = np.array([0.0, 1.0, 0.2, 0.9])
    got = envelope(costs, accs, np.array([5.0, 10.0, 20.0, -1.0]))
    assert got[0] == pytest.approx(0.5) and got[1] == 1.0 and got[2] == 1.0
    assert got[3] == -np.inf


def test_a_wide_csv_suite_loads_with_costs_in_micro_dollars(tmp_path: Path) -> None:
    path = tmp_path / "suite.csv"
    path.write_text(
        "prompt,eval_name,big,big|total_cost,small,small|total_cost\n"
        "q1,a,1,0.002,0,0.0001\nq2,a,1,0.002,1,0.0001\nq3,b,0.5,0.003,0,0.0002\n"
    )
    suite = load_wide(path)
    assert suite.models == ("big", "small") and suite.names() == ["a", "b"]
    assert suite.cost[0].tolist() == [2000, 100] and suite.quality[2].tolist() == [0.5, 0.0]
    assert len(thinned(suite, {"a": 1})) == 2
