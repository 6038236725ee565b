"""bench/routing_knn_orders: is the online router's gain from neighbours more than the order
the replay met the prompts in?

bench.routing replays each held-out dataset in one seeded order. This replays it in other
orders (seeds 1..N), with and without the neighbours setting bench.routing chose for that
fold (read from bench/results/routing.json, so nothing is chosen here), at the fold's slope
and prior strength, and prints each dataset's mean online APGR and how many orders gained.

Run: `.venv/bin/python -m bench.routing_knn_orders [--orders 8]` after `python -m bench.routing`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from bench.report import RESULTS
from bench.routing_calibration import ONLINE_WEIGHTS
from bench.routing_data import PER_DATASET
from bench.routing_eval import apgr
from bench.routing_folds import Fold, folds, load
from bench.routing_online import Neighbours, replay
from router.routing.static_embedder import StaticEmbedder


def online_apgr(
    fold: Fold, slope: float, strength: float, seed: int, neighbours: Neighbours | None
) -> float:
    """The online router's APGR on a held-out dataset replayed in the order of seed."""
    rep = replay(
        fold.difficulty, fold.test.quality, fold.prior, fold.estimated_cost, ONLINE_WEIGHTS,
        slope=slope, prior_strength=strength, seed=seed, vectors=fold.vectors,
        neighbours=neighbours,
    )  # fmt: skip
    q, c = fold.test.quality, fold.test.cost
    costs, accs = rep.sweep.points(q, c)
    strong = int(np.argmax(fold.suite.quality.mean(0)))
    cheap = int(np.argmin(c.sum(0)))
    ends = [(float(c[:, m].sum()), float(q[:, m].mean())) for m in (cheap, strong)]
    return apgr(costs, accs, ends[0], ends[1])


def main(argv: Sequence[str] | None = None) -> int:
    """Print per held-out dataset: mean online APGR without and with neighbours."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--orders", type=int, default=8)
    args = parser.parse_args(argv)
    result = json.loads((RESULTS / "routing.json").read_text())
    suites = load(argparse.Namespace(per_dataset=result["per_dataset_sample"] or PER_DATASET,
                                     data=None))  # fmt: skip
    vectors = [StaticEmbedder().embed(list(s.prompts)) for s in suites]
    seeds = range(1, args.orders + 1)
    before, after = [], []
    for fold in folds(suites, vectors):
        key = f"{fold.suite.name}/{fold.dataset}"
        held = result["held_out"][key]
        slope = result["calibration"]["slope_per_held_out"][key]
        strength = held["default_config"]["prior_strength"]
        n = held["online_knn"]["neighbours"]
        setting = Neighbours(k=int(n["k"]), c=n["c"], power=n["power"], memory=int(n["memory"]))
        b = np.array([online_apgr(fold, slope, strength, s, None) for s in seeds])
        a = np.array([online_apgr(fold, slope, strength, s, setting) for s in seeds])
        before.append(b.mean())
        after.append(a.mean())
        d = a - b
        print(f"{key:<26} {b.mean():.3f} -> {a.mean():.3f}  gain {d.mean():+.3f} "
              f"(se {d.std(ddof=1) / np.sqrt(len(d)):.3f}), up in {int((d > 0).sum())} of "
              f"{len(d)} orders")  # fmt: skip
    print(f"{'mean':<26} {np.mean(before):.3f} -> {np.mean(after):.3f}; median "
          f"{np.median(before):.3f} -> {np.median(after):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
