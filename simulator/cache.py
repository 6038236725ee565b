"""OpenAI-style prompt caching: repeated prompt prefixes of 1024+ tokens come back cached."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

BLOCK_TOKENS = 128
"""Prefixes are hashed, and cached tokens reported, in blocks of this many tokens."""
MIN_CACHED_TOKENS = 1024
"""Shortest prompt (and shortest prefix) that the cache serves."""


class PromptCache:
    """Hashes of prompt prefixes at every 128-token boundary, least recently used evicted."""

    def __init__(self, max_prefixes: int = 100_000) -> None:
        self.max_prefixes = max_prefixes
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def clear(self) -> None:
        """Forget every prefix."""
        self._seen.clear()

    def lookup_and_store(
        self, model: str, pieces: Iterable[tuple[str, int]], prompt_tokens: int
    ) -> int:
        """Cached tokens of this prompt (0 on a miss); remembers its prefixes for later calls.

        pieces are the prompt in order as (text, tokens); a prefix is keyed by the model and
        everything up to a 128-token boundary, so any change early in a prompt breaks the chain.
        """
        if prompt_tokens < MIN_CACHED_TOKENS:
            return 0
        digests = _prefix_digests(model, pieces)
        hit = next((k for k in range(len(digests), 0, -1) if digests[k - 1] in self._seen), 0)
        cached = hit * BLOCK_TOKENS
        first_kept = MIN_CACHED_TOKENS // BLOCK_TOKENS - 1  # shorter prefixes never count
        for digest in digests[first_kept:]:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
        while len(self._seen) > self.max_prefixes:
            self._seen.popitem(last=False)
        return cached if cached >= MIN_CACHED_TOKENS else 0


def _prefix_digests(model: str, pieces: Iterable[tuple[str, int]]) -> list[bytes]:
    """The digest of the prompt prefix ending at each full 128-token block, in order."""
    hasher = hashlib.blake2b(model.encode(), digest_size=16)
    digests: list[bytes] = []
    block: list[str] = []
    tokens, boundary = 0, BLOCK_TOKENS
    for text, count in pieces:
        block.append(text)
        tokens += count
        if tokens >= boundary:
            # One update per block, not per piece: hashing is on every request's hot path.
            block.append("")
            hasher.update("\x00".join(block).encode())
            block.clear()
            while tokens >= boundary:
                digests.append(hasher.digest())
                boundary += BLOCK_TOKENS
    return digests
