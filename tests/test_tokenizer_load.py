"""The exact tokenizer's vocabulary is read before the router takes requests, off its loop.

Reading it takes about 0.6 s; read lazily, the first request counted exactly held the event
loop that long, and every request in flight with it."""

from __future__ import annotations

import threading

import pytest

from router import tokenizer
from tests.helpers import router_stack


async def test_the_vocabulary_is_read_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    readers: list[threading.Thread] = []
    monkeypatch.setattr(tokenizer, "_encoding", lambda: readers.append(threading.current_thread()))
    await tokenizer.load_vocabulary()
    assert len(readers) == 1
    assert readers[0] is not threading.current_thread()


async def test_a_started_router_has_read_the_vocabulary() -> None:
    tokenizer._encoding.cache_clear()
    async with router_stack():
        assert tokenizer._encoding.cache_info().currsize == 1
