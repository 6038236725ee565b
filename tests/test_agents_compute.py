"""Zero-call work is plain arithmetic: fees, margins, shipping, units, lengths, photo order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agents.fees import SCHEDULES, breakeven, fee
from agents.marketplaces import Marketplace
from agents.shipping import billable_grams, estimate
from agents.spec import UPLOAD
from agents.specs.details import lengths
from agents.specs.image import plan_photos
from agents.specs.pricing import compute_fees, compute_margin
from agents.units import convert

D = Decimal


def test_marketplace_fees_in_decimal_cents() -> None:
    ebay, amazon = SCHEDULES[Marketplace.EBAY], SCHEDULES[Marketplace.AMAZON]
    assert fee(ebay, D("50.00")) == D("7.20")  # 13.6% + $0.40
    assert fee(ebay, D("8.00")) == D("1.39")  # 13.6% + $0.30 on a small order
    assert fee(amazon, D("1.00")) == D("0.30")  # the referral minimum
    assert fee(SCHEDULES[Marketplace.ETSY], D("20.00"), D("5.00")) == D("2.83")
    assert fee(SCHEDULES[Marketplace.SHOPIFY], D("20.00")) == D("0.88")


def test_breakeven_is_the_lowest_price_that_pays_fees_and_cost() -> None:
    for schedule in SCHEDULES.values():
        for cost in (D("0.50"), D("4.20"), D("40.00")):
            price = breakeven(schedule, cost, D("6.00"))
            assert price - fee(schedule, price, D("6.00")) >= cost
            cheaper = price - D("0.01")
            assert cheaper - fee(schedule, cheaper, D("6.00")) < cost


def test_fees_and_margin_agents_never_use_float() -> None:
    inputs: dict[str, Any] = {
        UPLOAD: {"cost_price": "4.20"},
        "price": {"price_usd": 19.99},
        "shipping": {"recommended": {"price_usd": "5.95"}},
    }
    fees = compute_fees(inputs)
    assert fees["price_usd"] == "19.99" and fees["shipping_usd"] == "5.95"
    assert fees["marketplaces"]["ebay"]["fee_usd"] == "3.93"  # 13.6% of 25.94 + 0.40
    margin = compute_margin(inputs)
    assert margin["marketplaces"]["ebay"]["profit_usd"] == "11.86"  # 19.99 - 3.93 - 4.20
    assert margin["best"] == "shopify" and margin["cost_known"] is True
    assert all(
        isinstance(v, str | bool) for m in margin["marketplaces"].values() for v in m.values()
    )


def test_no_cost_price_says_where_one_is_given() -> None:
    """Found by a newcomer: notes said "Bought for $25." and the warning said only that no
    cost price was given. It names the field and where it goes; notes are not parsed."""
    inputs: dict[str, Any] = {
        UPLOAD: {"notes": "Bought for $25.", "cost_price": ""},
        "price": {"price_usd": 19.99},
        "shipping": {"recommended": {"price_usd": "5.95"}},
    }
    margin = compute_margin(inputs)
    assert margin["cost_known"] is False
    (warning,) = [w for w in margin["warnings"] if w.startswith("no cost price given")]
    for where in ("cost_price", "product.json", "CSV", "catalog.json", "not in the notes"):
        assert where in warning, where


def test_shipping_table_by_billable_weight() -> None:
    assert billable_grams(D(350), None) == D(500)  # packing added
    # A box up to one cubic foot pays for its weight (a mug in a 15 x 21 x 19 cm box)...
    assert billable_grams(D(396), [D("11.4"), D("16.9"), D("14.6")]) == D(546)
    assert billable_grams(D(100), [D(40), D(30), D(5)]) == D(250)  # 44 x 34 x 9 cm
    # ...a larger one for its dimensional weight when that is greater: 64 x 44 x 29 cm.
    assert billable_grams(D(100), [D(60), D(40), D(25)]) == D(16333)
    quote = estimate(D(350), None)
    assert [o["price_usd"] for o in quote["options"]] == ["5.95", "8.03", "14.28"]
    assert quote["recommended"]["service"] == "standard"
    assert estimate(D(25000), None)["options"] == []


def test_units_found_and_converted() -> None:
    found = convert("Teal mug, 350 ml, 40 x 30 cm box, 1.2 kg, EU 42, 12 oz")
    by_text = {m["text"]: m for m in found["measurements"]}
    assert by_text["350 ml"]["imperial"] == "11.8 US fl oz"
    assert by_text["40 x 30 cm"]["imperial"] == "15.7 x 11.8 in"
    assert by_text["1.2 kg"]["imperial"] == "2.65 lb"
    assert by_text["12 oz"]["metric"] == "340 g"
    assert by_text["EU 42"]["imperial"] == "US men's 8.5 / UK 8"
    assert found["weight_g"] == "1200" and found["dimensions_cm"] == ["40", "30"]


def test_listing_lengths_and_photo_plan() -> None:
    copy = {"title": "t" * 10, "description": "d" * 100}
    shop = {**copy, "seo_title": "s" * 71, "meta_description": "m" * 100}
    inputs: dict[str, Any] = {
        "ebay_listing": copy,
        "amazon_listing": copy,
        "etsy_listing": copy,
        "shopify_listing": shop,
        "amazon_bullets": {"bullets": ["b"] * 5},
        "etsy_tags": {"tags": ["t"] * 13},
    }
    report = lengths(inputs)
    assert report["ok"] is False  # the SEO title is one over
    assert report["shopify"]["fields"]["seo_title"] == {"chars": 71, "limit": 70, "ok": False}
    rated = [
        {"score": 0.4, "sharp": True, "main_image_candidate": False, "fixes": ["more light"]},
        {"score": 0.9, "sharp": True, "main_image_candidate": True, "fixes": []},
    ]
    plan = plan_photos({"photo_quality": {"photos": rated}})
    assert plan == {"order": [1, 0], "main_photo": 1, "retake": [0], "fixes": ["more light"]}


@pytest.mark.parametrize(
    ("notes", "weight_g", "texts"),
    [
        ("approx.2kg, fits 12 oz.,16 oz.", "2000", ["2kg", "12 oz", "16 oz"]),
        ("Packed size 30x20x10cm,1.2kg", "1200", ["30x20x10cm", "1.2kg"]),
        ("Two mugs: 350ml,450ml", None, ["350ml", "450ml"]),
    ],
)
def test_a_number_right_after_a_dot_or_comma_is_still_read(
    notes: str, weight_g: str | None, texts: list[str]
) -> None:
    """Found by review: the linear-time number pattern refused any number after "." or ","
    and so read "approx.2kg, 12 oz" as 340 g."""
    found = convert(notes)
    assert found["weight_g"] == weight_g
    assert [m["text"] for m in found["measurements"]] == texts
