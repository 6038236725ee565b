"""Listing-copy agents: titles and descriptions that fit each marketplace's rules."""

from __future__ import annotations

from agents.spec import UPLOAD, AgentSpec
from agents.validators import max_length

LISTING = AgentSpec(
    name="listing",
    family="copy",
    consumes=(UPLOAD, "identify"),
    task_type="text_generation",
    listing_key="copy",
    instructions=(
        "Write an eBay listing for the identified product: a title of at most 80 characters "
        "that leads with brand and product name, and a clear, honest description of 2-4 "
        "sentences that states the condition."
    ),
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "description"],
        "properties": {
            "title": {"type": "string", "minLength": 10, "maxLength": 80},
            "description": {"type": "string", "minLength": 40, "maxLength": 1200},
        },
    },
    validators=(max_length("title", 80), max_length("description", 1200)),
)
