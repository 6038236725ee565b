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

This module is the command; the folds are bench.routing_folds, the calibration
bench.routing_calibration, one held-out dataset's figures bench.routing_held_out and the
shipped files bench.routing_ship.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import write
from bench.routing_calibration import PRIOR_STRENGTHS, TARGET, calibrated, online_weight
from bench.routing_data import PER_DATASET, embeddings
from bench.routing_folds import fit_slope, folds, load
from bench.routing_held_out import evaluate
from bench.routing_knn import KnnScores, as_json, calibrated_knn
from bench.routing_report import pooled, print_fold, print_knn
from bench.routing_ship import ship
from bus.settings_sections import RoutingSettings
from router.routing.static_embedder import StaticEmbedder


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


if __name__ == "__main__":
    sys.exit(main())
