"""Each marketplace's listing rules as data, their validators, and plain-code checks on them."""

from __future__ import annotations

import enum
from typing import Any

from agents.spec import Inputs, Output, Validator
from agents.validators import each_max_length, item_count, max_length, unique_items


class Marketplace(enum.StrEnum):
    """The marketplaces FlipSync lists on."""

    EBAY = "ebay"
    AMAZON = "amazon"
    ETSY = "etsy"
    SHOPIFY = "shopify"


EBAY_TITLE = 80
AMAZON_TITLE = 200
AMAZON_BULLETS = 5
AMAZON_BULLET = 500
AMAZON_DESCRIPTION = 2000
ETSY_TITLE = 140
ETSY_TAGS = 13
ETSY_TAG = 20
SHOPIFY_TITLE = 255
SHOPIFY_SEO_TITLE = 70
SHOPIFY_META = 320
DESCRIPTION = 4000
"""Our own cap on a description where the marketplace allows far more."""

LIMITS: dict[Marketplace, dict[str, int]] = {
    Marketplace.EBAY: {"title": EBAY_TITLE, "description": DESCRIPTION},
    Marketplace.AMAZON: {"title": AMAZON_TITLE, "description": AMAZON_DESCRIPTION},
    Marketplace.ETSY: {"title": ETSY_TITLE, "description": DESCRIPTION},
    Marketplace.SHOPIFY: {
        "title": SHOPIFY_TITLE,
        "description": DESCRIPTION,
        "seo_title": SHOPIFY_SEO_TITLE,
        "meta_description": SHOPIFY_META,
    },
}
"""Character limits of each marketplace's text fields."""

PREVIEW = {Marketplace.EBAY: 55, Marketplace.AMAZON: 80, Marketplace.ETSY: 70}
"""About how much of a title search results show on a phone: what must carry the keywords."""

CONDITIONS: dict[str, dict[Marketplace, str]] = {
    "new": {Marketplace.EBAY: "New", Marketplace.AMAZON: "New", Marketplace.ETSY: "New"},
    "like_new": {
        Marketplace.EBAY: "Open box",
        Marketplace.AMAZON: "Used - Like New",
        Marketplace.ETSY: "Used",
    },
    "very_good": {
        Marketplace.EBAY: "Used",
        Marketplace.AMAZON: "Used - Very Good",
        Marketplace.ETSY: "Used",
    },
    "good": {Marketplace.EBAY: "Used", Marketplace.AMAZON: "Used - Good", Marketplace.ETSY: "Used"},
    "acceptable": {
        Marketplace.EBAY: "Used",
        Marketplace.AMAZON: "Used - Acceptable",
        Marketplace.ETSY: "Used",
    },
    "for_parts": {
        Marketplace.EBAY: "For parts or not working",
        Marketplace.AMAZON: "Not sellable on Amazon",
        Marketplace.ETSY: "Used",
    },
}
"""Our condition grades in each marketplace's own words (Shopify takes ours as they are)."""
GRADES = tuple(CONDITIONS)


def listing_validators(marketplace: Marketplace) -> tuple[Validator, ...]:
    """Length checks of a marketplace's title and description fields."""
    return tuple(max_length(name, limit) for name, limit in LIMITS[marketplace].items())


def amazon_bullets() -> tuple[Validator, ...]:
    """Amazon: exactly five bullets of at most 500 characters."""
    return (
        item_count("bullets", low=AMAZON_BULLETS, high=AMAZON_BULLETS),
        each_max_length("bullets", AMAZON_BULLET),
    )


def etsy_tags() -> tuple[Validator, ...]:
    """Etsy: at most 13 tags of at most 20 characters, letters, digits and spaces, no repeats."""

    def characters(output: Output, _inputs: Inputs) -> list[str]:
        tags = output.get("tags")
        if not isinstance(tags, list):
            return []
        bad = [t for t in tags if isinstance(t, str) and not _etsy_tag_chars(t)]
        return [f"tags may hold letters, digits, spaces, - and ' only: {bad}"] if bad else []

    return (
        item_count("tags", low=1, high=ETSY_TAGS),
        each_max_length("tags", ETSY_TAG),
        unique_items("tags"),
        characters,
    )


def condition_names(grade: str) -> dict[str, str]:
    """A condition grade in each marketplace's own words."""
    names = CONDITIONS.get(grade, CONDITIONS["good"])
    return {str(market): name for market, name in names.items()} | {"shopify": grade}


def check_lengths(copies: dict[Marketplace, Any]) -> dict[str, Any]:
    """Every text field of every listing against its limit, with the phone-preview of titles."""
    report: dict[str, Any] = {}
    all_ok = True
    for market, copy in copies.items():
        if not isinstance(copy, dict):
            continue
        fields = {}
        for name, limit in LIMITS[market].items():
            text = copy.get(name)
            if isinstance(text, str):
                ok = 0 < len(text) <= limit
                all_ok &= ok
                fields[name] = {"chars": len(text), "limit": limit, "ok": ok}
        entry: dict[str, Any] = {"fields": fields}
        title = copy.get("title")
        if market in PREVIEW and isinstance(title, str):
            entry["phone_preview"] = title[: PREVIEW[market]]
        report[str(market)] = entry
    report["ok"] = all_ok
    return report


def _etsy_tag_chars(tag: str) -> bool:
    return all(ch.isalnum() or ch in " -'" for ch in tag)
