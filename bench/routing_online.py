"""The router as shipped, replayed on a held-out dataset: it learns the models' quality there
only from the answers it routes (pure numpy, no I/O).

Per prompt, in a seeded random order, as the route stage does: each model's task-level
quality is its discounted Beta estimate (prior: its mean quality on the other datasets,
worth ``prior_strength`` answers, 20 as shipped; discount 0.98 per answer), its chance on
the prompt comes from the
prompt's predicted difficulty against the running mean difficulty (router.routing.predict),
the value rule picks the model (router.routing.policy, value mode, no floor), 3% of
prompts explore a cheaper model (router.routing.explore), and the chosen model's quality on
the prompt (its validator verdict) is recorded. Many value weights run side by side, each
with its own book, so one pass gives the shipped router's whole cost/quality curve.

Costs the router estimates are each model's mean cost on the training datasets (it knows
the prompt, not the answer's length); costs charged are the logged ones.

With ``neighbours`` (issue 14's next step), each model also remembers the prompt vectors of
the last ``memory`` prompts it answered in this replay (routed or explored: only outcomes
of models it called), and its chance on a new prompt becomes
``(c * chance + sum(s * y)) / (c + sum(s))`` over its k most similar remembered prompts
(s: cosine similarity, clipped at 0; y: the outcome): the prediction above, worth c
answers, moved toward what the model did on prompts like this one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.routing_eval import Sweep
from router.routing.calibrate import ValueController
from router.routing.explore import cheaper_pick, explores
from router.routing.offset import STEPS as OFFSET_STEPS
from router.routing.predict import MEAN_WINDOW

PRIOR_STRENGTH = 20.0
DISCOUNT = 0.98
EXPLORE_SHARE = 0.03
_CLIP = 1e-3
MEMORY = 256
"""Outcomes remembered per model (the last ones), as router.routing.neighbours keeps."""


@dataclass(frozen=True, kw_only=True)
class Neighbours:
    """The nearest-outcomes blend: k neighbours, the prediction worth c answers."""

    k: int
    c: float
    power: float = 1.0
    """Similarities count raised to this power (above 1: nearer prompts weigh more)."""
    memory: int = MEMORY


class _Memory:
    """Each weight's book's per-model ring of (prompt index, outcome), read by similarity."""

    def __init__(self, sims: np.ndarray, lw: int, m: int, setting: Neighbours) -> None:
        self._sims = sims
        self._s = setting
        self._idx = np.zeros((lw, m, setting.memory), dtype=np.int64)
        self._y = np.zeros((lw, m, setting.memory))
        self._n = np.zeros((lw, m), dtype=np.int64)

    def blend(self, i: int, chance: np.ndarray) -> np.ndarray:
        """Chances (weights x models) on prompt i moved toward its neighbours' outcomes."""
        top = int(min(self._n.max(), self._s.memory))
        if top == 0:
            return chance
        filled = np.minimum(self._n, self._s.memory)[..., None]
        sims = self._sims[i][self._idx[..., :top]].clip(0.0) ** self._s.power
        sims = np.where(np.arange(top)[None, None, :] < filled, sims, 0.0)
        ys = self._y[..., :top]
        if top > self._s.k:
            near = np.argpartition(-sims, self._s.k - 1, axis=2)[..., : self._s.k]
            sims = np.take_along_axis(sims, near, 2)
            ys = np.take_along_axis(ys, near, 2)
        c = self._s.c
        return np.asarray((c * chance + (sims * ys).sum(2)) / (c + sims.sum(2)))

    def record(self, i: int, pick: np.ndarray, verdict: np.ndarray) -> None:
        """Remember prompt i's outcome for each weight's picked model."""
        rows = np.arange(len(pick))
        slot = self._n[rows, pick] % self._s.memory
        self._idx[rows, pick, slot] = i
        self._y[rows, pick, slot] = verdict
        self._n[rows, pick] += 1


@dataclass(frozen=True, kw_only=True)
class Replay:
    """What the online router saw: the order it met the prompts in and its choices."""

    sweep: Sweep
    explored: np.ndarray
    """weights x prompts: whether the prompt explored."""


