"""Huge distinct prompts must not pile up in the router's memos: each 4 MiB prompt kept (as
its text and as ~30 bytes of pieces a character) would end the router after a few hundred."""

from __future__ import annotations

import base64
import gc
import io
import random
import string
import tracemalloc

from PIL import Image

from bus.messages import ChatMessage, ImagePart, TextPart
from cost_ledger.budgets.policy import name_token
from router.levers.fingerprint import normalize_text
from router.tokens import count_messages_tokens, image_size_from_data_url, text_pieces
from tests.helpers import make_request


def _big_text(seed: int, chars: int = 300_000) -> str:
    rng = random.Random(seed)
    words = ("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(chars // 7))
    return " ".join(words)


def _retained_mb(work: object) -> float:
    """Memory still held after calling work() (a callable) and dropping its inputs."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert callable(work)
        work()
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / 2**20
    finally:
        tracemalloc.stop()


def test_long_prompts_are_counted_and_normalized_without_being_kept() -> None:
    def work() -> None:
        for seed in range(6):
            text = _big_text(seed)
            request = make_request(text=text)
            count_messages_tokens([{"role": "user", "content": text}])
            text_pieces(text)
            normalize_text(text)
            name_token(text)  # an end user's tag: a budget key part
            del request, text

    assert _retained_mb(work) < 10


def test_a_photo_size_is_read_from_its_head_and_the_photo_not_kept() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buffer, "PNG")
    png = buffer.getvalue()

    def work() -> None:
        for seed in range(6):  # distinct 2 MB data URLs, same 300x200 header
            tail = random.Random(seed).randbytes(1_500_000)
            url = "data:image/png;base64," + base64.b64encode(png + tail).decode()
            assert image_size_from_data_url(url) == (300, 200)
            part = ImagePart(url=url)
            ChatMessage(role="user", content=[TextPart(text="what is it?"), part])
            del url, part

    assert _retained_mb(work) < 5


def test_a_long_texts_small_result_is_kept_for_the_last_few_only() -> None:
    """long_kept: a long prompt counted by several stages is worked out once; only the last
    long_kept long texts are held."""
    from bus.memo import TextMemo

    calls: list[int] = []

    def length(text: str) -> int:
        calls.append(len(text))
        return len(text)

    memo = TextMemo(length, maxsize=16, max_chars=10, long_kept=2)
    first, second, third = "a" * 100, "b" * 100, "c" * 100
    assert [memo(first), memo(first), memo(second), memo(third), memo(first)] == [100] * 5
    assert len(calls) == 4  # first once, then again after second and third pushed it out
    plain = TextMemo(length, maxsize=16, max_chars=10)
    calls.clear()
    plain(first), plain(first)
    assert len(calls) == 2  # without long_kept a long text is never kept


def test_cues_are_read_from_the_start_of_a_long_text() -> None:
    from router.routing.features import CUE_CHARS, text_cues

    assert text_cues("prove the integral " * 10).math > 0
    late = "a" * CUE_CHARS + " prove the integral" * 10
    assert text_cues(late).math == 0  # past CUE_CHARS: not read


def test_a_long_text_is_counted_as_its_pieces_would_be() -> None:
    from router.tokens import _count_unkept, count_text_tokens

    rng = random.Random(5)
    alphabet = string.printable + "éжλ中日 \t\n  "
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        assert _count_unkept(text) == sum(tokens for _, tokens in text_pieces(text))
    long = _big_text(9, 100_000) + " déjà vu 中文 \n\n 1234567 {}"
    assert count_text_tokens(long) == sum(tokens for _, tokens in text_pieces(long))
