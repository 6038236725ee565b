"""The calibrators of one replica, one per (tenant, task type), bounded.

Task types here are the safe ones (the policies), but tenants are whatever request subjects
name: on a deployment whose NATS users are not per tenant, a sender could name a new tenant
per request, and a calibrator each would grow the replica's memory without end. The least
recently used one goes first; losing it only makes the cache stricter for that tenant and
task type (a calibrator without observations serves nothing until it learns again).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from router.semantic.calibration import Calibrator

log = logging.getLogger(__name__)

MAX_CALIBRATORS = 4096
"""(tenant, task type) pairs one replica learns for at once, by default (each at most about
0.5 MB when full, a few kB when new)."""
Key = tuple[str, str]
"""(tenant, task type)."""


class Calibrators:
    """A calibrator per (tenant, task type), the least recently used forgotten past a bound."""

    def __init__(self, limit: int = MAX_CALIBRATORS) -> None:
        self._limit = limit
        self._held: OrderedDict[Key, Calibrator] = OrderedDict()
        self.forgotten = 0
        """How many calibrators were dropped to keep the bound."""

    def __len__(self) -> int:
        """Calibrators held."""
        return len(self._held)

    def get(self, tenant: str, task_type: str) -> Calibrator | None:
        """The calibrator of a tenant and task type, if held (not marked as used)."""
        return self._held.get((tenant, task_type))

    def of(self, tenant: str, task_type: str) -> Calibrator:
        """The calibrator of a tenant and task type, made if new, marked most recently used."""
        key = (tenant, task_type)
        calibrator = self._held.get(key)
        if calibrator is not None:
            self._held.move_to_end(key)
            return calibrator
        calibrator = self._held[key] = Calibrator()
        if len(self._held) > self._limit:
            (old_tenant, old_task), _ = self._held.popitem(last=False)
            self.forgotten += 1
            log.warning(
                "semantic cache: over %d (tenant, task type) calibrators, forgot the least "
                "recently used (%s, %s): it serves nothing until it learns again "
                "(%d forgotten so far)",
                self._limit, old_tenant, old_task, self.forgotten,
            )  # fmt: skip
        return calibrator
