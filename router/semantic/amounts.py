"""Numbers, amounts and measures of a text as entities, normalised so that spellings of one
value agree ("$1,200.00" and "1200 dollars", "5kg" and "5 kg"); part of the entity extractor
(router.semantic.entities)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from router.semantic.entity_types import Entity, Kind

_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy"}
_CURRENCY_WORDS = {
    "usd": "usd", "dollar": "usd", "dollars": "usd", "bucks": "usd", "eur": "eur",
    "euro": "eur", "euros": "eur", "gbp": "gbp", "pound": "gbp", "pounds": "gbp",
    "cad": "cad", "aud": "aud", "jpy": "jpy", "yen": "jpy", "cents": "cents",
}  # fmt: skip
_NUM = r"(?<!\d)(?<!\d[.,])\d+(?:[.,]\d+)*"
"""A number, matched only from its first digit: tried from inside a run of digits, at every
one, a search took time quadratic in the run (8,192 digits: 5.6 s on the router's loop)."""
_MEASURE = re.compile(rf"({_NUM})([a-z]+)")
_SCALE = r"(?:\s?(k|m|mn|bn|b|thousand|million|billion|trillion)\b)?"
_MONEY_SYMBOL = re.compile(rf"(-\s?)?([$€£¥])\s?({_NUM}){_SCALE}|({_NUM}){_SCALE}\s?([$€£¥])")
"""An amount with its currency symbol, its sign ("-$300") and its scale ("$2k", "$5 million")."""
_UNITS = {
    "kg": "kg", "kgs": "kg", "g": "g", "gram": "g", "grams": "g", "lb": "lb", "lbs": "lb",
    "pound": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz", "cm": "cm", "mm": "mm",
    "m": "m", "meter": "m", "meters": "m", "in": "in", "inch": "in", "inches": "in",
    "ft": "ft", "feet": "ft", "foot": "ft", "ml": "ml", "l": "l", "liter": "l",
    "liters": "l", "gb": "gb", "tb": "tb", "mb": "mb", "%": "%", "percent": "%",
    "pack": "pack", "pcs": "pcs", "pieces": "pcs", "x": "x",
}  # fmt: skip


def take_money(text: str, found: list[tuple[int, Entity]]) -> str:
    """Add each amount with a currency symbol to found; text with those amounts blanked out."""
    for match in _MONEY_SYMBOL.finditer(text):
        sign, symbol, amount, scale = match.group(1, 2, 3, 4)
        if symbol is None:
            amount, scale, symbol = match.group(5, 6, 7)
        value = ("-" if sign else "") + _amount(amount) + (scale or "")
        found.append((match.start(), (Kind.MONEY, f"{_CURRENCY[symbol]}:{value}")))
    return _MONEY_SYMBOL.sub(lambda m: " " * len(m.group(0)), text)


def numeric(word: str, after: str) -> tuple[Entity, bool]:
    """The entity of a token with digits, and whether the next token (its unit) was used."""
    if word.isdigit() or re.fullmatch(_NUM, word):
        currency = _CURRENCY_WORDS.get(after)
        if currency is not None:
            return (Kind.MONEY, f"{currency}:{_amount(word)}"), True
        value = word if word.isdigit() else _amount(word)
        unit = _UNITS.get(after)
        return (Kind.NUMBER, f"{value}{unit}" if unit else value), unit is not None
    measured = _MEASURE.fullmatch(word.lower())
    if measured is not None and measured.group(2) in _UNITS:
        return (Kind.NUMBER, f"{_amount(measured.group(1))}{_UNITS[measured.group(2)]}"), False
    return (Kind.CODE, word.upper()), False


def negative(entity: Entity) -> Entity:
    """A number or amount with a minus before it; a code is left as it is."""
    kind, value = entity
    if kind is Kind.NUMBER:
        return kind, "-" + value
    if kind is Kind.MONEY:
        currency, _, amount = value.partition(":")
        return kind, f"{currency}:-{amount}"
    return entity


def _amount(text: str) -> str:
    if re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
        return text  # "1.000": a thousand in much of Europe, one elsewhere; kept as written
    cleaned = text.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", text) else text
    cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return text
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return str(value.normalize())
