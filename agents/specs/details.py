"""Listing details: measurements (zero-call), item specifics, SEO keywords, translations and
the length check of every listing (zero-call)."""

from __future__ import annotations

from typing import Any

from agents.marketplaces import EBAY_TITLE, Marketplace, check_lengths
from agents.spec import UPLOAD, AgentSpec, Family, Inputs, Output
from agents.specs.schema import array, integer, number, obj, text
from agents.units import convert
from agents.validators import each_max_length, item_count, max_length, unique_items
from bus.messages import TaskType


def measurements(inputs: Inputs) -> Output:
    """Measurements in the seller's text and the photos' labels, in metric and imperial."""
    upload = inputs[UPLOAD]
    attributes: dict[str, Any] = upload.get("attributes", {})
    lines = [str(upload.get("title_hint", "")), str(upload.get("notes", ""))]
    lines += [f"{value}" for value in attributes.values()]
    for photo in inputs.get("label_text", {}).get("photos", []):
        lines += photo.get("lines", [])
    return convert("\n".join(lines))


UNIT_CONVERSION = AgentSpec(
    name="unit_conversion",
    family=Family.COPY,
    consumes=(UPLOAD,),
    optional=("label_text",),
    task_type=TaskType.PRODUCT_ANALYSIS,
    compute=measurements,
    instructions="Find every measurement in the text and give it in metric and imperial units.",
)

ITEM_SPECIFICS = AgentSpec(
    name="item_specifics",
    family=Family.COPY,
    consumes=(UPLOAD, "identify", "category"),
    optional=("unit_conversion",),
    task_type=TaskType.PRODUCT_ANALYSIS,
    instructions=(
        "Fill in the item specifics marketplaces ask for: brand, model, MPN, colour, "
        "material, size, product type and country of origin ('unknown' where nobody can "
        "tell), the packed shipping weight in grams and box size in cm (estimate from the "
        "product type when not given), and up to ten more name/value pairs buyers filter on."
    ),
    output_schema=obj(
        brand=text(40),
        model=text(40),
        mpn=text(40),
        color=text(30),
        material=text(40),
        size=text(40),
        product_type=text(40),
        country_of_origin=text(40),
        package_weight_g=integer(10, 30000),
        package_dimensions_cm=array(number(1, 200), 3, 3),
        extra=array(obj(name=text(40), value=text(60)), 0, 10),
    ),
    validators=(item_count("package_dimensions_cm", low=3, high=3),),
    max_output_tokens=400,
)

SEO_KEYWORDS = AgentSpec(
    name="seo_keywords",
    family=Family.COPY,
    consumes=(UPLOAD, "identify", "category"),
    task_type=TaskType.TEXT_GENERATION,
    required=False,
    upload_fields=("title_hint",),
    instructions=(
        "Give the search keywords buyers use for this product: 3-5 primary keywords, 3-8 "
        "long-tail phrases, and up to 5 negative keywords that would attract the wrong buyer."
    ),
    output_schema=obj(
        primary=array(text(40), 3, 5, unique=True),
        long_tail=array(text(60), 3, 8, unique=True),
        negative=array(text(40), 0, 5),
    ),
    validators=(unique_items("primary"), each_max_length("long_tail", 60)),
    max_output_tokens=250,
)

TRANSLATION = AgentSpec(
    name="translation",
    family=Family.COPY,
    consumes=("ebay_listing",),
    task_type=TaskType.TRANSLATION,
    required=False,
    upload_fields=(),
    instructions=(
        "Translate the eBay listing for eBay Germany, France and Spain: a natural title of "
        "at most 80 characters (keep brand and model untranslated) and the description."
    ),
    output_schema=obj(
        **{
            language: obj(title=text(EBAY_TITLE, 10), description=text(2000, 40))
            for language in ("de", "fr", "es")
        }
    ),
    validators=tuple(max_length(f"{lang}.title", EBAY_TITLE) for lang in ("de", "fr", "es")),
    max_output_tokens=800,
)

COPIES = {
    Marketplace.EBAY: "ebay_listing",
    Marketplace.AMAZON: "amazon_listing",
    Marketplace.ETSY: "etsy_listing",
    Marketplace.SHOPIFY: "shopify_listing",
}


def lengths(inputs: Inputs) -> Output:
    """Every listing field against its marketplace limit, bullets and tags counted."""
    report = check_lengths({market: inputs[name] for market, name in COPIES.items()})
    report["amazon_bullets"] = len(inputs["amazon_bullets"].get("bullets", []))
    report["etsy_tags"] = len(inputs["etsy_tags"].get("tags", []))
    return report


def _all_fit(output: Output, _inputs: Inputs) -> list[str]:
    return [] if output.get("ok") else ["a listing field is over its marketplace limit"]


LISTING_CHECK = AgentSpec(
    name="listing_check",
    family=Family.COPY,
    consumes=(*COPIES.values(), "amazon_bullets", "etsy_tags"),
    task_type=TaskType.COMPLIANCE,
    compute=lengths,
    validators=(_all_fit,),
    instructions="Check every listing field against its marketplace's length limit.",
)

SPECS = (UNIT_CONVERSION, ITEM_SPECIFICS, SEO_KEYWORDS, TRANSLATION, LISTING_CHECK)
"""The listing-detail agents."""
