"""The product files FlipSync reads without hand renaming: which columns each one has, what
each column means, and how a file's header tells which format it is.

Formats (column lists as each marketplace publishes them for its exports and templates):
- plain: a spreadsheet with product_id, title, notes, cost_price, photos and any others;
- shopify: Shopify's product CSV (Handle, Title, Body (HTML), Variant Grams, Cost per item..);
  the rows of one Handle (variants, more images) are one product;
- ebay: eBay's File Exchange template (*Action, CustomLabel, *Title, *StartPrice,
  *ConditionID, WeightMajor/WeightMinor..) and Seller Hub's active listings report (Item
  number, Title, Custom label (SKU), Start price, Condition..);
- amazon: Amazon's active/all listings report (item-name, seller-sku, price, item-condition,
  tab-delimited), its inventory file (item_sku, item_name, standard_price,
  website_shipping_weight..), and product-data columns such as Shipping Weight "13.4 ounces".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FIELDS_HELP = {
    "product_id": "your id for the product (unique; it names the package folder)",
    "title_hint": "a title or name",
    "notes": "what you know about it (description, flaws, what is included)",
    "cost_price": "what it cost you: $17.49, 1.234,50 €, 12.99 (USD unless marked)",
    "list_price": "your current or intended price, same forms as cost_price",
    "photos": "photo files beside the CSV, separated by ;",
    "weight": "with its unit: 400 g, 1.2 kg, 13.4 ounces, 2 lb (weight_g: grams)",
    "dimensions": "40 x 30 x 5 cm, 10 x 5 x 3 inches",
}


@dataclass(frozen=True, kw_only=True)
class Format:
    """One kind of product file: its columns (by normalised header) and what each means."""

    name: str
    title: str
    columns: dict[str, str]
    """Normalised header -> FlipSync field."""
    signature: frozenset[str]
    """Headers that identify this format (any one of them is enough)."""
    required: tuple[tuple[str, ...], ...]
    """Fields the file must have: each tuple is alternatives (one of them will do)."""
    ignored: frozenset[str] = frozenset()
    """Known columns FlipSync has no use for (not reported as unknown)."""
    group_rows: bool = False
    """Rows repeating a product id with an empty title add to that product (Shopify)."""
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    """Coded values (condition ids) -> words, per field."""


def normalise(header: str) -> str:
    """A header as formats list it: lower case, single spaces, no '*' or eBay's "(SiteID=..)"."""
    text = header.strip().lstrip("\ufeff").lstrip("*").strip().lower()
    text = re.sub(r"^action\(.*\)$", "action", text)
    return re.sub(r"\s+", " ", text)


_COMMON = {
    "brand": "brand",
    "condition": "condition",
    "size": "size",
    "color": "color",
    "colour": "color",
    "material": "material",
    "quantity": "quantity",
    "category": "category",
    "sku": "sku",
    "upc": "upc",
    "ean": "ean",
    "mpn": "mpn",
}

PLAIN = Format(
    name="plain",
    title="a plain spreadsheet",
    columns={
        "product_id": "product_id",
        "product id": "product_id",
        "id": "product_id",
        "item id": "product_id",
        "title_hint": "title_hint",
        "title": "title_hint",
        "name": "title_hint",
        "product name": "title_hint",
        "notes": "notes",
        "description": "notes",
        "cost_price": "cost_price",
        "cost": "cost_price",
        "cost price": "cost_price",
        "unit cost": "cost_price",
        "price": "list_price",
        "list_price": "list_price",
        "list price": "list_price",
        "photos": "photos",
        "weight_g": "weight_g",
        "weight": "weight",
        "shipping weight": "weight",
        "item weight": "weight",
        "weight_unit": "weight_unit",
        "dimensions": "dimensions",
        "dimensions_cm": "dimensions_cm",
        "product dimensions": "dimensions",
        **_COMMON,
    },
    signature=frozenset({"product_id", "title_hint", "cost_price", "photos"}),
    required=(("product_id", "sku"),),
)

