"""flipsync.heap: start-up objects are moved out of the collector's reach, and cycles made
after start-up are still collected."""

from __future__ import annotations

import gc
import weakref

from flipsync.heap import YOUNG_THRESHOLD, settle_heap


class _Node:
    """An object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settled_heap_freezes_startup_and_still_collects_new_cycles() -> None:
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000  # the interpreter's and pytest's objects at least
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None  # a cycle made after start-up is not frozen with it
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
