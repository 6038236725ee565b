"""The shared embedder: concurrent requests are embedded in one call, each text once, rows in
order; the route stage and the semantic cache share a request's vector through it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from router.semantic.batching import MAX_BATCH, BatchEmbedder, embed_sorted
from router.semantic.protocol import Vectors


class CountingEmbedder:
    """Stand-in embedder: a text's vector is its length and first letter; calls are kept."""

    name = "counting"
    dim = 2
    max_tokens = 256

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def token_count(self, text: str) -> int:
        """One token per word, plus two."""
        return len(text.split()) + 2

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Rows [len, first letter code]; raises when told to fail."""
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("model broken")
        rows = [[float(len(t)), float(ord(t[0])) if t else 0.0] for t in texts]
        return np.array(rows, dtype=np.float32).reshape(len(texts), 2)


def expected(text: str) -> list[float]:
    """The stand-in's vector of text."""
    return [float(len(text)), float(ord(text[0]))]


async def test_concurrent_requests_share_one_call_and_each_text_is_embedded_once() -> None:
    inner = CountingEmbedder()
    shared = BatchEmbedder(inner)
    texts = [f"question {i}" for i in range(MAX_BATCH - 2)] + ["question 3", "question 7"]
    vectors = await asyncio.gather(*(shared.vector(t) for t in texts))
    assert len(inner.calls) == 1  # everything that waited went in one call
    assert sorted(inner.calls[0]) == sorted(set(texts))  # a repeated text embedded once
    for text, vector in zip(texts, vectors, strict=True):
        assert vector.tolist() == expected(text)
    again = await shared.vector("question 3")  # remembered: no new call
    assert again.tolist() == expected("question 3") and len(inner.calls) == 1


async def test_texts_asked_while_a_call_runs_go_in_the_next_one() -> None:
    inner = CountingEmbedder()
    shared = BatchEmbedder(inner)
    first = asyncio.ensure_future(shared.vector("a first question"))
    await asyncio.sleep(0)  # the first call has started
    rest = await asyncio.gather(*(shared.vector(f"b later {i}") for i in range(5)))
    assert (await first).tolist() == expected("a first question")
    assert [v.tolist() for v in rest] == [expected(f"b later {i}") for i in range(5)]
    assert len(inner.calls) == 2 and len(inner.calls[1]) == 5


async def test_a_failed_call_fails_its_waiters_and_the_next_call_runs() -> None:
    inner = CountingEmbedder(fail=True)
    shared = BatchEmbedder(inner)
    results = await asyncio.gather(
        shared.vector("one"), shared.vector("two"), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    inner.fail = False
    assert (await shared.vector("one")).tolist() == expected("one")  # not remembered as failed


async def test_one_callers_cancellation_does_not_cancel_the_vector_others_wait_for() -> None:
    inner = CountingEmbedder()
    shared = BatchEmbedder(inner)
    doomed = asyncio.ensure_future(shared.vector("same text"))
    other = asyncio.ensure_future(shared.vector("same text"))
    await asyncio.sleep(0)
    doomed.cancel()
    assert (await other).tolist() == expected("same text")
    with pytest.raises(asyncio.CancelledError):
        await doomed


def test_sorted_chunks_keep_the_input_order_and_bound_the_padding() -> None:
    inner = CountingEmbedder()
    texts = ["x" * n for n in (400, 3, 900, 12, 5, 700)] + [f"q{i}" for i in range(100)]
    rows = embed_sorted(inner, texts)
    assert rows.tolist() == [expected(t) for t in texts]
    for call in inner.calls:
        assert len(call) <= MAX_BATCH
        assert len(call) == 1 or len(call) * max(len(t) for t in call) <= 2048
        assert [len(t) for t in call] == sorted(len(t) for t in call)
    assert embed_sorted(inner, []).shape == (0, 2)


async def test_a_call_takes_at_most_max_batch_texts_oldest_first() -> None:
    inner = CountingEmbedder()
    shared = BatchEmbedder(inner)
    texts = [f"waiting {i:03d}" for i in range(2 * MAX_BATCH + 3)]
    await asyncio.gather(*(shared.vector(t) for t in texts))
    assert [len(c) for c in inner.calls] == [MAX_BATCH, MAX_BATCH, 3]
    assert sorted(inner.calls[0]) == texts[:MAX_BATCH]  # the oldest went first