SHOPIFY = Format(
    name="shopify",
    title="Shopify product CSV",
    columns={
        "handle": "product_id",
        "url handle": "product_id",
        "title": "title_hint",
        "body (html)": "notes",
        "description": "notes",
        "vendor": "brand",
        "type": "category",
        "product category": "category",
        "tags": "tags",
        "variant sku": "sku",
        "sku": "sku",
        "variant grams": "weight_g",
        "weight value (grams)": "weight_g",
        "variant price": "list_price",
        "price": "list_price",
        "cost per item": "cost_price",
        "variant inventory qty": "quantity",
        "inventory quantity": "quantity",
        "image src": "image_urls",
        "product image url": "image_urls",
        "variant barcode": "upc",
        "option1 value": "option",
        "option2 value": "option",
        "option3 value": "option",
    },
    signature=frozenset({"handle", "body (html)", "variant grams", "url handle"}),
    required=(("product_id",), ("title_hint",)),
    ignored=frozenset(
        {
            "published",
            "option1 name",
            "option2 name",
            "option3 name",
            "variant inventory tracker",
            "variant inventory policy",
            "variant fulfillment service",
            "variant compare at price",
            "variant requires shipping",
            "variant taxable",
            "image position",
            "image alt text",
            "gift card",
            "seo title",
            "seo description",
            "variant image",
            "variant weight unit",
            "variant tax code",
            "status",
            "compare-at price",
            "charge tax",
            "continue selling when out of stock",
            "requires shipping",
            "fulfillment service",
            "weight unit for display",
            "published on online store",
            "google shopping / google product category",
        }
    ),  # fmt: skip
    group_rows=True,
)

_EBAY_CONDITIONS = {
    "1000": "New", "1500": "New other (see details)", "1750": "New with defects",
    "2000": "Certified refurbished", "2500": "Seller refurbished", "2750": "Like new",
    "3000": "Used", "4000": "Used, very good", "5000": "Used, good", "6000": "Used, acceptable",
    "7000": "For parts or not working",
}  # fmt: skip
EBAY = Format(
    name="ebay",
    title="eBay File Exchange template or Seller Hub listings report",
    columns={
        "customlabel": "product_id",
        "custom label (sku)": "product_id",
        "item number": "item_number",
        "itemid": "item_number",
        "title": "title_hint",
        "subtitle": "subtitle",
        "description": "notes",
        "startprice": "list_price",
        "start price": "list_price",
        "buyitnowprice": "list_price",
        "current price": "list_price",
        "conditionid": "condition",
        "condition": "condition",
        "conditiondescription": "condition_note",
        "quantity": "quantity",
        "available quantity": "quantity",
        "picurl": "image_urls",
        "weightmajor": "weight_major_lb",
        "weightminor": "weight_minor_oz",
        "packagelength": "length",
        "packagewidth": "width",
        "packagedepth": "depth",
        "ebay category 1 name": "category",
        "c:brand": "brand",
        "c:color": "color",
        "c:colour": "color",
        "c:material": "material",
        "c:size": "size",
        "c:mpn": "mpn",
        "cost": "cost_price",
    },
    signature=frozenset({"action", "customlabel", "custom label (sku)", "startprice"}),
    required=(("product_id", "item_number"), ("title_hint",)),
    ignored=frozenset(
        {
            "action",
            "category",
            "format",
            "duration",
            "location",
            "dispatchtimemax",
            "returnsacceptedoption",
            "shippingprofilename",
            "returnprofilename",
            "paymentprofilename",
            "weightunit",
            "variation details",
            "currency",
            "auction buy it now price",
            "reserve price",
            "sold quantity",
            "watchers",
            "bids",
            "start date",
            "end date",
            "ebay category 1 number",
            "ebay category 2 name",
            "ebay category 2 number",
            "listing site",
            "p:upc",
            "p:ean",
        }
    ),  # fmt: skip
    codes={"condition": _EBAY_CONDITIONS},
)

