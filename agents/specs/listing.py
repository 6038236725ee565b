"""Listing-copy agents: a title and description per marketplace, Amazon bullets, Etsy tags,
each checked against its marketplace's rules (agents.marketplaces)."""

from __future__ import annotations

from typing import Any

from agents.marketplaces import (
    AMAZON_BULLET,
    AMAZON_BULLETS,
    AMAZON_DESCRIPTION,
    AMAZON_TITLE,
    EBAY_TITLE,
    ETSY_TAG,
    ETSY_TAGS,
    ETSY_TITLE,
    SHOPIFY_META,
    SHOPIFY_SEO_TITLE,
    Marketplace,
    amazon_bullets,
    etsy_tags,
    listing_validators,
)
from agents.spec import UPLOAD, AgentSpec, Family, Validator
from agents.specs.schema import array, obj, text
from bus.messages import TaskType

FACTS = (UPLOAD, "identify", "condition", "item_specifics")
"""What every listing is written from."""


def copywriter(
    name: str, instructions: str, schema: dict[str, Any], validators: tuple[Validator, ...]
) -> AgentSpec:
    """A listing-copy agent: required, written from the product facts, SEO keywords if any."""
    return AgentSpec(
        name=name,
        family=Family.COPY,
        consumes=FACTS,
        optional=("seo_keywords",),
        task_type=TaskType.TEXT_GENERATION,
        instructions=instructions
        + " Be accurate and honest: state the condition and every disclosed defect.",
        output_schema=schema,
        max_output_tokens=700,
        validators=validators,
    )


EBAY_LISTING = copywriter(
    "ebay_listing",
    f"Write the eBay listing: a title of at most {EBAY_TITLE} characters that leads with "
    "brand, product and the words buyers search, no filler or punctuation spam; and a clear "
    "description of 3-6 sentences with the item specifics that matter.",
    obj(title=text(EBAY_TITLE, 10), description=text(2000, 80)),
    listing_validators(Marketplace.EBAY),
)

AMAZON_LISTING = copywriter(
    "amazon_listing",
    f"Write the Amazon listing: a title of at most {AMAZON_TITLE} characters in Amazon's "
    "order (brand, product line, material or key feature, type, colour, size, quantity) "
    f"and a product description of at most {AMAZON_DESCRIPTION} characters. No prices, "
    "promotions or seller details.",
    obj(title=text(AMAZON_TITLE, 10), description=text(AMAZON_DESCRIPTION, 80)),
    listing_validators(Marketplace.AMAZON),
)

BULLETS = copywriter(
    "amazon_bullets",
    f"Write exactly {AMAZON_BULLETS} Amazon bullet points, each at most {AMAZON_BULLET} "
    "characters, each starting with a short capitalised benefit, covering features, "
    "materials, size, condition and what is included.",
    obj(bullets=array(text(AMAZON_BULLET, 10), AMAZON_BULLETS, AMAZON_BULLETS)),
    amazon_bullets(),
)

ETSY_LISTING = copywriter(
    "etsy_listing",
    f"Write the Etsy listing: a descriptive title of at most {ETSY_TITLE} characters, "
    "natural rather than keyword-stuffed, and a warm description that tells the item's "
    "story, materials, size and care.",
    obj(title=text(ETSY_TITLE, 10), description=text(2000, 80)),
    listing_validators(Marketplace.ETSY),
)

TAGS = copywriter(
    "etsy_tags",
    f"Give up to {ETSY_TAGS} Etsy tags, each at most {ETSY_TAG} characters of letters, "
    "digits and spaces, all different, mixing broad and specific phrases buyers type.",
    obj(tags=array(text(ETSY_TAG, 2), 5, ETSY_TAGS, unique=True)),
    etsy_tags(),
)

SHOPIFY_LISTING = copywriter(
    "shopify_listing",
    "Write the Shopify product page: a product title, a description for the page, an SEO "
    f"title of at most {SHOPIFY_SEO_TITLE} characters and a meta description of at most "
    f"{SHOPIFY_META} characters that would earn the click from a search result.",
    obj(
        title=text(120, 10),
        description=text(2000, 80),
        seo_title=text(SHOPIFY_SEO_TITLE, 10),
        meta_description=text(SHOPIFY_META, 50),
    ),
    listing_validators(Marketplace.SHOPIFY),
)

SPECS = (EBAY_LISTING, AMAZON_LISTING, BULLETS, ETSY_LISTING, TAGS, SHOPIFY_LISTING)
"""One listing per marketplace, with Amazon's bullets and Etsy's tags."""
