"""Pricing agents: a suggested price the seller can defend."""

from __future__ import annotations

from agents.spec import UPLOAD, AgentSpec
from agents.validators import positive_number

PRICE = AgentSpec(
    name="price",
    family="pricing",
    consumes=(UPLOAD, "identify", "listing"),
    task_type="pricing",
    listing_key="price",
    instructions=(
        "Suggest a selling price in US dollars for the product as listed, from its "
        "identification, condition and listing copy, with a one-sentence rationale and "
        "a confidence between 0 and 1."
    ),
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["price_usd", "rationale", "confidence"],
        "properties": {
            "price_usd": {"type": "number", "minimum": 1, "maximum": 5000},
            "rationale": {"type": "string", "minLength": 10, "maxLength": 300},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
    },
    validators=(positive_number("price_usd"),),
)
