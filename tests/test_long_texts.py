"""A request's long texts are counted off the router's event loop, into the memos."""

from __future__ import annotations

import asyncio

from bus.messages import ChatMessage, TextPart
from router.long_texts import count_long_texts, long_texts
from router.tokenizer import _cached_count
from router.tokens import _count
from tests.helpers import make_request


def test_only_texts_over_what_a_memo_keeps_are_long() -> None:
    request = make_request(text="a short question")
    request.messages.append(
        ChatMessage(role="user", content=[TextPart(text="b" * 70_000), TextPart(text="c")])
    )
    assert long_texts(request) == ["b" * 70_000]


async def test_the_loop_runs_while_a_long_text_is_counted_and_the_stages_reuse_the_count() -> None:
    text = "Count every word of this long teal mug description, 42 times over. " * 40_000
    request = make_request(text=text)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    await count_long_texts(request)
    ticker.cancel()
    # Counted on the loop, the ticker could not have run until the count ended (0 or 1 tick).
    assert ticks >= 3
    estimate_hits, bpe_hits = _count.long_hits(), _cached_count.long_hits()
    _count(text), _cached_count(text)  # what the stages ask next
    assert _count.long_hits() == estimate_hits + 1
    assert _cached_count.long_hits() == bpe_hits + 1
