"""A task type's shared level: how much easier or harder it is for every model than the priors say.

The priors (the catalog's quality, or a model's mean quality elsewhere) place each model on
a common scale, but a new task type moves them all: on a task where the strong model scores
0.94 instead of its 0.78 elsewhere, the cheap model likely scores well above its 0.65 too.
Without a shared level, only the model routing picks learns that (its own counts rise), the
others keep their priors, and the gap between them looks far larger than it is: routing
keeps paying for the dear model. With it, every signal on a task type also moves one
number, the task's offset in logits, and every model's prior on that task type is
``sigmoid(logit(prior) + offset)``; a model's own counts still say how it differs.

The offset is the maximum a posteriori value under a normal prior (mean 0, ``PRIOR_SD``
logits), given the task type's counts of every model: a few Newton steps (no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

PRIOR_SD = 1.0
"""Spread (in logits) a task type's level may plausibly have around the priors'."""
STEPS = 8
_CLIP = 1e-3


def logit(p: float) -> float:
    """log(p / (1 - p)), p clipped away from 0 and 1."""
    p = min(max(p, _CLIP), 1.0 - _CLIP)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    """The logistic function."""
    return 1.0 / (1.0 + math.exp(-z))


def task_offset(rows: Iterable[tuple[float, float, float]], prior_sd: float = PRIOR_SD) -> float:
    """The task type's offset in logits from (prior mean, good, bad) of each of its models."""
    data = [(logit(p), g, b) for p, g, b in rows if g + b > 0]
    if not data or prior_sd <= 0:
        return 0.0
    precision = 1.0 / (prior_sd * prior_sd)
    offset = 0.0
    for _ in range(STEPS):
        grad = -precision * offset
        hess = -precision
        for a, good, bad in data:
            p = sigmoid(a + offset)
            grad += good - (good + bad) * p
            hess -= (good + bad) * p * (1.0 - p)
        offset -= grad / hess
    return offset


def shifted(prior: float, offset: float) -> float:
    """A prior mean moved by a task type's offset."""
    return sigmoid(logit(prior) + offset)
