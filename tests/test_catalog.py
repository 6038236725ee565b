"""The price catalog loads, and cost arithmetic is exact in integer micro-dollars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bus.messages import Usage
from cost_ledger.catalog import PriceCatalog, Tier
from cost_ledger.errors import CatalogError, InvalidUsageError, UnknownModelError
from cost_ledger.pricing import (
    baseline_micro_usd,
    cost_micro_usd,
    max_cost_micro_usd,
    to_usd,
)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.load()


def test_packaged_catalog_prices_many_models_of_three_providers(catalog: PriceCatalog) -> None:
    assert catalog.version == "2026-12-04"
    assert catalog.source
    assert catalog.batch_discount == Decimal("0.5")
    models = catalog.models()
    assert len(models) >= 8
    assert {m.provider for m in models} >= {"openai", "anthropic", "google"}
    assert {m.tier for m in models} == set(Tier)
    for m in models:
        assert isinstance(m.input, Decimal) and isinstance(m.output, Decimal)
        assert 0 <= m.cached_input <= m.input
        assert 0 <= m.quality <= 1
        assert m.context_window > 0
    gpt_4o = catalog.get("gpt-4o")
    assert (gpt_4o.input, gpt_4o.cached_input, gpt_4o.output) == (
        Decimal("2.50"),
        Decimal("1.25"),
        Decimal("10.00"),
    )
    assert gpt_4o.provider == "openai" and gpt_4o.tier is Tier.PREMIUM and gpt_4o.vision
    assert "claude-sonnet-4" in catalog and "gpt-5-ultra" not in catalog


def test_cost_prices_uncached_cached_and_output_tokens(catalog: PriceCatalog) -> None:
    usage = Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=500)
    # 600 x 2.50 + 400 x 1.25 + 500 x 10.00 micro-dollars.
    assert cost_micro_usd(catalog.get("gpt-4o"), usage) == 1500 + 500 + 5000
    assert cost_micro_usd(catalog.get("gpt-4o"), usage, batch=True) == 3500
    million = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert to_usd(cost_micro_usd(catalog.get("claude-sonnet-4"), million)) == Decimal("18")
    assert cost_micro_usd(catalog.get("gpt-4o"), Usage()) == 0


def test_cost_rounds_half_up_once_at_the_end(catalog: PriceCatalog) -> None:
    nano = catalog.get("gpt-4.1-nano")
    # 20 cached tokens x 0.025 = 0.5 micro-dollars: half up, not half even.
    assert cost_micro_usd(nano, Usage(input_tokens=20, cached_input_tokens=20)) == 1
    assert cost_micro_usd(nano, Usage(input_tokens=100, cached_input_tokens=100)) == 3
    # 4 x 0.10 + 1 x 0.40 = 0.8 rounds to 1; rounding each part first would give 0.
    assert cost_micro_usd(nano, Usage(input_tokens=4, output_tokens=1)) == 1
    assert cost_micro_usd(nano, Usage(input_tokens=4)) == 0
    # The batch discount applies before the one rounding: 0.8 x 0.5 = 0.4.
    assert cost_micro_usd(nano, Usage(input_tokens=4, output_tokens=1), batch=True) == 0


def test_max_cost_rounds_up_and_ignores_cache_and_discount(catalog: PriceCatalog) -> None:
    mini = catalog.get("gpt-4o-mini")
    assert max_cost_micro_usd(mini, 1, 1) == 1  # 0.75
    assert max_cost_micro_usd(mini, 10, 0) == 2  # 1.5
    assert max_cost_micro_usd(catalog.get("gpt-4o"), 1000, 100) == 3500  # exact stays exact
    usage = Usage(input_tokens=777, cached_input_tokens=500, output_tokens=333)
    assert max_cost_micro_usd(mini, 777, 333) >= cost_micro_usd(mini, usage)


def test_baseline_is_the_same_tokens_on_the_premium_model_without_cache(
    catalog: PriceCatalog,
) -> None:
    usage = Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=500)
    assert baseline_micro_usd(catalog, "gpt-4o", usage) == 2500 + 5000
    with pytest.raises(UnknownModelError):
        baseline_micro_usd(catalog, "no-such-model", usage)


def test_unknown_model_error_carries_the_model(catalog: PriceCatalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.get("gpt-5-ultra")
    assert info.value.model == "gpt-5-ultra"
    assert info.value.catalog_version == "2026-12-04"
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=10, cached_input_tokens=11),
        Usage(input_tokens=-1),
        Usage(output_tokens=-5),
    ],
)
def test_impossible_usage_is_refused(catalog: PriceCatalog, usage: Usage) -> None:
    with pytest.raises(InvalidUsageError) as info:
        cost_micro_usd(catalog.get("gpt-4o"), usage)
    assert info.value.input_tokens == usage.input_tokens


_MODEL = """
version = "test-1"
batch_discount = "0.5"
[models.m]
provider = "p"
tier = "economy"
input = "1.00"
cached_input = "0.10"
output = "2.00"
context_window = 1000
"""


def test_a_catalog_file_loads_and_a_model_may_override_the_batch_discount(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(_MODEL + 'batch_discount = "0.25"\n')
    catalog = PriceCatalog.load(path)
    model = catalog.get("m")
    assert catalog.version == "test-1" and model.batch_discount == Decimal("0.25")
    assert cost_micro_usd(model, Usage(input_tokens=100), batch=True) == 75


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('input = "1.00"', "input = 1.00"),  # a float is not exact: refused
        ('input = "1.00"', 'input = "one"'),
        ('input = "1.00"', 'input = "-1"'),
        ('cached_input = "0.10"', 'cached_input = "5"'),
        ('tier = "economy"', 'tier = "cheap"'),
        ('batch_discount = "0.5"', 'batch_discount = "1.5"'),
        ("context_window = 1000", "context_window = 0"),
        ('version = "test-1"', ""),
        ("[models.m]", "[other]"),
    ],
)
def test_a_bad_catalog_is_refused_with_a_clear_error(tmp_path: Path, old: str, new: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(_MODEL.replace(old, new))
    with pytest.raises(CatalogError):
        PriceCatalog.load(path)


def test_a_missing_catalog_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        PriceCatalog.load(tmp_path / "nope.toml")


def test_catalog_names_models_as_the_providers_api_takes_them(catalog: PriceCatalog) -> None:
    # The seeds' models: a Gemini Flash, GPT-5-mini and a premium Claude.
    assert {"gemini-2.5-flash", "gpt-5-mini", "claude-opus-4.5"} <= set(catalog.entries)
    haiku = catalog.get("claude-haiku-3.5")
    assert haiku.wire_id == "claude-3-5-haiku-20241022"
    assert catalog.get("claude-3-5-haiku-20241022") is haiku  # the API id resolves too
    assert catalog.resolve("claude-3-5-haiku-20241022") == "claude-haiku-3.5"
    assert catalog.resolve("gpt-4o-2024-08-06") == "gpt-4o"  # a dated snapshot of a model
    assert catalog.resolve("gpt-5-ultra") is None
    assert "claude-sonnet-4-20250514" in catalog
    for m in catalog.models():
        assert m.wire_id and m.image_rule and m.structured_output in ("json_schema", "instructions")
    assert all(m.structured_output == "instructions" for m in catalog.models() if
               m.provider == "anthropic")  # fmt: skip
    assert catalog.get("gpt-5-mini").reasoning and not catalog.get("gpt-4o").reasoning
    assert catalog.get("gpt-4o-mini").image_rule == "tile:2833:5667"


def test_cache_writes_and_reasoning_are_priced_from_the_price_page(catalog: PriceCatalog) -> None:
    sonnet = catalog.get("claude-sonnet-4.5")
    # 10,000 prompt tokens: 6,000 written to the cache ($3.75/M), 3,000 read ($0.30/M),
    # 1,000 plain ($3/M); 500 output ($15/M), 200 of them reasoning (already in the 500).
    usage = Usage(
        input_tokens=10_000,
        cached_input_tokens=3_000,
        cache_write_input_tokens=6_000,
        output_tokens=500,
        reasoning_tokens=200,
    )
    assert cost_micro_usd(sonnet, usage) == 22_500 + 900 + 3_000 + 7_500
    # A reservation prices every input token at the dearer cache-write price: an upper bound.
    assert max_cost_micro_usd(sonnet, 10_000, 500) == 37_500 + 7_500
    with pytest.raises(InvalidUsageError):
        cost_micro_usd(sonnet, Usage(input_tokens=10, cached_input_tokens=6,
                                     cache_write_input_tokens=6))  # fmt: skip


def test_alias_clash_is_a_catalog_error() -> None:
    base = {"provider": "openai", "tier": "premium", "input": "1", "cached_input": "0.5",
            "output": "2", "context_window": 1000}  # fmt: skip
    data = {"version": "x", "batch_discount": "0.5",
            "models": {"a": {**base, "aliases": ["b"]}, "b": dict(base)}}  # fmt: skip
    with pytest.raises(CatalogError, match="taken"):
        PriceCatalog.from_dict(data)
