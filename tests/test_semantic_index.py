"""The in-process index's pending entries: held (and bounded) before their vector is known,
searchable once filled."""

from __future__ import annotations

import numpy as np

from router.semantic.index import EntryMeta, LocalIndex


def meta(entry_id: str, partition: str = "p", expires_ms: int = 10**15) -> EntryMeta:
    """An entry of tenant t that lives for ever (as far as these tests look), or until
    expires_ms."""
    return EntryMeta(
        tenant="t",
        entry_id=entry_id,
        partition=partition,
        answer_key=entry_id,
        created_ms=0,
        expires_ms=expires_ms,
    )


def unit(*values: float) -> np.ndarray:
    """A unit vector."""
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_pending_entry_is_held_not_searched_until_filled() -> None:
    index = LocalIndex(2, exact_below=256, max_entries=10)
    assert not index.holds("t", "p")
    index.add_pending(meta("a"), "question a")
    assert index.holds("t", "p") and len(index) == 1 and ("t", "a") in index
    assert index.pending("t", "p", 1) == [("a", "question a")]
    assert index.nearest("t", "p", unit(1, 0), 5, now_ms=1) == []
    index.fill("t", "a", unit(1, 0))
    index.fill("t", "a", unit(0, 1))  # filled already: a second vector changes nothing
    assert index.pending("t", "p", 1) == []
    (found,) = index.nearest("t", "p", unit(1, 0), 5, now_ms=1)
    assert found.entry_id == "a" and found.similarity > 0.99


def test_pending_entries_count_toward_the_bound_and_can_be_removed() -> None:
    index = LocalIndex(2, exact_below=256, max_entries=2)
    index.add_pending(meta("a"), "a")
    index.add(meta("b", "q"), unit(1, 0))
    index.add_pending(meta("c"), "c")  # the oldest, a (pending), goes
    assert ("t", "a") not in index and len(index) == 2
    assert index.pending("t", "p", 1) == [("c", "c")]
    index.remove("t", "c")
    assert not index.holds("t", "p") and index.holds("t", "q")
    index.fill("t", "c", unit(1, 0))  # gone: nothing to fill
    assert not index.holds("t", "p")


def test_an_expired_pending_entry_is_forgotten_not_handed_out() -> None:
    index = LocalIndex(2, exact_below=256, max_entries=10)
    index.add_pending(meta("old", expires_ms=100), "old question")
    index.add_pending(meta("new"), "new question")
    assert index.pending("t", "p", 50) == [("old", "old question"), ("new", "new question")]
    assert index.pending("t", "p", 100) == [("new", "new question")]
    assert ("t", "old") not in index and len(index) == 1
