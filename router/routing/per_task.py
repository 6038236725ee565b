"""What routing learns per task type, bounded.

Task types are whatever requests name (any subject token through NATS or the
X-FlipSync-Task-Type header), so a map keyed by them must not grow with every name a sender
invents. The least recently used task type is forgotten first; routing for it starts again
from its defaults (a running mean restarts, a value weight returns to its start).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

MAX_TASK_TYPES = 1024
"""Task types one map keeps (the shipped ones are ten)."""
V = TypeVar("V")


class PerTask(Generic[V]):
    """A value per task type, at most limit of them, the least recently used forgotten."""

    def __init__(self, what: str, limit: int = MAX_TASK_TYPES) -> None:
        self._what = what
        self._limit = limit
        self._values: OrderedDict[str, V] = OrderedDict()
        self.forgotten = 0
        """Task types dropped to keep the bound."""

    def __len__(self) -> int:
        """Task types held."""
        return len(self._values)

    def get(self, task_type: str) -> V | None:
        """The task type's value, or None (marks it recently used)."""
        value = self._values.get(task_type)
        if value is not None:
            self._values.move_to_end(task_type)
        return value

    def put(self, task_type: str, value: V) -> None:
        """Set the task type's value, forgetting the least recently used past the bound."""
        self._values[task_type] = value
        self._values.move_to_end(task_type)
        if len(self._values) > self._limit:
            dropped, _ = self._values.popitem(last=False)
            self.forgotten += 1
            if self.forgotten == 1 or self.forgotten % 1000 == 0:
                log.warning(
                    "%s: over %d task types, forgot the least recently used (%s; %d so far)",
                    self._what, self._limit, dropped, self.forgotten,
                )  # fmt: skip
