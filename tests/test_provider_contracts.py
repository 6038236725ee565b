"""Contract tests against recorded provider responses (tests/fixtures/providers/, written by
hand from each provider's API reference): the usage FlipSync reads from each and the cost it
books, checked against a hand computation from the price page (prices.toml, 2026-12-04)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from bus.messages import Usage
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.batching.batch_api import parse_output
from router.providers.stream_usage import summarize_sse
from router.providers.usage import usage_from

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
CATALOG = PriceCatalog.load()


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def chat_usage(name: str) -> tuple[ChatCompletion, Usage]:
    """As the client reads it: the SDK's ChatCompletion, then its usage (extras included)."""
    completion = ChatCompletion.model_validate(load(name))
    assert completion.usage is not None
    return completion, usage_from(completion.usage.model_dump())


@pytest.mark.parametrize(
    ("fixture", "usage", "model", "micro_usd", "finish"),
    [
        # gpt-4o-mini: 86 x $0.15 + 1,920 cached x $0.075 + 300 x $0.60 = 336.9 -> 337.
        ("openai_chat_cached.json",
         Usage(input_tokens=2006, cached_input_tokens=1920, output_tokens=300),
         "gpt-4o-mini", 337, "stop"),
        # gpt-4o with a photo (765 image tokens inside prompt_tokens): 1,150 x $2.50 +
        # 120 x $10 = 4,075; cut at max_tokens, and said so.
        ("openai_chat_image.json", Usage(input_tokens=1150, output_tokens=120),
         "gpt-4o", 4075, "length"),
        # gpt-5-mini: 1,344 hidden reasoning tokens are inside the 1,600 billed as output:
        # 450 x $0.25 + 1,600 x $2.00 = 3,312.5 -> 3,313.
        ("openai_chat_reasoning.json",
         Usage(input_tokens=450, output_tokens=1600, reasoning_tokens=1344),
         "gpt-5-mini", 3313, "stop"),
        # Claude through Anthropic's OpenAI-compatible endpoint: 220 x $1 + 64 x $5 = 540.
        ("anthropic_openai_compat.json", Usage(input_tokens=220, output_tokens=64),
         "claude-haiku-4.5", 540, "stop"),
        # Gemini's compatible endpoint: 250 thinking tokens only in total_tokens are output:
        # 100 x $0.30 + 300 x $2.50 = 780.
        ("gemini_openai_compat.json",
         Usage(input_tokens=100, output_tokens=300, reasoning_tokens=250),
         "gemini-2.5-flash", 780, "stop"),
    ],
)  # fmt: skip
def test_chat_completions_yield_their_usage_and_cost(
    fixture: str, usage: Usage, model: str, micro_usd: int, finish: str
) -> None:
    completion, read = chat_usage(fixture)
    assert read == usage
    assert CATALOG.resolve(completion.model) == model  # dated ids resolve to the catalog's
    assert cost_micro_usd(CATALOG.get(completion.model), read) == micro_usd
    assert completion.choices[0].finish_reason == finish


def test_anthropic_messages_cache_writes_then_reads_are_priced_apart() -> None:
    written = usage_from(load("anthropic_messages_cache_write.json")["usage"])
    assert written == Usage(input_tokens=1909, cache_write_input_tokens=1888, output_tokens=393)
    sonnet = CATALOG.get("claude-sonnet-4-5-20250929")
    # 21 x $3 + 1,888 x $3.75 (5-minute cache write) + 393 x $15 = 63 + 7,080 + 5,895.
    assert cost_micro_usd(sonnet, written) == 13_038
    read = usage_from(load("anthropic_messages_cache_read.json")["usage"])
    assert read == Usage(input_tokens=1909, cached_input_tokens=1888, output_tokens=393)
    # 21 x $3 + 1,888 x $0.30 + 393 x $15 = 63 + 566.4 + 5,895 = 6,524.4 -> 6,524.
    assert cost_micro_usd(sonnet, read) == 6_524


def test_gemini_usage_metadata_counts_thoughts_as_output_and_cache_once() -> None:
    read = usage_from(load("gemini_generate_content.json")["usageMetadata"])
    assert read == Usage(
        input_tokens=1290, cached_input_tokens=1024, output_tokens=570,
        reasoning_tokens=420, image_tokens=258,
    )  # fmt: skip
    # 266 x $0.30 + 1,024 x $0.03 + (150 + 420) x $2.50 = 79.8 + 30.72 + 1,425 -> 1,536.
    assert cost_micro_usd(CATALOG.get("gemini-2.5-flash"), read) == 1_536


def test_a_stream_with_usage_settles_from_its_last_chunk() -> None:
    lines = (FIXTURES / "openai_stream_usage.sse").read_text().splitlines()
    summary = summarize_sse(lines)
    assert (summary.content, summary.finish_reason) == ("Hello there", "length")
    assert summary.usage == Usage(input_tokens=40, output_tokens=12)
    # gpt-4o-mini: 40 x $0.15 + 12 x $0.60 = 13.2 -> 13.
    assert cost_micro_usd(CATALOG.get(summary.model), summary.usage) == 13
    assert summarize_sse(lines[:-4]).usage is None  # cut before the usage chunk: none


def test_batch_output_lines_yield_usage_at_the_batch_price() -> None:
    lines = parse_output((FIXTURES / "openai_batch_output.jsonl").read_bytes())
    ok, failed = lines["req-1"], lines["req-2"]
    assert ok.usage == Usage(input_tokens=500, output_tokens=100)
    # (500 x $0.15 + 100 x $0.60) x 50% = 67.5 -> 68.
    assert ok.usage is not None
    assert cost_micro_usd(CATALOG.get(ok.model), ok.usage, batch=True) == 68
    assert failed.problem and "server had an error" in failed.problem