def replay(
    difficulty: np.ndarray,
    quality: np.ndarray,
    prior: np.ndarray,
    estimated_cost: np.ndarray,
    weights: np.ndarray,
    *,
    slope: float,
    seed: int = 14,
    target: float | None = None,
    offset_sd: float = 0.0,
    prior_strength: float = PRIOR_STRENGTH,
    vectors: np.ndarray | None = None,
    neighbours: Neighbours | None = None,
) -> Replay:
    """Replay prompts (rows of quality, prompts x models) at every value weight at once;
    with a target, each weight is only the start of a router.routing.calibrate controller;
    offset_sd above 0: priors move by the task's shared offset (router.routing.offset);
    with neighbours (and the prompts' unit vectors), chances blend the nearest outcomes."""
    n, m = quality.shape
    lw = len(weights)
    order = np.random.default_rng(seed).permutation(n)
    prior = np.clip(prior, _CLIP, 1 - _CLIP)
    good = np.zeros((lw, m))
    bad = np.zeros((lw, m))
    relative = estimated_cost / estimated_cost.max()
    by_cost = np.argsort(estimated_cost, kind="stable")
    chosen = np.zeros((lw, n), dtype=np.int64)
    explored = np.zeros((lw, n), dtype=bool)
    mean = float(difficulty[order[0]])
    rows = np.arange(lw)
    controllers = (
        [ValueController(start=float(w), target=target) for w in weights] if target else []
    )
    memory = None
    if neighbours is not None:
        if vectors is None:
            raise ValueError("neighbours need the prompts' vectors")
        memory = _Memory(vectors @ vectors.T, lw, m, neighbours)
    for i in order:
        if controllers:
            weights = np.array([c.weight("t") for c in controllers])
        shifted = _shifted(prior, good, bad, offset_sd) if offset_sd > 0 else prior[None, :]
        q = (shifted * prior_strength + good) / (prior_strength + good + bad)
        q = np.clip(q, _CLIP, 1 - _CLIP)
        z = np.log(q / (1 - q)) - slope * (difficulty[i] - mean)
        chance = 1.0 / (1.0 + np.exp(-z))
        if memory is not None:
            chance = memory.blend(int(i), np.broadcast_to(chance, (lw, m)))
        pick = np.argmax(chance - weights[:, None] * relative[None, :], axis=1)
        rid = f"prompt-{i}"
        if explores(rid, EXPLORE_SHARE):
            for w in range(lw):
                options = [int(k) for k in by_cost]
                costs = [int(estimated_cost[k] * 1000) for k in options]
                other = cheaper_pick(rid, options, costs, int(estimated_cost[pick[w]] * 1000))
                if other is not None:
                    pick[w] = other
                    explored[w, i] = True
        chosen[:, i] = pick
        for w, c in enumerate(controllers):
            c.observe("t", float(chance[w, pick[w]]), float(chance[w].max()))
        verdict = quality[i, pick]
        good[rows, pick] = good[rows, pick] * DISCOUNT + verdict  # as QualityBook.record
        bad[rows, pick] = bad[rows, pick] * DISCOUNT + (1 - verdict)
        if memory is not None:
            memory.record(int(i), pick, verdict)
        mean += (float(difficulty[i]) - mean) / MEAN_WINDOW
    return Replay(sweep=Sweep(weights=weights, chosen=chosen), explored=explored)


def _shifted(prior: np.ndarray, good: np.ndarray, bad: np.ndarray, sd: float) -> np.ndarray:
    """Each weight's priors moved by its task offset (router.routing.offset.task_offset,
    vectorised over the weights' books)."""
    a = np.log(prior / (1 - prior))[None, :]
    n = good + bad
    offset = np.zeros((good.shape[0], 1))
    precision = 1.0 / (sd * sd)
    for _ in range(OFFSET_STEPS):
        p = 1.0 / (1.0 + np.exp(-(a + offset)))
        grad = (good - n * p).sum(1, keepdims=True) - precision * offset
        hess = -(n * p * (1 - p)).sum(1, keepdims=True) - precision
        offset = offset - grad / hess
    return np.asarray(1.0 / (1.0 + np.exp(-(a + offset))))
