"""A product's own facts, read from one prompt item: what the simulated provider writes from.

A FlipSync agent's prompt ends with ``Inputs:`` and a JSON object: the seller's upload
fields (title_hint, notes) and earlier agents' outputs (identify's name and brand, the
condition grade, the suggested price...). A packed call holds one such item per request
under ``### Item N``. The facts of an item come from that item's text alone, so that no
product's words reach another product's answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ITEM_HEADING = re.compile(r"^### Item (\d+)\n", re.M)
"""How router/batching/prompt.py heads each item of a packed prompt."""
_INPUTS = "Inputs:\n"
_KEYS = {
    "title_hint": "title",
    "notes": "notes",
    "name": "name",
    "product_type": "product_type",
    "object": "product_type",
    "brand": "brand",
    "material": "material",
    "materials": "material",
    "color": "color",
    "main_color": "color",
    "colour": "color",
    "size": "size",
    "grade": "grade",
    "cost_price": "cost",
}


PLACEHOLDERS = frozenset({"item", "unbranded", "not visible", "see photos", "unknown", "none",
                          "n/a", ""})  # fmt: skip
"""Values an answer gives when it cannot know (a photo the simulator cannot see): they are
never taken as facts by a later prompt."""
COLOURS = tuple(
    ("black", "white", "grey", "gray", "red", "orange", "yellow", "green", "teal", "blue")
    + ("navy", "purple", "pink", "brown", "olive", "beige", "tan", "cream", "silver", "gold")
)
MATERIALS = ("stoneware", "ceramic", "porcelain", "glass", "walnut", "oak", "wood", "brass",
             "steel", "leather", "cotton", "wool", "denim", "plastic", "aluminium", "suede",
             "canvas", "linen", "silk", "rubber")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What one item says about its product; empty strings where it says nothing."""

    title: str = ""
    notes: str = ""
    name: str = ""
    product_type: str = ""
    brand: str = ""
    material: str = ""
    color: str = ""
    size: str = ""
    grade: str = ""
    cost: float | None = None
    price: float | None = None
    """A suggested price already in the inputs (the price agent's), in USD."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """Whether the item named a product at all."""
        return bool(self.title or self.name or self.notes or self.product_type)

    @property
    def product(self) -> str:
        """The product in a few words: the seller's title, else identify's name or type."""
        return _clean(self.title or self.name or self.product_type or "item")

    @property
    def text(self) -> str:
        """Every fact as one text (the words answers may draw on)."""
        parts = [self.title, self.name, self.product_type, self.notes, self.brand,
                 self.material, self.color, self.size]  # fmt: skip
        return " ".join(p for p in parts if p)


def item_texts(text: str) -> list[str]:
    """A packed prompt's items, each its own text; [] for a prompt that is not packed."""
    heads = list(ITEM_HEADING.finditer(text))
    return [text[h.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            for i, h in enumerate(heads)]  # fmt: skip


def inputs_of(text: str) -> str | None:
    """A prompt item's ``Inputs:`` part (the agent's instructions before it left out), or None
    when it has none."""
    start = text.find(_INPUTS)
    return None if start < 0 else text[start:].strip()


def facts_of(text: str) -> Facts:
    """The facts of one prompt item (its ``Inputs:`` JSON); empty when it has none."""
    start = text.find(_INPUTS)
    if start < 0:
        return Facts()
    try:
        inputs, _end = json.JSONDecoder().raw_decode(text, start + len(_INPUTS))
    except ValueError:
        return Facts()
    if not isinstance(inputs, dict):
        return Facts()
    found: dict[str, Any] = {}
    upload = inputs.get("upload")
    if isinstance(upload, dict):  # the seller's own words come first
        _collect(upload, found)
    _collect(inputs, found)
    price = inputs.get("price")
    suggested = price.get("price_usd") if isinstance(price, dict) else None
    if suggested is None:  # the price agent: the comparable listings' middle price
        suggested = _median_price(inputs.get("comparables"))
    return Facts(
        title=_text(found.get("title")),
        notes=_text(found.get("notes")),
        name=_text(found.get("name")),
        product_type=_text(found.get("product_type")),
        brand=_text(found.get("brand")),
        material=_text(found.get("material")),
        color=_text(found.get("color")),
        size=_text(found.get("size")),
        grade=_text(found.get("grade")),
        cost=_number(found.get("cost")),
        price=_number(suggested),
    )


def _collect(node: Any, found: dict[str, Any], depth: int = 0) -> None:
    """The first value of each known key, breadth first (shallower keys win)."""
    if depth > 6 or not isinstance(node, dict):
        return
    for key, value in node.items():
        name = _KEYS.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if name and name not in found and value is not None and not _placeholder(value):
            found[name] = value
    for value in node.values():
        if isinstance(value, dict):
            _collect(value, found, depth + 1)
        elif isinstance(value, list):
            for item in value[:3]:
                _collect(item, found, depth + 1)


def _median_price(comparables: Any) -> float | None:
    items = comparables.get("comparables") if isinstance(comparables, dict) else None
    prices = sorted(
        p for item in items or [] if isinstance(item, dict)
        if (p := _number(item.get("price_usd"))) is not None
    )  # fmt: skip
    return prices[len(prices) // 2] if prices else None


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in PLACEHOLDERS


def named_in(text: str, words: tuple[str, ...]) -> str:
    """The first of words the text names (a colour, a material), or ""."""
    said = set(re.findall(r"[a-z]+", text.lower()))
    return next((word for word in words if word in said), "")


BLIND = Facts(product_type="item", brand="unbranded", color="not visible",
              material="not visible")  # fmt: skip
"""What an answer about photos alone rests on: the simulator cannot see, so it says so."""


def _text(value: Any) -> str:
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace("$", "").replace(",", ""))
        except ValueError:
            return None
    return None


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" ,.;")
