"""Threshold policy and the in-process vector index of the semantic cache (no servers)."""

from __future__ import annotations

import numpy as np

from router.semantic.index import EntryMeta, LocalIndex, PartitionIndex
from router.semantic.policy import (
    Candidate,
    NearDuplicatePolicy,
    TaskPolicy,
    decide,
    decide_near_duplicate,
    policies,
)

POLICY = TaskPolicy(threshold=0.75, margin=0.125)


def cand(entry_id: str, similarity: float, answer: str = "A", created_ms: int = 0) -> Candidate:
    """A candidate entry."""
    return Candidate(
        entry_id=entry_id, similarity=similarity, answer_key=answer, created_ms=created_ms
    )


def test_best_entry_above_threshold_hits() -> None:
    """A clear best match at or above the threshold is served."""
    decision = decide([cand("b", 0.6, "B"), cand("a", 0.9)], POLICY)
    assert decision.entry is not None and decision.entry.entry_id == "a"
    assert decide([cand("a", 0.75)], POLICY).entry is not None


def test_below_threshold_misses() -> None:
    """Nothing similar enough: a miss, with the reason."""
    decision = decide([cand("a", 0.749)], POLICY)
    assert decision.entry is None and "below" in decision.reason
    assert decide([], POLICY).entry is None


def test_close_rival_answer_makes_it_ambiguous() -> None:
    """A question between two cached answers is a miss, however close it is to one."""
    decision = decide([cand("a", 0.95, "A"), cand("b", 0.9, "B")], POLICY)
    assert decision.entry is None and "ambiguous" in decision.reason


def test_agreeing_neighbours_outweigh_a_stray_rival() -> None:
    """Support is the mean of the two nearest agreeing entries, against the two nearest others."""
    alone = [cand("a1", 0.9, "A"), cand("a2", 0.7, "A"), cand("b", 0.8, "B"), cand("c", 0.6, "C")]
    assert decide(alone, POLICY).entry is None  # (0.9 + 0.7) / 2 - (0.8 + 0.6) / 2 < 0.125
    backed = [cand("a1", 0.9, "A"), cand("a2", 0.88, "A"), cand("b", 0.8, "B"), cand("c", 0.6, "C")]
    decision = decide(backed, POLICY)
    assert decision.entry is not None and decision.entry.entry_id == "a1"


def test_same_answers_are_never_rivals() -> None:
    """Entries that give the same answer support each other."""
    decision = decide([cand("a1", 0.8), cand("a2", 0.79), cand("a3", 0.78)], POLICY)
    assert decision.entry is not None and decision.entry.entry_id == "a1"


def test_policies_cover_only_configured_task_types() -> None:
    """Safe task types are exactly the configured ones, with their margins and TTLs."""
    built = policies({"seller_chat": 0.8, "market_data": 0.9}, {"market_data": 0.2}, {}, 60)
    assert set(built) == {"seller_chat", "market_data"}
    assert built["market_data"] == TaskPolicy(threshold=0.9, margin=0.2, ttl_s=60)
    assert built["seller_chat"].margin == 0.1


def test_near_duplicate_needs_recency_and_similarity() -> None:
    """0.95 within the window; older or less similar entries do not count."""
    near = NearDuplicatePolicy(task_types=frozenset({"seller_chat"}))
    now = 1_000_000_000
    fresh = cand("a", 0.96, created_ms=now - 299_000)
    assert decide_near_duplicate([fresh], near, now).entry == fresh
    assert (
        decide_near_duplicate([cand("a", 0.96, created_ms=now - 301_000)], near, now).entry is None
    )
    assert decide_near_duplicate([cand("a", 0.94, created_ms=now)], near, now).entry is None


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    """n random unit vectors."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    normalised: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return normalised


def test_partition_index_exact_and_hnsw_agree() -> None:
    """A partition moves to HNSW at its size bound and still finds the nearest entries."""
    rng = np.random.default_rng(5)
    vectors = unit(rng, 40)
    small, large = PartitionIndex(16, exact_below=1000), PartitionIndex(16, exact_below=8)
    for i, v in enumerate(vectors):
        small.add(f"e{i}", v)
        large.add(f"e{i}", v)
    assert large.uses_hnsw and not small.uses_hnsw
    for q in vectors[:10]:
        exact, approx = small.search(q, 3), large.search(q, 3)
        assert exact[0][0] == approx[0][0]
        assert abs(exact[0][1] - approx[0][1]) < 1e-4 and abs(exact[0][1] - 1.0) < 1e-4
    large.remove("e0")
    small.remove("e0")
    assert large.search(vectors[0], 1)[0][0] != "e0"
    assert small.search(vectors[0], 1)[0][0] != "e0"
    assert len(large) == len(small) == 39


def meta(tenant: str, entry_id: str, partition: str = "p", expires_ms: int = 10**15) -> EntryMeta:
    """An entry's metadata."""
    return EntryMeta(
        tenant=tenant,
        entry_id=entry_id,
        partition=partition,
        answer_key="A",
        created_ms=0,
        expires_ms=expires_ms,
    )


def test_local_index_isolates_tenants_bounds_size_and_drops_expired() -> None:
    """Searches see one tenant's partition; the oldest entries go first; expired ones never."""
    rng = np.random.default_rng(7)
    v = unit(rng, 4)
    index = LocalIndex(16, exact_below=256, max_entries=3)
    index.add(meta("t1", "a"), v[0])
    index.add(meta("t2", "a"), v[0])  # the same id in another tenant is another entry
    assert [c.entry_id for c in index.nearest("t1", "p", v[0], 5, now_ms=0)] == ["a"]
    assert index.nearest("t3", "p", v[0], 5, now_ms=0) == []
    index.add(meta("t1", "b", expires_ms=100), v[1])
    index.add(meta("t1", "c"), v[2])  # the fourth entry evicts the oldest, (t1, a)
    assert len(index) == 3 and ("t1", "a") not in index and ("t2", "a") in index
    found = index.nearest("t1", "p", v[1], 5, now_ms=100)
    assert [c.entry_id for c in found] == ["c"] and ("t1", "b") not in index
