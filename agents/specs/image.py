"""Image-analysis agents: what the photos show."""

from __future__ import annotations

from agents.spec import UPLOAD, AgentSpec

IDENTIFY = AgentSpec(
    name="identify",
    family="image",
    consumes=(UPLOAD,),
    task_type="image_analysis",
    uses_images=True,
    image_detail="low",
    listing_key="product",
    instructions=(
        "Identify the product in the photos, using the seller's notes. Give its name, brand "
        "(or 'unbranded'), category, condition, main colour, material and search keywords."
    ),
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "brand", "category", "condition", "color", "material", "keywords"],
        "properties": {
            "name": {"type": "string", "minLength": 3, "maxLength": 80},
            "brand": {"type": "string", "maxLength": 40},
            "category": {"type": "string", "maxLength": 60},
            "condition": {
                "type": "string",
                "enum": ["new", "like_new", "very_good", "good", "acceptable", "for_parts"],
            },
            "color": {"type": "string", "maxLength": 30},
            "material": {"type": "string", "maxLength": 30},
            "keywords": {
                "type": "array",
                "items": {"type": "string", "maxLength": 30},
                "minItems": 1,
                "maxItems": 8,
            },
        },
    },
)
