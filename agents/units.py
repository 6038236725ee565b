"""Measurements in a seller's text, converted between metric and imperial: plain code, exact.

Finds weights (g, kg, oz, lb), lengths (mm, cm, m, in, ft), volumes (ml, l, fl oz), box
dimensions ("40 x 30 x 5 cm") and EU shoe sizes, and gives each in the other system.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

_NUMBER = r"(?<!\d)(?<!\d[.,])(\d+(?:[.,]\d+)?)"
"""A number, matched only from the start of its digits (a match tried from inside a long run
of digits, at every one of them, took time quadratic in the run: a note of 20,000 digits
held the agents' loop 39 s)."""
_DIMS = re.compile(
    rf"{_NUMBER}\s*[x×]\s*{_NUMBER}(?:\s*[x×]\s*{_NUMBER})?\s*(mm|cm|m|in|inch|inches)\b", re.I
)
_SINGLE = re.compile(
    rf"{_NUMBER}\s*(fl\.?\s*oz|ml|l|kg|g|lbs?|oz|mm|cm|m|in|inch|inches|ft)\b", re.I
)
_SHOE = re.compile(r"\bEU\s*(3[5-9]|4[0-9])\b", re.I)

# unit -> (quantity, factor to the base unit: g, mm, ml)
_UNITS: dict[str, tuple[str, Decimal]] = {
    "g": ("weight", Decimal(1)),
    "kg": ("weight", Decimal(1000)),
    "oz": ("weight", Decimal("28.349523125")),
    "lb": ("weight", Decimal("453.59237")),
    "lbs": ("weight", Decimal("453.59237")),
    "mm": ("length", Decimal(1)),
    "cm": ("length", Decimal(10)),
    "m": ("length", Decimal(1000)),
    "in": ("length", Decimal("25.4")),
    "inch": ("length", Decimal("25.4")),
    "inches": ("length", Decimal("25.4")),
    "ft": ("length", Decimal("304.8")),
    "ml": ("volume", Decimal(1)),
    "l": ("volume", Decimal(1000)),
    "floz": ("volume", Decimal("29.5735295625")),
}
# EU men's shoe size -> (US men's, UK)
_SHOE_SIZES = {
    35: ("3.5", "2.5"), 36: ("4.5", "3.5"), 37: ("5", "4"), 38: ("6", "5"), 39: ("6.5", "5.5"),
    40: ("7", "6"), 41: ("8", "7"), 42: ("8.5", "8"), 43: ("9.5", "9"), 44: ("10", "9.5"),
    45: ("11", "10.5"), 46: ("12", "11"), 47: ("12.5", "12"), 48: ("13.5", "13"),
    49: ("14", "13.5"),
}  # fmt: skip


def convert(text: str) -> dict[str, Any]:
    """Every measurement found in text, in both systems, plus weight_g and dimensions_cm."""
    found: list[dict[str, str]] = []
    weight_g: Decimal | None = None
    dims_cm: list[str] | None = None
    for match in _DIMS.finditer(text):
        factor = _UNITS[match.group(4).lower()][1]
        sides_mm = [_num(g) * factor for g in match.groups()[:3] if g]
        dims_cm = [_round(s / 10, 1) for s in sides_mm]
        found.append(
            {
                "text": match.group(0),
                "quantity": "dimensions",
                "metric": " x ".join(dims_cm) + " cm",
                "imperial": " x ".join(_round(s / Decimal("25.4"), 1) for s in sides_mm) + " in",
            }
        )
    rest = _DIMS.sub(" ", text)
    for match in _SINGLE.finditer(rest):
        unit = re.sub(r"[\s.]", "", match.group(2).lower())
        quantity, factor = _UNITS[unit]
        base = _num(match.group(1)) * factor
        if quantity == "weight" and weight_g is None:
            weight_g = base
        found.append(
            {
                "text": match.group(0),
                "quantity": quantity,
                "metric": _metric(quantity, base),
                "imperial": _imperial(quantity, base),
            }
        )
    for match in _SHOE.finditer(text):
        us, uk = _SHOE_SIZES[int(match.group(1))]
        found.append(
            {
                "text": match.group(0),
                "quantity": "shoe_size",
                "metric": f"EU {match.group(1)}",
                "imperial": f"US men's {us} / UK {uk}",
            }
        )
    return {
        "measurements": found,
        "weight_g": _round(weight_g, 0) if weight_g is not None else None,
        "dimensions_cm": dims_cm,
    }


def _metric(quantity: str, base: Decimal) -> str:
    if quantity == "weight":
        return f"{_round(base / 1000, 2)} kg" if base >= 1000 else f"{_round(base, 0)} g"
    if quantity == "length":
        return f"{_round(base / 10, 1)} cm"
    return f"{_round(base / 1000, 2)} l" if base >= 1000 else f"{_round(base, 0)} ml"


def _imperial(quantity: str, base: Decimal) -> str:
    if quantity == "weight":
        ounces = base / _UNITS["oz"][1]
        return f"{_round(ounces / 16, 2)} lb" if ounces >= 16 else f"{_round(ounces, 1)} oz"
    if quantity == "length":
        return f"{_round(base / Decimal('25.4'), 1)} in"
    return f"{_round(base / _UNITS['floz'][1], 1)} US fl oz"


def _num(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _round(value: Decimal, places: int) -> str:
    text = f"{value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
