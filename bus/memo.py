"""Memos of pure functions of one text, bounded in memory: a long text is never kept (the
router's token counts and fingerprints, the budgets' key names).

A cache keyed by whole prompts holds every key, and what was computed from it, until
evicted: thousands of distinct 4 MiB prompts (the router's request bound), or the tuples of
pieces made from them (about 30 bytes a character), would hold tens of gigabytes and end
the router. Texts up to ``max_chars`` are kept, as the system prompts, instructions and
few-shot examples that repeat in nearly every request are; longer ones are worked out each
time, unless the memo keeps ``long_kept`` of them: then the results for the last few long
texts are kept too (a token count, not the pieces), because one long prompt is counted by
several stages of its request (budget, routing, dispatch) and each count of 4 MiB took
about 1.6 s of the router's loop. Those texts stay referenced until evicted: at most
``long_kept`` times the request bound.
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

    def __init__(
        self, func: Callable[[str], R], maxsize: int, max_chars: int, long_kept: int = 0
    ) -> None:
        self._func = func
        self._cached = functools.lru_cache(maxsize=maxsize)(func)
        self._long_cached = functools.lru_cache(maxsize=long_kept)(func) if long_kept else None
        self._long = self._long_cached or func
        self._max_chars = max_chars
        functools.update_wrapper(self, func)

    def __call__(self, text: str) -> R:
        """func(text), from the memo when text is short enough to be kept (or is one of the
        last long_kept long ones)."""
        if len(text) > self._max_chars:
            return self._long(text)
        return self._cached(text)

    def kept(self) -> int:
        """How many texts the memo holds now."""
        return self._cached.cache_info().currsize

    def long_hits(self) -> int:
        """How many calls on long texts the memo answered (0 without long_kept)."""
        return 0 if self._long_cached is None else self._long_cached.cache_info().hits


def text_memo(
    maxsize: int, *, max_chars: int = KEPT_CHARS, long_kept: int = 0
) -> Callable[[Callable[[str], R]], TextMemo[R]]:
    """Decorate a function of one str as a TextMemo (lru_cache that keeps no long text, or
    only the last long_kept of them, for a small result)."""

    def wrap(func: Callable[[str], R]) -> TextMemo[R]:
        return TextMemo(func, maxsize, max_chars, long_kept)

    return wrap
