"""Offline token estimates: text, chat messages, and OpenAI's image tile rule."""

from __future__ import annotations

import base64
import io
import random
from typing import Any

import pytest
from PIL import Image

from router.tokens import (
    count_joined_tokens,
    count_messages_tokens,
    count_text_tokens,
    image_size_from_data_url,
    image_tokens,
    message_pieces,
    text_pieces,
)

PROSE = (
    "The quick brown fox jumps over the lazy dog. Our vintage leather messenger bag fits a "
    "15 inch laptop, has two inner pockets and an adjustable strap; it ships within 2 days."
)


def png_data_url(width: int, height: int, fmt: str = "PNG") -> str:
    """A real image of the given size, as a base64 data: URL."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=fmt)
    mime = "png" if fmt == "PNG" else "jpeg"
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 765),  # 768x768: 4 tiles
        (2048, 4096, "high", 1105),  # 1024x2048, then 768x1536: 6 tiles
        (4096, 8192, "high", 1105),  # first fit into 2048x2048
        (1024, 1024, "auto", 765),  # auto is treated as high
        (512, 512, "high", 255),  # never upscaled: 1 tile
        (800, 600, "high", 765),  # shortest side 600 < 768: 2x2 tiles
        (4096, 8192, "low", 85),
        (10, 10, "low", 85),
    ],
)
def test_image_tokens_follow_the_tile_rule(
    width: int, height: int, detail: str, tokens: int
) -> None:
    assert image_tokens(width, height, detail) == tokens


def test_text_tokens_of_words_numbers_and_scripts() -> None:
    assert count_text_tokens("") == 0
    assert count_text_tokens("hello") == 1
    assert count_text_tokens("hello world") == 2
    assert count_text_tokens("hello, world!") == 4
    assert count_text_tokens("1234567") == 3  # digits go in groups of 3
    assert count_text_tokens("你好世界") == 4  # a token per CJK character
    assert count_text_tokens("Привет") == 2  # other alphabets cost more than English
    assert count_text_tokens("internationalization") > count_text_tokens("nation")


def test_prose_is_about_four_characters_a_token() -> None:
    tokens = count_text_tokens(PROSE)
    assert 3.5 <= len(PROSE) / tokens <= 5.0
    assert sum(n for _, n in text_pieces(PROSE)) == tokens
    assert "".join(piece for piece, _ in text_pieces(PROSE)) == PROSE


def test_message_overhead_matches_openai() -> None:
    # OpenAI counts 8 prompt tokens for a lone "hello" user message on gpt-4o.
    assert count_messages_tokens([{"role": "user", "content": "hello"}]) == 8
    two = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    assert count_messages_tokens(two) == 8 + 3 + 1 + count_text_tokens("Be brief.")
    named = [{"role": "user", "name": "ann", "content": "hello"}]
    assert count_messages_tokens(named) == 8 + 1 + count_text_tokens("ann")


def test_image_parts_add_their_tile_tokens() -> None:
    def with_image(url: str, detail: str) -> list[dict[str, object]]:
        image = {"type": "image_url", "image_url": {"url": url, "detail": detail}}
        return [{"role": "user", "content": [{"type": "text", "text": "Describe it."}, image]}]

    text_only = count_messages_tokens(
        [{"role": "user", "content": [{"type": "text", "text": "Describe it."}]}]
    )
    url = png_data_url(1024, 1024)
    assert count_messages_tokens(with_image(url, "high")) == text_only + 765
    assert count_messages_tokens(with_image(url, "low")) == text_only + 85
    tall = png_data_url(2048, 4096, "JPEG")
    assert count_messages_tokens(with_image(tall, "auto")) == text_only + 1105
    # An https image has no size to read: assumed 1024x1024.
    remote = with_image("https://example.com/a.png", "high")
    assert count_messages_tokens(remote) == text_only + 765


def test_image_size_from_data_url() -> None:
    assert image_size_from_data_url(png_data_url(300, 200)) == (300, 200)
    assert image_size_from_data_url(png_data_url(64, 48, "JPEG")) == (64, 48)
    assert image_size_from_data_url("https://example.com/a.png") is None
    assert image_size_from_data_url("data:image/png;base64,not-an-image") is None
    assert image_size_from_data_url("data:image/png;base64,%%%") is None
    assert image_size_from_data_url("data:text/plain,hello") is None


def test_messages_count_is_the_sum_of_their_pieces() -> None:
    """count_messages_tokens (cached per text) equals walking message_pieces, for text, names,
    content parts, images and tool calls, plus the reply priming (3)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ann", "content": PROSE},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?  \n\n Price it."},
                {"type": "image_url", "image_url": {"url": png_data_url(800, 600)}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                },
                "not a part",
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    ]
    walked = sum(tokens for _, tokens in message_pieces(messages)) + 3
    assert count_messages_tokens(messages) == walked
    assert count_messages_tokens(messages) == walked  # the cached second count too


JOIN_PIECES = ["abc", "Étoile", "é", "x", "12", "3", "_", "__", "!?", "\"", " ", "\n\n", "\t",
               "茶", "カップ", "²", "", "mug-001", "350 ml", "### Item 2\n"]  # fmt: skip


def test_joined_count_equals_counting_the_joined_text() -> None:
    """count_joined_tokens adds the parts' counts only where no piece can span the junction:
    on every junction of letters (ASCII or not), digits, CJK, spaces, underscores and other
    punctuation it equals counting the joined text."""
    rng = random.Random(7)
    for _ in range(3000):
        parts = [rng.choice(JOIN_PIECES) for _ in range(rng.randint(0, 6))]
        assert count_joined_tokens(parts) == count_text_tokens("".join(parts)), parts
    assert count_joined_tokens(["é", "abcdef"]) == count_text_tokens("éabcdef")  # one piece
    assert count_joined_tokens([]) == 0
