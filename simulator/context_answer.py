"""A plain-text answer drawn from listing facts given in the prompt (seller chat puts one
JSON object per product in a system message), so a question about the seller's products
gets an answer about those products, not a paragraph of the prompt's words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_RANKS = {
    "profit": ("profit", "margin", "earn", "make", "makes", "best"),
    "price": ("price", "priced", "expensive", "cheap", "cost"),
}


def listings_in(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The product objects (with a product_id) on their own lines of system messages."""
    found = []
    for message in messages:
        content = message.get("content")
        if message.get("role") != "system" or not isinstance(content, str):
            continue
        for line in content.splitlines():
            line = line.strip()
            if line.startswith("{") and '"product_id"' in line:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    found.append(item)
    return found


def answer_from(listings: list[dict[str, Any]], question: str) -> str:
    """Two or three sentences about the products the question is about."""
    asked = set(re.findall(r"[a-z]+", question.lower()))
    if any(word in asked for word in _RANKS["profit"]):
        ranked = sorted(listings, key=_best_profit, reverse=True)
    elif any(word in asked for word in _RANKS["price"]):
        ranked = sorted(listings, key=lambda f: _money(f.get("price_usd")), reverse=True)
    else:
        ranked = sorted(listings, key=lambda f: -len(asked & _words(f)))
    lines = [_sentence(item) for item in ranked[:2]]
    return " ".join(["From your listings:", *lines])


def _sentence(item: dict[str, Any]) -> str:
    name = item.get("name") or item.get("product_id")
    best = item.get("best_marketplace")
    profit = _best_profit(item)
    price = item.get("price_usd")
    text = f"{name} ({item.get('product_id')}) is listed at ${price}"
    if best:
        text += f" and makes the most on {best}, ${profit} profit"
    return text + "."


def _best_profit(item: dict[str, Any]) -> Decimal:
    profits = item.get("profit_usd") or {}
    best = item.get("best_marketplace")
    if isinstance(profits, dict) and best in profits:
        return _money(profits[best])
    return Decimal(0)


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _words(item: dict[str, Any]) -> set[str]:
    return set(re.findall(r"[a-z]+", json.dumps(item).lower()))
