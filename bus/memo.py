"""Memos of pure functions of one text, bounded in memory: a long text is never kept (the
router's token counts and fingerprints, the budgets' key names).

A cache keyed by whole prompts holds every key, and what was computed from it, until
evicted: thousands of distinct 4 MiB prompts (the router's request bound), or the tuples of
pieces made from them (about 30 bytes a character), would hold tens of gigabytes and end
the router. Texts up to ``max_chars`` are kept, as the system prompts, instructions and
few-shot examples that repeat in nearly every request are; longer ones are worked out each
time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")

KEPT_CHARS = 65_536
"""Longest text a memo keeps (router.tokenizer.CACHED_CHARS likewise)."""


class TextMemo(Generic[R]):
    """func(text), remembered for the maxsize texts last used that are at most max_chars."""

    def __init__(self, func: Callable[[str], R], maxsize: int, max_chars: int) -> None:
        self._func = func
        self._cached = functools.lru_cache(maxsize=maxsize)(func)
        self._max_chars = max_chars
        functools.update_wrapper(self, func)

    def __call__(self, text: str) -> R:
        """func(text), from the memo when text is short enough to be kept."""
        if len(text) > self._max_chars:
            return self._func(text)
        return self._cached(text)

    def kept(self) -> int:
        """How many texts the memo holds now."""
        return self._cached.cache_info().currsize


def text_memo(
    maxsize: int, *, max_chars: int = KEPT_CHARS
) -> Callable[[Callable[[str], R]], TextMemo[R]]:
    """Decorate a function of one str as a TextMemo (lru_cache that keeps no long text)."""

    def wrap(func: Callable[[str], R]) -> TextMemo[R]:
        return TextMemo(func, maxsize, max_chars)

    return wrap
