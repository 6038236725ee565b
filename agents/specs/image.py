"""Image-analysis agents: what each photo shows (vision, once per photo), and what the
product is, which category and condition (from those photo facts and the seller's notes)."""

from __future__ import annotations

from typing import Any

from agents.marketplaces import GRADES
from agents.spec import UPLOAD, AgentSpec, Family, Inputs, Output
from agents.specs.schema import array, boolean, choice, number, obj, text
from agents.validators import each_max_length, max_length
from bus.messages import TaskType


def per_photo(
    name: str,
    instructions: str,
    schema: dict[str, Any],
    *,
    detail: str = "low",
    max_output_tokens: int = 200,
) -> AgentSpec:
    """A vision agent that analyses each photo once (optional: a listing can do without)."""
    return AgentSpec(
        name=name,
        family=Family.IMAGE,
        consumes=(UPLOAD,),
        uses_images=True,
        image_detail=detail,
        task_type=TaskType.IMAGE_ANALYSIS,
        required=False,
        upload_fields=(),
        instructions=instructions,
        output_schema=schema,
        max_output_tokens=max_output_tokens,
    )


PHOTO_SUBJECT = per_photo(
    "photo_subject",
    (
        "Say what object the photo shows: its kind, a short name, visible features a buyer "
        "would search for, and how sure you are. Describe only what is visible."
    ),
    obj(
        object=text(60),
        product_type=text(40),
        features=array(text(40), 1, 6),
        confidence=number(0, 1),
    ),
    max_output_tokens=200,
)

PHOTO_QUALITY = per_photo(
    "photo_quality",
    (
        "Rate the photo as a marketplace listing image: sharpness, lighting, background, "
        "framing, whether it could be the main image, a score from 0 to 1, and what to fix."
    ),
    obj(
        sharp=boolean(),
        lighting=choice("good", "dim", "harsh", "uneven"),
        background=choice("plain", "busy", "cluttered"),
        main_image_candidate=boolean(),
        score=number(0, 1),
        fixes=array(text(80), 0, 4),
    ),
    max_output_tokens=200,
)

LABEL_TEXT = per_photo(
    "label_text",
    (
        "Read every piece of text visible in the photo (labels, tags, engravings, model and "
        "serial numbers, sizes), exactly as written; none if there is no text."
    ),
    obj(lines=array(text(80), 0, 12), model_numbers=array(text(40), 0, 4)),
    detail="high",
    max_output_tokens=250,
)

BRAND_LOGO = per_photo(
    "brand_logo",
    (
        "Find brand names and logos visible in the photo. Name the brand only if a logo or "
        "brand text is visible; otherwise say none is visible."
    ),
    obj(brand_visible=boolean(), brand=text(40), logo=text(60), confidence=number(0, 1)),
    max_output_tokens=120,
)

COLOR_MATERIAL = per_photo(
    "color_material",
    (
        "Name the product's main colour, other colours, and the materials it appears to be "
        "made of, in the plain words buyers search with."
    ),
    obj(main_color=text(30), other_colors=array(text(30), 0, 4), materials=array(text(30), 1, 4)),
    max_output_tokens=120,
)

DEFECTS = per_photo(
    "defects",
    (
        "Look closely for wear and defects: scratches, chips, stains, tears, dents, missing "
        "parts. Give each with its severity and where it is; none if the item looks flawless."
    ),
    obj(
        defects=array(
            obj(kind=text(40), severity=choice("minor", "moderate", "major"), where=text(60)),
            0,
            8,
        )
    ),
    detail="high",
    max_output_tokens=300,
)


def plan_photos(inputs: Inputs) -> Output:
    """Order the photos best first, pick the main image, and list the ones to retake."""
    rated: list[Any] = list(inputs["photo_quality"].get("photos", []))
    order = sorted(
        range(len(rated)),
        key=lambda i: (not rated[i].get("main_image_candidate"), -float(rated[i]["score"])),
    )
    retake = [i for i in order if float(rated[i]["score"]) < 0.5 or not rated[i].get("sharp")]
    return {
        "order": order,
        "main_photo": order[0] if order else None,
        "retake": retake,
        "fixes": sorted({fix for i in retake for fix in rated[i].get("fixes", [])}),
    }


PHOTO_PLAN = AgentSpec(
    name="photo_plan",
    family=Family.IMAGE,
    consumes=("photo_quality",),
    task_type=TaskType.IMAGE_ANALYSIS,
    required=False,
    compute=plan_photos,
    instructions="Order the photos best first from their quality ratings; pick the main one.",
)

IDENTIFY = AgentSpec(
    name="identify",
    family=Family.IMAGE,
    consumes=(UPLOAD,),
    optional=("photo_subject", "label_text", "brand_logo", "color_material"),
    task_type=TaskType.PRODUCT_ANALYSIS,
    listing_key="product",
    instructions=(
        "Identify the product from the seller's notes and what was found in its photos: its "
        "name, brand ('unbranded' if none is known), model, product type, main colour, "
        "material, key features and search keywords. Trust visible text over guesses."
    ),
    output_schema=obj(
        name=text(80, 3),
        brand=text(40),
        model=text(40),
        product_type=text(40),
        color=text(30),
        material=text(30),
        features=array(text(60), 1, 6),
        keywords=array(text(30), 1, 8),
    ),
    validators=(max_length("name", 80), each_max_length("keywords", 30)),
    max_output_tokens=350,
)

CATEGORY = AgentSpec(
    name="category",
    family=Family.IMAGE,
    consumes=(UPLOAD, "identify"),
    task_type=TaskType.CATEGORY_CLASSIFICATION,
    instructions=(
        "Classify the product into each marketplace's category tree: the eBay category path, "
        "the Amazon browse path, the Etsy taxonomy path and the Google product category "
        "(used by Shopify), each as 'Top > Sub > Leaf', with your confidence."
    ),
    output_schema=obj(
        ebay=text(120),
        amazon=text(120),
        etsy=text(120),
        google=text(120),
        confidence=number(0, 1),
    ),
    validators=tuple(max_length(m, 120) for m in ("ebay", "amazon", "etsy", "google")),
    upload_fields=("title_hint",),
    max_output_tokens=200,
)

CONDITION = AgentSpec(
    name="condition",
    family=Family.IMAGE,
    consumes=(UPLOAD, "identify"),
    optional=("defects",),
    task_type=TaskType.CATEGORY_CLASSIFICATION,
    instructions=(
        "Grade the item's condition from the seller's notes and the defects found in the "
        "photos, and write the honest one-sentence condition note a listing must show. "
        "Disclose every defect; never grade better than the notes say."
    ),
    output_schema=obj(grade=choice(*GRADES), note=text(300, 10), disclosed=array(text(80), 0, 8)),
    validators=(max_length("note", 300),),
    upload_fields=("notes",),
    max_output_tokens=200,
)

SPECS = (
    PHOTO_SUBJECT,
    PHOTO_QUALITY,
    LABEL_TEXT,
    BRAND_LOGO,
    COLOR_MATERIAL,
    DEFECTS,
    PHOTO_PLAN,
    IDENTIFY,
    CATEGORY,
    CONDITION,
)
"""The image family, in the order they first run."""
