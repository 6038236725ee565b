"""The cyclic garbage collector, set for a long-running service.

A service's start-up leaves a few hundred thousand objects alive for good (modules, the
catalog, routing tables, compiled schemas). Left to the collector, every full collection
walks them all again: measured in the router under load, about 9% of its CPU went to the
collector, most of it to full collections of those start-up objects.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations between young-generation collections (Python's default is 700): a request
allocates a few hundred objects and frees nearly all of them by reference counting, so a
small threshold mostly rescans the requests still in flight."""


def settle_heap() -> None:
    """Collect once, then move every object alive now out of the collector's reach
    (gc.freeze), and collect the young generation less often; call once start-up is done."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