_AMAZON_CONDITIONS = {
    "1": "Used, like new", "2": "Used, very good", "3": "Used, good", "4": "Used, acceptable",
    "5": "Collectible, like new", "6": "Collectible, very good", "7": "Collectible, good",
    "8": "Collectible, acceptable", "10": "Refurbished", "11": "New",
}  # fmt: skip
AMAZON = Format(
    name="amazon",
    title="Amazon listings report, inventory file or product data",
    columns={
        "seller-sku": "product_id",
        "item_sku": "product_id",
        "sku": "product_id",
        "asin1": "asin",
        "asin": "asin",
        "item-name": "title_hint",
        "item_name": "title_hint",
        "product name": "title_hint",
        "title": "title_hint",
        "item-description": "notes",
        "product_description": "notes",
        "description": "notes",
        "about this item": "notes",
        "price": "list_price",
        "standard_price": "list_price",
        "quantity": "quantity",
        "item-condition": "condition",
        "condition_type": "condition",
        "item-note": "condition_note",
        "condition_note": "condition_note",
        "image-url": "image_urls",
        "main_image_url": "image_urls",
        "brand": "brand",
        "brand_name": "brand",
        "manufacturer": "brand",
        "shipping weight": "weight",
        "item weight": "weight",
        "website_shipping_weight": "weight",
        "website_shipping_weight_unit_of_measure": "weight_unit",
        "item_weight": "weight",
        "item_weight_unit_of_measure": "weight_unit",
        "product dimensions": "dimensions",
        "package dimensions": "dimensions",
        "color_name": "color",
        "color": "color",
        "material_type": "material",
        "size_name": "size",
        "cost": "cost_price",
        "cost price": "cost_price",
        "unit cost": "cost_price",
    },
    signature=frozenset({"seller-sku", "item-name", "item_sku", "asin1", "asin"}),
    required=(("product_id", "asin"), ("title_hint",)),
    ignored=frozenset(
        {
            "listing-id",
            "open-date",
            "item-is-marketplace",
            "product-id-type",
            "zshop-shipping-fee",
            "zshop-category1",
            "zshop-browse-path",
            "zshop-storefront-feature",
            "asin2",
            "asin3",
            "will-ship-internationally",
            "expedited-shipping",
            "zshop-boldface",
            "product-id",
            "bid-for-featured-placement",
            "add-delete",
            "pending-quantity",
            "fulfillment-channel",
            "merchant-shipping-group",
            "status",
            "external_product_id",
            "external_product_id_type",
            "feed_product_type",
            "update_delete",
            "item_type",
            "parent_child",
            "parent_sku",
            "relationship_type",
            "variation_theme",
            "best sellers rank",
            "customer reviews",
            "date first available",
        }
    ),  # fmt: skip
    codes={"condition": _AMAZON_CONDITIONS},
)

FORMATS = (SHOPIFY, EBAY, AMAZON, PLAIN)
"""Detection order: the marketplace formats by their telltale headers, else plain."""


def detect(headers: list[str]) -> Format:
    """The format a header row belongs to (plain when no marketplace's telltale is there)."""
    names = {normalise(h) for h in headers}
    for fmt in FORMATS[:-1]:
        if names & fmt.signature:
            return fmt
    return PLAIN


def _columns(fmt: Format) -> str:
    """The columns a format needs, as "a or b; c or d"."""
    return "; ".join(
        " or ".join(h for h in fmt.columns if fmt.columns[h] in alternatives)
        for alternatives in fmt.required
    )


FORMATS_HELP = "\n".join(
    [
        "product files (read as they are exported; the format is told by the header):",
        *(f"  {fmt.name:8} {fmt.title}: needs {_columns(fmt)}" for fmt in FORMATS),
        "plain spreadsheet columns:",
        *(f"  {name:11} {text}" for name, text in FIELDS_HELP.items()),
        "  any other column is kept as an attribute (size, colour, material, sku...).",
        "The whole file is checked first: missing columns, unreadable values, duplicate ids,",
        "broken rows and missing or unreadable photos are all reported at once, in line order,",
        "and nothing is uploaded until it reads cleanly.",
        "Photos given as URLs (image columns) are kept as attributes, never fetched.",
        "More: docs/import.md",
    ]
)
"""The formats, for `flipsync upload --help`."""
