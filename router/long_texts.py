"""A request's long texts counted in a worker thread before any stage counts them.

The stages count a prompt's tokens on the router's event loop: the estimate (router.tokens)
for routing and packing, the BPE count (router.tokenizer) for the budget's bound. A text of
megabytes takes a second or more to count, and while it is counted on the loop every other
request waits. Counted here first, in a thread, the stages' counts come from the memos, which
keep the counts of the last few long texts (bus.memo long_kept): bpe-openai releases the GIL,
and the estimate, pure Python, yields the loop a turn every switch interval (5 ms) instead
of none until it ends.
"""

from __future__ import annotations

import asyncio
import logging

from bus.memo import KEPT_CHARS
from bus.messages import LlmRequest
from router.tokenizer import count_bpe_tokens
from router.tokens import count_text_tokens

log = logging.getLogger(__name__)


def long_texts(request: LlmRequest) -> list[str]:
    """The texts of request's messages longer than a memo keeps in full (bus.memo.KEPT_CHARS)."""
    return [t for message in request.messages for t in message.texts() if len(t) > KEPT_CHARS]


async def count_long_texts(request: LlmRequest) -> None:
    """Count request's long texts both ways in a worker thread (nothing when it has none).
    Only a head start: should it fail, the stages count on the loop as before."""
    texts = long_texts(request)
    if not texts:
        return
    try:
        await asyncio.to_thread(_count_each, texts)
    except Exception:
        log.warning("counting the long texts of %s ahead failed", request.id, exc_info=True)


def _count_each(texts: list[str]) -> None:
    for text in texts:
        count_text_tokens(text)
        count_bpe_tokens(text)
