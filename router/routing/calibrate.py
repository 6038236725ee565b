"""Keeping the value weight calibrated to a quality target on the deployment's own traffic.

The shipped value weight (router/routing/defaults.json) was calibrated on public data; a
deployment's prompts and models differ. Per task type, ``ValueController`` keeps running
means (over about ``WINDOW`` requests) of the chance of the model each request went to and
of the best chance any model had, both from the quality book (so from the deployment's own
validated answers), and nudges the weight multiplicatively: up while the picks keep more
than ``target`` of the best (room to save), down while they keep less. It settles where the
routed quality is the target share of what always taking the best model would give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from router.routing.per_task import PerTask

WINDOW = 200
"""Requests over which the kept share is averaged (exponentially)."""
RATE = 0.2
"""Log-step of the weight per request and unit of miss: 1% per request at a 0.05 miss."""
LOWEST, HIGHEST = 1e-3, 5.0


@dataclass
class ValueController:
    """Per task type value weights, each nudged toward target (see the module docstring)."""

    start: float
    target: float = 0.95
    _weights: PerTask[float] = field(
        default_factory=lambda: PerTask("value weights"), init=False, repr=False
    )
    _kept: PerTask[tuple[float, float]] = field(
        default_factory=lambda: PerTask("value weight means"), init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.target <= 1.0:
            raise ValueError("target must lie in (0, 1]")
        if self.start < 0:
            raise ValueError("start must not be negative")

    def weight(self, task_type: str) -> float:
        """The task type's current value weight."""
        weight = self._weights.get(task_type)
        return self.start if weight is None else weight

    def observe(self, task_type: str, picked: float, best: float) -> float:
        """Fold one request (the pick's chance, the best chance); returns the new weight."""
        got, could = self._kept.get(task_type) or (self.target * best, best)
        got += (picked - got) / WINDOW
        could += (best - could) / WINDOW
        self._kept.put(task_type, (got, could))
        share = got / could if could > 0 else 1.0
        weight = max(self.weight(task_type), LOWEST) * math.exp(RATE * (share - self.target))
        weight = min(max(weight, LOWEST), HIGHEST)
        self._weights.put(task_type, weight)
        return weight
