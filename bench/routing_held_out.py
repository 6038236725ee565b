"""bench/routing on one held-out dataset: every router and baseline, and their figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.routing_calibration import ONLINE_WEIGHTS, TARGET, Recipe
from bench.routing_data import Suite
from bench.routing_eval import (
    Sweep,
    accuracy_at_cost,
    apgr,
    apgr_interval,
    best_pair_mix,
    cost_for_accuracy,
    oracle_choice,
    value_choices,
    weight_grid,
)
from bench.routing_folds import Fold, sigmoid
from bench.routing_knn import KnnRecipe, as_json
from bench.routing_online import Neighbours, replay

BUDGET_SHARE = 0.2


def figures(sweep: Sweep, test: Suite, strong: int, cheap: int) -> dict[str, Any]:
    """APGR (with interval), accuracy at 20% cost and cost share at 95% quality."""
    q, c = test.quality, test.cost
    costs, accs = sweep.points(q, c)
    strong_pt = (float(c[:, strong].sum()), float(q[:, strong].mean()))
    cheap_pt = (float(c[:, cheap].sum()), float(q[:, cheap].mean()))
    low, high = apgr_interval(sweep, q, c, cheap, strong)
    at20 = accuracy_at_cost(costs, accs, BUDGET_SHARE * strong_pt[0])
    at95 = cost_for_accuracy(costs, accs, TARGET * strong_pt[1])
    return {
        "apgr": round(apgr(costs, accs, cheap_pt, strong_pt), 4),
        "apgr_95ci": [round(low, 4), round(high, 4)],
        "accuracy_at_20pct_cost": None if at20 is None else round(at20, 4),
        "strong_accuracy": round(strong_pt[1], 4),
        "cost_share_at_95pct_quality": None if at95 is None else round(at95 / strong_pt[0], 4),
    }


def point(name: str, test: Suite, chosen: np.ndarray, strong: int) -> dict[str, Any]:
    """One strategy's accuracy, cost and strong-model share."""
    rows = np.arange(len(test))
    return {
        "name": name,
        "accuracy": round(float(test.quality[rows, chosen].mean()), 4),
        "cost": int(test.cost[rows, chosen].sum()),
        "cost_vs_strong": round(
            float(test.cost[rows, chosen].sum()) / float(test.cost[:, strong].sum()), 4
        ),
        "strong_share": round(float(np.mean(chosen == strong)), 4),
    }


def evaluate(fold: Fold, slope: float, recipe: Recipe, knn: KnnRecipe) -> dict[str, Any]:
    """Every router and baseline on one held-out dataset."""
    test = fold.test
    q, c = test.quality, test.cost
    strong = int(np.argmax(fold.suite.quality.mean(0)))
    cheap = int(np.argmin(c.sum(0)))
    chance = sigmoid(fold.ability[None, :] - slope * fold.difficulty[:, None])
    # The offline routers decide on the router's own cost estimates, not the logged costs.
    est = np.broadcast_to(fold.estimated_cost, c.shape)
    routers = {
        "difficulty": value_choices(chance, est, weight_grid(chance, est)),
        "knn": value_choices(fold.knn, est, weight_grid(fold.knn, est)),
    }
    rep = replay(fold.difficulty, q, fold.prior, fold.estimated_cost, ONLINE_WEIGHTS, slope=slope,
                 prior_strength=recipe.strength)  # fmt: skip
    routers["shipped recipe (online)"] = rep.sweep
    near = replay(fold.difficulty, q, fold.prior, fold.estimated_cost, ONLINE_WEIGHTS,
                  slope=slope, prior_strength=recipe.strength, vectors=fold.vectors,
                  neighbours=knn.neighbours)  # fmt: skip
    routers["online + neighbours"] = near.sweep
    out: dict[str, Any] = {"prompts": len(test)}
    for name, sweep in routers.items():
        out[name] = figures(sweep, test, strong, cheap)
    mix_c, mix_q = best_pair_mix(q, c)
    strong_pt = (float(c[:, strong].sum()), float(q[:, strong].mean()))
    cheap_pt = (float(c[:, cheap].sum()), float(q[:, cheap].mean()))
    at20 = accuracy_at_cost(mix_c, mix_q, BUDGET_SHARE * strong_pt[0])
    at95 = cost_for_accuracy(mix_c, mix_q, TARGET * strong_pt[1])
    out["best fixed mix of two"] = {
        "apgr": round(apgr(mix_c, mix_q, cheap_pt, strong_pt), 4),
        "accuracy_at_20pct_cost": None if at20 is None else round(at20, 4),
        "cost_share_at_95pct_quality": None if at95 is None else round(at95 / strong_pt[0], 4),
    }

    def shipped(label: str, weight: float, neighbours: Neighbours | None = None) -> dict[str, Any]:
        """The router as shipped at one value weight (the controller on), with or without
        the neighbours: its operating point on the held-out dataset."""
        one = replay(fold.difficulty, q, fold.prior, fold.estimated_cost, np.array([weight]),
                     slope=slope, target=TARGET, prior_strength=recipe.strength,
                     vectors=fold.vectors if neighbours else None,
                     neighbours=neighbours)  # fmt: skip
        chosen = one.sweep.chosen[0]
        at = point(label, test, chosen, strong)
        at.update(
            value_weight=weight,
            prior_strength=recipe.strength,
            quality_vs_strong=round(at["accuracy"] / strong_pt[1], 4),
            away_from_cheapest=round(float(np.mean(chosen != cheap)), 4),
            explored=round(float(one.explored[0].mean()), 4),
        )
        return at

    default = shipped("default_config", recipe.weight)
    out["default_config"] = default
    near_default = shipped("default_config + neighbours", knn.weight, knn.neighbours)
    # As the router ships: neighbours on, the value weight calibrated without them.
    same_default = shipped(
        "default_config + neighbours, same weight", recipe.weight, knn.neighbours
    )
    out["online_knn"] = {
        **out["online + neighbours"],
        "neighbours": as_json(knn.neighbours),
        "training_mean_apgr": round(knn.training_apgr, 4),
        "default_config": near_default,
        "default_config_same_weight": same_default,
    }
    oracle = oracle_choice(q, c)
    out["strategies"] = [
        point(f"always-strong ({test.models[strong]})", test, np.full(len(test), strong), strong),
        point(f"always-cheapest ({test.models[cheap]})", test, np.full(len(test), cheap), strong),
        point("oracle (cheapest of the best per prompt)", test, oracle, strong),
        default,
    ]
    return out
