"""bench/routing's leave-one-dataset-out folds: the suites, and for each held-out dataset
what the routers trained without it predict (difficulty, ability, prior, kNN chances)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.routing_data import Suite, load_mmlupro, load_routellm, load_wide, thinned
from router.routing.difficulty import DifficultyModel, fit_rasch

RIDGE_ALPHA = 3.0
KNN_K = 64
SLOPES = np.round(np.linspace(0.0, 1.5, 16), 2)


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


def load(args: argparse.Namespace) -> list[Suite]:
    """The suites, each dataset thinned to args.per_dataset prompts."""
    suites = [load_routellm(), load_mmlupro()]
    if args.data is not None:
        suites.append(load_wide(args.data))
    return [thinned(s, dict.fromkeys(s.names(), args.per_dataset)) for s in suites]
