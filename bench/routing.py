"""bench/routing: does the router earn its savings on prompts it has never seen?

Leave-one-dataset-out over every public dataset in bench.routing_data (RouteLLM: GSM8K,
MMLU STEM / humanities / social / other, MT-Bench, two models; MMLU-Pro: original MMLU,
STEM websites, TheoremQA, SciBench, ten models): for each dataset, the router learns from
the others only and is measured on it. No RouterBench data, nor anything derived from it.

Routers, side by side on each held-out dataset:
- ``difficulty`` (what ships): Rasch difficulty predicted from the prompt's vector (static
  MiniLM word-piece vectors, router.routing.static_embedder; ``--features minilm`` runs
  MiniLM itself instead, for comparison)
  (router.routing.difficulty; the ridge regression learns from every other dataset of both
  suites) and each model's ability fitted on the suite's other datasets.
- ``knn``: each model's mean quality over the 64 nearest training prompts (cosine, same vectors),
  shrunk toward its mean: needs recorded outcomes of the very models it routes between.
- ``shipped recipe (online)``: the router as it runs (bench.routing_online): it knows the
  models only by their mean quality elsewhere and learns the held-out dataset from the
  answers it routes, with forgetting and 3% exploring.
- ``online + neighbours``: the same, each model's chance also moved toward its outcomes on
  the most similar prompts the replay sent it (bench.routing_online.Neighbours,
  router.routing.neighbours); k, c and power chosen on the other datasets
  (bench.routing_knn), written as ``online_knn`` per held-out dataset.
Baselines: always-strong (the suite's most accurate model), always-cheapest, random mixing
of the two at matched cost (APGR 0.5), the best fixed random mix of any two models, and the
oracle (per prompt the cheapest model among the best). Figures: APGR against random with a
95% bootstrap interval, the best accuracy at <= 20% of always-strong's cost, and the lowest
cost share that keeps 95% of always-strong's accuracy.

``default_config`` is the shipped recipe at one prior strength (of PRIOR_STRENGTHS, the one
whose online router has the best mean APGR) and one value weight (the median largest weight
keeping 95% of the strong model's quality), both calibrated on the other datasets only;
router/routing/defaults.json ships the weight calibrated on all of them (the prior strength
is the routing.quality_prior_strength setting's default), and router/routing/difficulty.json
the difficulty model trained on all of them (``--write-shipped``).

Run: `.venv/bin/python -m bench.routing` (about 3 minutes; the static table is built once per
machine, ~15 s; with `--features minilm` the ~3,300 prompts' embeddings are cached under
~/.cache/flipsync, minutes the first time). `--data FILE` adds a
suite in the wide CSV layout of bench.routing_data.load_wide.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import write
from bench.routing_data import (
    PER_DATASET,
    Suite,
    embeddings,
    load_mmlupro,
    load_routellm,
    load_wide,
    thinned,
)
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
from bench.routing_knn import KnnRecipe, KnnScores, as_json, calibrated_knn
from bench.routing_online import Neighbours, replay
from bench.routing_report import pooled, print_fold, print_knn
from bus.settings_sections import RoutingSettings
from router.routing.defaults import ShippedDefaults
from router.routing.difficulty import DifficultyModel, fit_rasch
from router.routing.static_embedder import StaticEmbedder

TARGET = 0.95
BUDGET_SHARE = 0.2
RIDGE_ALPHA = 3.0
KNN_K = 64
SLOPES = np.round(np.linspace(0.0, 1.5, 16), 2)
ONLINE_WEIGHTS = np.round(np.concatenate([np.linspace(0.0, 0.5, 51), [0.6, 0.8, 1.0, 2.0]]), 3)
PRIOR_STRENGTHS = (50.0, 35.0, 20.0)
"""The prior strengths (answers a model's prior is worth) the calibration chooses among: all
keep one early failure of gpt-4o-mini (catalog 0.74) above the agents' 0.7 floor, which
needs at least 17.5."""
ROUTER_DIR = Path(__file__).resolve().parents[1] / "router" / "routing"


@dataclass(frozen=True, kw_only=True)
class Fold:
    """One held-out dataset of a suite, with what the routers predicted for it."""

    suite: Suite
    dataset: str
    test: Suite
    difficulty: np.ndarray
    """Predicted difficulty of each test prompt."""
    ability: np.ndarray
    """Rasch ability of each model on the suite's other datasets."""
    prior: np.ndarray
    """Each model's mean quality on the suite's other datasets."""
    estimated_cost: np.ndarray
    """Each model's mean cost on the suite's other datasets (the router's cost estimate)."""
    knn: np.ndarray
    """kNN chance per test prompt and model."""
    vectors: np.ndarray
    """The test prompts' unit vectors (what the online router's neighbours compare)."""


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Elementwise logistic."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def knn_chances(train_v: np.ndarray, train_q: np.ndarray, test_v: np.ndarray) -> np.ndarray:
    """Similarity-weighted mean quality of the K nearest training prompts, shrunk to the mean."""
    sims = test_v @ train_v.T
    k = min(KNN_K, sims.shape[1] - 1)
    idx = np.argpartition(-sims, k, axis=1)[:, :k]
    w = np.take_along_axis(sims, idx, 1).clip(0.0)
    num = np.einsum("qk,qkm->qm", w, train_q[idx])
    return np.asarray((num + 5.0 * train_q.mean(0)) / (w.sum(1, keepdims=True) + 5.0))


def centred(suite: Suite, difficulty: np.ndarray) -> np.ndarray:
    """Difficulty minus its dataset's mean: the router centres on each task type's running
    mean, so the regression learns what makes a prompt hard within its dataset."""
    names = np.array(suite.datasets)
    out = difficulty.copy()
    for name in suite.names():
        mask = names == name
        out[mask] -= difficulty[mask].mean()
    return out


def folds(suites: Sequence[Suite], vectors: Sequence[np.ndarray]) -> list[Fold]:
    """Every (suite, held-out dataset) with the routers trained without that dataset."""
    rasch_all = [centred(s, fit_rasch(s.quality)[0]) for s in suites]
    out = []
    for si, (suite, vec) in enumerate(zip(suites, vectors, strict=True)):
        names = np.array(suite.datasets)
        for dataset in suite.names():
            test, train = names == dataset, names != dataset
            difficulty, ability = fit_rasch(suite.quality[train])
            difficulty = centred(suite.subset(train), difficulty)
            xs = [vec[train]] + [v for j, v in enumerate(vectors) if j != si]
            ys = [difficulty] + [d for j, d in enumerate(rasch_all) if j != si]
            model = DifficultyModel.fit(np.vstack(xs), np.concatenate(ys), alpha=RIDGE_ALPHA)
            out.append(
                Fold(
                    suite=suite,
                    dataset=dataset,
                    test=suite.subset(test),
                    difficulty=model.predict(vec[test]),
                    ability=ability,
                    prior=suite.quality[train].mean(0),
                    estimated_cost=suite.cost[train].mean(0),
                    knn=knn_chances(vec[train], suite.quality[train], vec[test]),
                    vectors=vec[test],
                )
            )
    return out


def fit_slope(all_folds: Sequence[Fold]) -> float:
    """The slope (trust in predicted difficulty spread) with the best held-out likelihood,
    each dataset's models at their true mean quality there (as a deployment learns it)."""
    best, best_ll = 1.0, -np.inf
    for slope in SLOPES:
        ll = 0.0
        for f in all_folds:
            q = np.clip(f.test.quality.mean(0), 1e-3, 1 - 1e-3)
            centred = f.difficulty - f.difficulty.mean()
            p = sigmoid(np.log(q / (1 - q))[None, :] - slope * centred[:, None])
            y = f.test.quality
            ll += float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if ll > best_ll:
            best, best_ll = float(slope), ll
    return best


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


def online_weight(
    fold: Fold, slope: float, strong: int, strength: float, neighbours: Neighbours | None = None
) -> tuple[float, float]:
    """The largest value weight at which the online router (prior worth strength answers,
    nearest outcomes blended in with neighbours) keeps TARGET of strong quality, and that
    router's APGR over its weights."""
    rep = replay(
        fold.difficulty, fold.test.quality, fold.prior, fold.estimated_cost,
        ONLINE_WEIGHTS, slope=slope, prior_strength=strength, vectors=fold.vectors,
        neighbours=neighbours,
    )  # fmt: skip
    q, c = fold.test.quality, fold.test.cost
    costs, accs = rep.sweep.points(q, c)
    target = TARGET * float(q[:, strong].mean())
    ok = [float(w) for w, a in zip(ONLINE_WEIGHTS, accs, strict=True) if a >= target]
    cheap = int(np.argmin(c.sum(0)))
    ends = [(float(c[:, m].sum()), float(q[:, m].mean())) for m in (cheap, strong)]
    return (max(ok) if ok else 0.0), apgr(costs, accs, ends[0], ends[1])


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The shipped recipe's calibration: prior strength and value weight."""

    strength: float
    weight: float


def calibrated(
    found: dict[tuple[str, str, float], tuple[float, float]], keys: Sequence[tuple[str, str]]
) -> Recipe:
    """The recipe calibrated on the datasets keys: the prior strength with the best mean
    APGR of the online router over them (ties: the stronger prior), then the median of their
    largest weights keeping TARGET at that strength."""

    def score(strength: float) -> float:
        return float(np.mean([found[(*k, strength)][1] for k in keys]))

    strength = max(PRIOR_STRENGTHS, key=lambda s: (round(score(s), 6), s))
    return Recipe(
        strength=strength, weight=float(np.median([found[(*k, strength)][0] for k in keys]))
    )


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


def load(args: argparse.Namespace) -> list[Suite]:
    """The suites, each dataset thinned to args.per_dataset prompts."""
    suites = [load_routellm(), load_mmlupro()]
    if args.data is not None:
        suites.append(load_wide(args.data))
    return [thinned(s, dict.fromkeys(s.names(), args.per_dataset)) for s in suites]


def main(argv: Sequence[str] | None = None) -> int:
    """Leave-one-dataset-out over every suite; write bench/results/routing.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--per-dataset", type=int, default=PER_DATASET)
    parser.add_argument("--data", type=Path, default=None, help="a wide CSV suite of your own")
    parser.add_argument(
        "--write-shipped", action="store_true", help="retrain the shipped router files"
    )
    parser.add_argument(
        "--features",
        choices=("static", "minilm"),
        default="static",
        help="prompt vectors of the difficulty regression and kNN: the router's static "
        "MiniLM vectors (shipped), or MiniLM itself (results to routing-minilm.json)",
    )
    args = parser.parse_args(argv)
    if args.write_shipped and args.features != "static":
        parser.error("--write-shipped trains the router's own vectors: use --features static")
    started = time.perf_counter()
    suites = load(args)
    if args.features == "static":
        vectors = [StaticEmbedder().embed(list(s.prompts)) for s in suites]
    else:
        vectors = [embeddings(s) for s in suites]
    all_folds = folds(suites, vectors)
    by_slope: dict[float, dict[tuple[str, str, float], tuple[float, float]]] = {}

    def found_at(slope: float) -> dict[tuple[str, str, float], tuple[float, float]]:
        """Each dataset's largest weight keeping TARGET and its online APGR, at slope."""
        if slope not in by_slope:
            by_slope[slope] = {
                (f.suite.name, f.dataset, strength): online_weight(
                    f, slope, int(np.argmax(f.suite.quality.mean(0))), strength
                )
                for f in all_folds
                for strength in PRIOR_STRENGTHS
            }
        return by_slope[slope]

    names = [(f.suite.name, f.dataset) for f in all_folds]
    by_name = {(f.suite.name, f.dataset): f for f in all_folds}
    knn_scores = KnnScores(
        names,
        lambda key, slope, strength, setting: online_weight(
            by_name[key], slope, int(np.argmax(by_name[key].suite.quality.mean(0))), strength,
            setting,
        ),
    )  # fmt: skip
    held_out: dict[str, Any] = {}
    slopes: dict[str, float] = {}
    for f in all_folds:
        key = f"{f.suite.name}/{f.dataset}"
        # Everything chosen for this fold (slope, prior strength, weight) sees only the
        # other datasets' answers: the held-out one's correctness chooses nothing.
        others = [k for k in names if k != (f.suite.name, f.dataset)]
        slopes[key] = fit_slope([g for g in all_folds if g is not f])
        recipe = calibrated(found_at(slopes[key]), others)
        knn = calibrated_knn(knn_scores.at(slopes[key], recipe.strength, others), others)
        held_out[key] = evaluate(f, slopes[key], recipe, knn)
        print_fold(key, held_out[key])
    slope = fit_slope(all_folds)  # what ships is fitted on every dataset
    found = found_at(slope)
    shipped = calibrated(found, names)
    shipped_weight = shipped.weight
    shipped_knn = calibrated_knn(knn_scores.at(slope, shipped.strength, names), names)
    if shipped.strength != RoutingSettings().quality_prior_strength:
        print(f"note: calibration picks prior strength {shipped.strength:g}, the setting's "
              f"default is {RoutingSettings().quality_prior_strength:g}")  # fmt: skip
    routellm = [k for k in held_out if k.startswith("routellm/")]
    result = {
        "test_prompts": sum(held_out[k]["prompts"] for k in held_out),
        "strategies": pooled(held_out, routellm),
        "held_out": {
            k: {
                **{x: v["difficulty"][x] for x in v["difficulty"]},
                "default_config": v["default_config"],
                "routers": {
                    n: v[n]
                    for n in (
                        "difficulty",
                        "knn",
                        "shipped recipe (online)",
                        "best fixed mix of two",
                    )
                },  # fmt: skip
                "strategies": v["strategies"],
                "prompts": v["prompts"],
                "online_knn": v["online_knn"],
            }
            for k, v in held_out.items()
        },
        "default_config": {k: held_out[k]["default_config"] for k in held_out},
        "calibration": {
            "target": TARGET,
            "slope": slope,
            "slope_per_held_out": slopes,
            "value_weight_per_held_out": {
                f"{a}/{b}": found[(a, b, shipped.strength)][0] for a, b in names
            },
            "by_prior_strength": {
                str(strength): {
                    f"{a}/{b}": {
                        "weight": found[(a, b, strength)][0],
                        "online_apgr": round(found[(a, b, strength)][1], 4),
                    }
                    for a, b in names
                }  # fmt: skip
                for strength in PRIOR_STRENGTHS
            },
            "shipped_value_weight": shipped_weight,
            "shipped_prior_strength": shipped.strength,
            "neighbours_on_all": {
                **as_json(shipped_knn.neighbours),
                "value_weight": shipped_knn.weight,
                "mean_online_apgr": round(shipped_knn.training_apgr, 4),
            },
        },
        "features": args.features,
        "per_dataset_sample": args.per_dataset,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.write_shipped:
        ship(suites, vectors, slope, shipped_weight, result)
    print_knn(held_out)
    n = shipped_knn.neighbours
    print(f"neighbours calibrated on every dataset: k {n.k}, c {n.c:g}, power {n.power:g}, "
          f"value weight {shipped_knn.weight:.3f}")  # fmt: skip
    path = write("routing" if args.features == "static" else f"routing-{args.features}", result)
    print(f"\nslope {slope}, shipped value weight {shipped_weight:.3f}, prior strength "
          f"{shipped.strength:g}; wrote {path}")  # fmt: skip
    return 0


def ship(
    suites: Sequence[Suite],
    vectors: Sequence[np.ndarray],
    slope: float,
    weight: float,
    result: dict[str, Any],
) -> None:
    """Train the difficulty model on every prompt and write the shipped files."""
    ys = [centred(s, fit_rasch(s.quality)[0]) for s in suites]
    meta = {
        "data": {s.name: {"prompts": len(s), "models": list(s.models)} for s in suites},
        "sources": "lm-sys/RouteLLM @0b64fdaf (Apache-2.0); TIGER-AI-Lab/MMLU-Pro @f418b11 "
        "(Apache-2.0); see bench/data/README.md",
        "command": "python -m bench.routing --write-shipped",
        "ridge_alpha": RIDGE_ALPHA,
    }
    model = DifficultyModel.fit(
        np.vstack(vectors), np.concatenate(ys), alpha=RIDGE_ALPHA, slope=slope, meta=meta
    )
    model.save(ROUTER_DIR / "difficulty.json")
    ShippedDefaults(
        value_weight=weight,
        quality_target=TARGET,
        meta={
            "how": "median over held-out public datasets of the largest value weight at "
            "which the online router keeps the target share of the strong model's quality, "
            "at the prior strength (routing.quality_prior_strength) whose online router has "
            "the best mean APGR over them",
            "prior_strength": result["calibration"]["shipped_prior_strength"],
            "per_held_out": result["calibration"]["value_weight_per_held_out"],
            "command": "python -m bench.routing --write-shipped",
        },
    ).save(ROUTER_DIR / "defaults.json")


if __name__ == "__main__":
    sys.exit(main())
