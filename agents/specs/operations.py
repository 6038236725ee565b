"""Seller-operations agents: policy and compliance check, shipping estimate (zero-call), and
prepared replies to buyers' questions and to reviews."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agents.shipping import estimate
from agents.spec import UPLOAD, AgentSpec, Family, Inputs, Output
from agents.specs.schema import array, choice, obj, text
from agents.validators import item_count, max_length
from bus.messages import TaskType

COMPLIANCE = AgentSpec(
    name="compliance",
    family=Family.OPERATIONS,
    consumes=(
        UPLOAD,
        "identify",
        "category",
        "condition",
        "ebay_listing",
        "amazon_listing",
        "amazon_bullets",
        "etsy_listing",
        "shopify_listing",
    ),
    task_type=TaskType.COMPLIANCE,
    instructions=(
        "Check the product and its listings against marketplace policies: prohibited or "
        "restricted items, unsupported claims (health, safety, authenticity), missing "
        "disclosures, trademark misuse, and Etsy's handmade or vintage rules. Say ok, review "
        "or blocked, list each issue with the marketplace, severity, rule and the fix, and "
        "the disclosures the listing must carry."
    ),
    output_schema=obj(
        status=choice("ok", "review", "blocked"),
        issues=array(
            obj(
                marketplace=choice("all", "ebay", "amazon", "etsy", "shopify"),
                severity=choice("low", "medium", "high"),
                rule=text(80),
                fix=text(200),
            ),
            0,
            8,
        ),
        disclosures=array(text(120), 0, 5),
    ),
    max_output_tokens=500,
)


def _decimal(value: object) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() and amount > 0 else None


def ship(inputs: Inputs) -> Output:
    """Shipping options from the seller's weight and size, else measured, else estimated."""
    attributes: dict[str, Any] = inputs[UPLOAD].get("attributes", {})
    measured = inputs.get("unit_conversion", {})
    specifics = inputs["item_specifics"]
    weight = (
        _decimal(attributes.get("weight_g"))
        or _decimal(measured.get("weight_g"))
        or _decimal(specifics.get("package_weight_g"))
        or Decimal(500)
    )
    given = str(attributes.get("dimensions_cm", "")).replace("x", " ").split()
    sides = given or measured.get("dimensions_cm") or specifics.get("package_dimensions_cm") or []
    dims = [d for d in (_decimal(side) for side in sides) if d is not None] or None
    return estimate(weight, dims)


SHIPPING = AgentSpec(
    name="shipping",
    family=Family.OPERATIONS,
    consumes=(UPLOAD, "item_specifics"),
    optional=("unit_conversion",),
    task_type=TaskType.PRICING,
    compute=ship,
    instructions="Estimate the shipping options and prices for this parcel.",
)

BUYER_FAQ = AgentSpec(
    name="buyer_faq",
    family=Family.OPERATIONS,
    consumes=(UPLOAD, "identify", "condition", "item_specifics", "shipping"),
    task_type=TaskType.CUSTOMER_SUPPORT,
    required=False,
    instructions=(
        "Prepare replies to the 3-6 questions buyers most often send about a product like "
        "this (size, condition, shipping, returns, authenticity): each question and a "
        "friendly, accurate reply of at most 500 characters."
    ),
    output_schema=obj(faqs=array(obj(question=text(150), answer=text(500)), 3, 6)),
    validators=(item_count("faqs", low=3, high=6),),
    max_output_tokens=600,
)

REVIEW_REPLIES = AgentSpec(
    name="review_replies",
    family=Family.OPERATIONS,
    consumes=(UPLOAD, "identify", "condition"),
    task_type=TaskType.CUSTOMER_SUPPORT,
    required=False,
    upload_fields=("title_hint",),
    instructions=(
        "Write the seller's replies to a positive, a neutral and a negative review of this "
        "product: courteous, specific, at most 400 characters, and for the negative one an "
        "offer to put it right without admitting fault."
    ),
    output_schema=obj(positive=text(400), neutral=text(400), negative=text(400)),
    validators=tuple(max_length(tone, 400) for tone in ("positive", "neutral", "negative")),
    max_output_tokens=400,
)

SPECS = (COMPLIANCE, SHIPPING, BUYER_FAQ, REVIEW_REPLIES)
"""The seller-operations family (seller chat runs on demand: agents.specs.chat)."""
