"""Pricing agents: a suggested price (model), fees and margins (zero-call, Decimal), a
promotion plan that keeps the margin, and bundles."""

from __future__ import annotations

from decimal import Decimal

from agents.fees import fees_by_marketplace, margins
from agents.spec import UPLOAD, AgentSpec, Family, Inputs, Output
from agents.specs.schema import array, choice, integer, money, number, obj, text
from agents.validators import money as to_money
from agents.validators import positive_number
from bus.messages import TaskType


def quick_sale_below_price(output: Output, inputs: Inputs) -> list[str]:
    """A quick-sale price is a discount: never above the list price."""
    price, quick = to_money(output.get("price_usd")), to_money(output.get("quick_sale_usd"))
    if price is not None and quick is not None and quick > price:
        return [
            f"the quick-sale price {quick} USD is above the price {price} USD: give a "
            "quick-sale price at or below the price"
        ]
    return []


PRICE = AgentSpec(
    name="price",
    family=Family.PRICING,
    consumes=(UPLOAD, "identify", "condition"),
    optional=("comparables", "demand", "trend"),
    task_type=TaskType.PRICING,
    listing_key="price",
    upload_fields=("title_hint",),
    instructions=(
        "Suggest a selling price in US dollars for the product in its condition, from the "
        "comparable items, demand and trend when given; a lower quick-sale price; the "
        "strategy; a confidence between 0 and 1; and a one-sentence rationale."
    ),
    output_schema=obj(
        price_usd=money(),
        quick_sale_usd=money(),
        strategy=choice("competitive", "premium", "quick_sale"),
        confidence=number(0, 1),
        rationale=text(300, 10),
    ),
    validators=(
        positive_number("price_usd"),
        positive_number("quick_sale_usd"),
        quick_sale_below_price,
    ),
    max_output_tokens=250,
)


def shipping_charge(inputs: Inputs) -> Decimal:
    """The shipping the buyer pays: the recommended option, else nothing."""
    recommended = inputs["shipping"].get("recommended") or {}
    return to_money(recommended.get("price_usd", "0")) or Decimal(0)


def suggested(inputs: Inputs) -> Decimal:
    """The suggested price as Decimal cents."""
    price = to_money(inputs["price"]["price_usd"])
    if price is None or price <= 0:
        raise ValueError("the price agent gave no usable price")
    return price


def compute_fees(inputs: Inputs) -> Output:
    """Each marketplace's fees on the suggested price plus shipping charged."""
    price, shipping = suggested(inputs), shipping_charge(inputs)
    return {
        "price_usd": str(price),
        "shipping_usd": str(shipping),
        "marketplaces": fees_by_marketplace(price, shipping),
    }


FEES = AgentSpec(
    name="fees",
    family=Family.PRICING,
    consumes=("price", "shipping"),
    task_type=TaskType.PRICING,
    compute=compute_fees,
    instructions="Work out each marketplace's selling fees on this price and shipping.",
)


NO_COST_WARNING = (
    "no cost price given: profits assume the item cost nothing; give it as cost_price (in a "
    "folder's product.json, a CSV's cost_price column, a catalog.json product's field or the "
    "API's form field), not in the notes"
)
"""Said when an upload has no cost price: where one goes (a newcomer wrote "Bought for $25."
in notes.txt and was told only that none was given). Notes are never parsed for prices."""


def compute_margin(inputs: Inputs) -> Output:
    """Profit, margin and break-even price per marketplace, and the best marketplace."""
    price, shipping = suggested(inputs), shipping_charge(inputs)
    cost = to_money(inputs[UPLOAD].get("cost_price") or None)
    per_market = margins(price, shipping, cost)
    best = max(per_market, key=lambda m: Decimal(str(per_market[m]["profit_usd"])))
    losing = [m for m, v in per_market.items() if Decimal(str(v["profit_usd"])) < 0]
    warnings = [
        f"sells at a loss on {m}: profit {per_market[m]['profit_usd']} USD at price {price} USD"
        for m in losing
    ]
    if cost is None:
        warnings.append(NO_COST_WARNING)
    return {
        "cost_known": cost is not None,
        "marketplaces": per_market,
        "best": best,
        "warnings": warnings,
    }


MARGIN = AgentSpec(
    name="margin",
    family=Family.PRICING,
    consumes=(UPLOAD, "price", "shipping", "fees"),
    task_type=TaskType.PRICING,
    compute=compute_margin,
    instructions="Work out profit, margin and break-even price on each marketplace.",
)


def keeps_margin(output: Output, inputs: Inputs) -> list[str]:
    """A promotion must not sell below break-even on the best marketplace."""
    margin = inputs.get("margin", {})
    best = margin.get("marketplaces", {}).get(margin.get("best"), {})
    floor = to_money(best.get("breakeven_usd"))
    discount = output.get("discount_percent")
    if floor is None or not isinstance(discount, int):
        return []
    promoted = suggested(inputs) * (100 - discount) / 100
    if discount and promoted < floor:
        return [
            f"a {discount}% discount sells at {promoted:.2f} USD, under the break-even "
            f"{floor} USD: give a smaller discount, or 0"
        ]
    return []


PROMOTION = AgentSpec(
    name="promotion",
    family=Family.PRICING,
    consumes=(UPLOAD, "identify", "price", "margin"),
    optional=("seasonality", "demand"),
    task_type=TaskType.PRICING,
    required=False,
    upload_fields=("title_hint",),
    instructions=(
        "Plan one promotion for the listing: a discount in percent (0 if none pays), when to "
        "start and for how long, which channels, and the one-line message. Never discount "
        "below the break-even price given in the margin."
    ),
    output_schema=obj(
        discount_percent=integer(0, 30),
        start_in_days=integer(0, 90),
        duration_days=integer(1, 30),
        channels=array(choice("markdown", "coupon", "volume_discount", "social"), 1, 3, True),
        message=text(120),
    ),
    validators=(keeps_margin,),
    max_output_tokens=200,
)

BUNDLES = AgentSpec(
    name="bundles",
    family=Family.PRICING,
    consumes=(UPLOAD, "identify", "category", "price"),
    task_type=TaskType.PRICING,
    required=False,
    upload_fields=("title_hint",),
    instructions=(
        "Suggest 1-3 bundles a buyer of this product would want: a name, the items to add, "
        "a bundle price in USD and why it sells."
    ),
    output_schema=obj(
        bundles=array(
            obj(
                name=text(80),
                add_items=array(text(60), 1, 3),
                bundle_price_usd=money(),
                rationale=text(200),
            ),
            1,
            3,
        )
    ),
    max_output_tokens=350,
)

SPECS = (PRICE, FEES, MARGIN, PROMOTION, BUNDLES)
"""The pricing family."""
