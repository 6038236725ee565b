"""The marketplace validators reject over-long or malformed listings and name the problem."""

from __future__ import annotations

from typing import Any

from agents.spec import AgentSpec
from agents.specs.details import TRANSLATION
from agents.specs.listing import (
    AMAZON_LISTING,
    BULLETS,
    EBAY_LISTING,
    ETSY_LISTING,
    SHOPIFY_LISTING,
    TAGS,
)
from agents.validators import money

DESCRIPTION = "A sturdy, honest description of the item and its condition."


def problems(spec: AgentSpec, output: dict[str, Any]) -> list[str]:
    """What the spec's validators find wrong with output."""
    return [p for check in spec.validators for p in check(output, {})]


def test_ebay_title_at_most_80() -> None:
    assert problems(EBAY_LISTING, {"title": "t" * 80, "description": DESCRIPTION}) == []
    found = problems(EBAY_LISTING, {"title": "t" * 81, "description": DESCRIPTION})
    assert found == ["title is 81 characters, over the limit of 80"]
    assert problems(EBAY_LISTING, {"title": "  ", "description": DESCRIPTION}) == [
        "title is missing"
    ]


def test_amazon_title_at_most_200_and_exactly_five_bullets() -> None:
    assert problems(AMAZON_LISTING, {"title": "a" * 200, "description": DESCRIPTION}) == []
    assert problems(AMAZON_LISTING, {"title": "a" * 201, "description": DESCRIPTION})
    five = [f"Benefit {i}: what it does" for i in range(5)]
    assert problems(BULLETS, {"bullets": five}) == []
    assert problems(BULLETS, {"bullets": [*five, "a sixth"]}) == [
        "bullets has 6 items, it must have exactly 5"
    ]
    assert problems(BULLETS, {"bullets": five[:4]})
    assert problems(BULLETS, {"bullets": [*five[:4], "b" * 501]}) == [
        "bullets[4] is 501 characters, over the limit of 500"
    ]


def test_etsy_title_at_most_140_and_13_tags_of_20() -> None:
    assert problems(ETSY_LISTING, {"title": "e" * 140, "description": DESCRIPTION}) == []
    assert problems(ETSY_LISTING, {"title": "e" * 141, "description": DESCRIPTION})
    tags = [f"tag number {i}" for i in range(13)]
    assert problems(TAGS, {"tags": tags}) == []
    assert problems(TAGS, {"tags": [*tags, "one too many"]}) == [
        "tags has 14 items, it must have 1 to 13"
    ]
    assert problems(TAGS, {"tags": ["x" * 21]}) == [
        "tags[0] is 21 characters, over the limit of 20"
    ]
    assert problems(TAGS, {"tags": ["teal mug", "Teal Mug"]}) == ["tags repeats teal mug"]
    assert problems(TAGS, {"tags": ["mug!"]})


def test_shopify_seo_title_at_most_70_and_meta_at_most_320() -> None:
    page = {
        "title": "Teal stoneware mug",
        "description": DESCRIPTION,
        "seo_title": "s" * 70,
        "meta_description": "m" * 320,
    }
    assert problems(SHOPIFY_LISTING, page) == []
    assert problems(SHOPIFY_LISTING, {**page, "seo_title": "s" * 71}) == [
        "seo_title is 71 characters, over the limit of 70"
    ]
    assert problems(SHOPIFY_LISTING, {**page, "meta_description": "m" * 321}) == [
        "meta_description is 321 characters, over the limit of 320"
    ]


def test_translated_ebay_titles_keep_the_ebay_limit() -> None:
    fine = {"title": "Becher aus Steinzeug", "description": DESCRIPTION}
    output = {"de": fine, "fr": fine, "es": {**fine, "title": "t" * 81}}
    assert problems(TRANSLATION, output) == ["es.title is 81 characters, over the limit of 80"]


def test_model_amounts_become_exact_decimal_cents() -> None:
    assert str(money(19.99)) == "19.99"
    assert str(money(0.1 + 0.2)) == "0.30"
    assert str(money("12.5")) == "12.50"
    assert money("twelve") is None and money(True) is None and money(float("nan")) is None
