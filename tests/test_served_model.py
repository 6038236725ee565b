"""The model that answered (issue 16 item 7): the model a provider reports is checked against
the one asked for; a mismatch is priced as served, counted and noted in the result's reason."""

from __future__ import annotations

from bus.messages import Usage
from bus.metrics import REGISTRY
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import cost_micro_usd
from router.providers.served_model import UNPRICED, served_model

METRIC = "flipsync_served_model_mismatches_total"


def mismatches(asked: str, served: str) -> float:
    """How many mismatches the counter holds for a pair."""
    return REGISTRY.get_sample_value(METRIC, {"asked": asked, "served": served}) or 0.0


def test_a_served_model_other_than_the_asked_is_priced_as_served_and_counted() -> None:
    catalog = PriceCatalog.load()
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000)
    before = mismatches("gpt-4o-mini", "gpt-4o")
    got = served_model(catalog, "gpt-4o-mini", "gpt-4o-2024-08-06")
    assert got.price.name == "gpt-4o"
    # gpt-4o's page prices: $2.50 per 1M input, $10.00 per 1M output.
    assert cost_micro_usd(got.price, usage) == 2_500_000 + 1_000_000
    assert got.note == "asked gpt-4o-mini, provider served gpt-4o-2024-08-06: priced as gpt-4o"
    assert mismatches("gpt-4o-mini", "gpt-4o") == before + 1


def test_the_asked_model_or_its_dated_snapshot_is_no_mismatch() -> None:
    catalog = PriceCatalog.load()
    before = mismatches("gpt-4o", "gpt-4o")
    for reported in ("gpt-4o", "gpt-4o-2024-08-06", ""):
        got = served_model(catalog, "gpt-4o", reported)
        assert got.price.name == "gpt-4o" and got.note == ""
    assert mismatches("gpt-4o", "gpt-4o") == before


def test_an_unknown_served_model_is_priced_as_asked_and_counted_unpriced() -> None:
    catalog = PriceCatalog.load()
    before = mismatches("gpt-4o-mini", UNPRICED)
    got = served_model(catalog, "gpt-4o-mini", "mystery-model-9")
    assert got.price.name == "gpt-4o-mini" and "not in the catalog" in got.note
    assert mismatches("gpt-4o-mini", UNPRICED) == before + 1
