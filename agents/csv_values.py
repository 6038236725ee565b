"""Values as sellers' exports write them: money with currency signs and separators, weights
and dimensions with units. Plain code, exact (Decimal); a value it cannot read is an error
that says why, never a silent zero."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_CURRENCIES = {"$": "USD", "us$": "USD", "usd": "USD", "€": "EUR", "eur": "EUR", "£": "GBP",
               "gbp": "GBP", "c$": "CAD", "cad": "CAD", "a$": "AUD", "aud": "AUD", "¥": "JPY",
               "jpy": "JPY"}  # fmt: skip
_MONEY = re.compile(
    r"(?P<pre>[^\d\s.,-]*)\s*(?P<num>-?(?:[.,]?\d)(?:[\d.,' ]*\d)?)\s*(?P<post>[^\d\s.,]*)"
)
"""An amount as written, stripped first: its number starts at a digit (or a separator and
one), so no two neighbouring parts can both take a run of spaces (that was cubic: 4,000
spaces took 97 s)."""
GRAMS = {
    "g": Decimal(1), "gram": Decimal(1), "grams": Decimal(1), "gr": Decimal(1),
    "kg": Decimal(1000), "kgs": Decimal(1000), "kilogram": Decimal(1000),
    "kilograms": Decimal(1000),
    "oz": Decimal("28.349523125"), "ounce": Decimal("28.349523125"),
    "ounces": Decimal("28.349523125"),
    "lb": Decimal("453.59237"), "lbs": Decimal("453.59237"), "pound": Decimal("453.59237"),
    "pounds": Decimal("453.59237"),
}  # fmt: skip
"""Grams per weight unit, by every spelling exports use."""
CENTIMETRES = {
    "mm": Decimal("0.1"), "cm": Decimal(1), "m": Decimal(100),
    "in": Decimal("2.54"), "inch": Decimal("2.54"), "inches": Decimal("2.54"),
    '"': Decimal("2.54"), "ft": Decimal("30.48"), "feet": Decimal("30.48"),
}  # fmt: skip
"""Centimetres per length unit."""
_NUMBER = r"(?<!\d)(?<!\d[.,])(\d+(?:[.,]\d+)?)"
"""A number, matched only from the start of its digits (linear time: see agents.units)."""
_WEIGHT = re.compile(rf"{_NUMBER}\s*({'|'.join(sorted(GRAMS, key=len, reverse=True))})\b", re.I)
_DIMS = re.compile(
    rf"{_NUMBER}\s*[x×*]\s*{_NUMBER}(?:\s*[x×*]\s*{_NUMBER})?"
    r"\s*(mm|cm|m|inches|inch|in|\"|ft|feet)?",
    re.I,
)


class ValueProblem(ValueError):
    """A value that cannot be read, with the reason a seller can act on."""


def parse_money(text: str) -> tuple[Decimal, str | None]:
    """An amount and its currency (None when unmarked): "$17.49", "1.234,50 €", "USD 12".

    The last "." or "," is the decimal mark unless three digits follow it after more than a
    zero (then "12.345" groups thousands, as "1.234,50" does); other dots, commas, spaces and
    apostrophes group thousands, in groups of three (or two: "1,00,000"), else the amount
    is refused: no reading of "1.0000,50" or "0.000.001" is sure.
    """
    match = _MONEY.fullmatch(text.strip())
    if not match:
        raise ValueProblem(f"{text!r} is not an amount of money")
    signs = {match["pre"].lower(), match["post"].lower()} - {""}
    currencies = {_CURRENCIES.get(sign) for sign in signs}
    if None in currencies or len(currencies) > 1:
        raise ValueProblem(f"{text!r}: unknown currency {' '.join(sorted(signs))!r}")
    number = match["num"].replace(" ", "").replace("'", "")
    whole, fraction = number, ""
    last = re.search(r"[.,](\d+)$", number)
    # Three digits after the last mark may group thousands ("12.345"); one or two, four and
    # more, or a lone zero before it ("0.125") may not: "12.5000" was read as 125000.
    if last and (len(last[1]) != 3 or re.fullmatch(r"-?0?", number[: last.start()])):
        whole, fraction = number[: last.start()], f".{last[1]}"
    groups = re.split(r"[.,]", whole.removeprefix("-"))
    if len(groups) > 1 and (
        groups[0][:1] in ("", "0") or any(len(g) not in (2, 3) for g in groups[1:])
    ):
        raise ValueProblem(f"{text!r}: {whole!r} is not a number grouped in thousands")
    number = re.sub(r"[.,]", "", whole) + fraction
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise ValueProblem(f"{text!r} is not an amount of money") from None
    if amount < 0:
        raise ValueProblem(f"{text!r} is negative")
    return amount, next(iter(currencies), None)


def _decimal(number: str) -> Decimal:
    return Decimal(number.replace(",", "."))


def parse_weight_g(text: str, default_unit: str | None = None) -> Decimal:
    """Grams from "13.4 ounces", "1,2 kg", "2 lb"; a bare number needs default_unit."""
    match = _WEIGHT.search(text)
    if match:
        return (_decimal(match[1]) * GRAMS[match[2].lower()]).quantize(Decimal(1))
    bare = re.fullmatch(r"\s*" + _NUMBER + r"\s*", text)
    if bare and default_unit is not None:
        return (_decimal(bare[1]) * GRAMS[default_unit]).quantize(Decimal(1))
    units = "g, kg, oz, lb"
    if bare:
        raise ValueProblem(f"weight {text!r} has no unit ({units})")
    raise ValueProblem(f"{text!r} is not a weight ({units})")


def parse_dimensions_cm(text: str, default_unit: str | None = None) -> list[Decimal]:
    """Sides in cm from "10 x 5 x 3 inches", "40 x 30 x 5 cm" (Amazon's "Product Dimensions"
    may add "; 13.4 ounces", which is ignored here)."""
    match = _DIMS.search(text)
    if not match:
        raise ValueProblem(f"{text!r} is not dimensions (like 40 x 30 x 5 cm)")
    unit = (match[4] or default_unit or "").lower()
    if unit not in CENTIMETRES:
        raise ValueProblem(f"dimensions {text!r} have no unit (cm, mm, in)")
    sides = [match[1], match[2], match[3]]
    return [(_decimal(s) * CENTIMETRES[unit]).quantize(Decimal("0.1")) for s in sides if s]


def weight_in_text(text: str) -> Decimal | None:
    """The first weight with a unit in free text (Amazon's "Product Dimensions"), in grams."""
    match = _WEIGHT.search(text)
    return (_decimal(match[1]) * GRAMS[match[2].lower()]).quantize(Decimal(1)) if match else None
