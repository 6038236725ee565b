"""The prompts of bench/levers' workload: deterministic filler text, tools and schemas.

Only their size and identity matter to the levers; the words are a product vocabulary.
"""

from __future__ import annotations

import random

from bus.messages import OutputSchema

WORDS = tuple(
    " ".join(
        (
            "handmade stoneware glaze teal ceramic mug vintage oak stool walnut linen cushion",
            "brass lamp wool throw leather wallet cotton tote silver ring maple board enamel pin",
            "copper kettle rattan basket velvet pouch bamboo tray marble coaster wicker chair",
            "glass vase suede boot condition scratch chip original box tag measured weight",
            "height width shipped gift rare",
        )
    ).split()
)


def filler(seed: int, tokens: int) -> str:
    """Deterministic prose of about tokens tokens (one word is about one token)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(tokens)) + "."


SUPPORT_PROMPT = "You are the seller-support assistant of a marketplace shop. " + filler(0, 480)
HOUSE_RULES = "Analyse a seller's product for marketplace listings. Rules: " + filler(1, 1100)
MARKET_RULES = "Estimate the market price of a product on one marketplace. " + filler(2, 250)
TOOLBOX: list[dict[str, object]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ')}. " + filler(10 + i, 60),
            "parameters": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["id"],
            },
        },
    }
    for i, name in enumerate(
        (
            "track_order",
            "cancel_order",
            "refund_order",
            "block_card",
            "lookup_payment",
            "lookup_transfer",
            "update_address",
            "open_ticket",
        )
    )  # fmt: skip
]
ANALYSIS = OutputSchema(
    name="analysis",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["category", "condition", "keywords"],
        "properties": {
            "category": {"type": "string"},
            "condition": {"type": "string"},
            "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        },
    },
)
PRICE = OutputSchema(
    name="price",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["low", "high"],
        "properties": {"low": {"type": "number"}, "high": {"type": "number"}},
    },
)
