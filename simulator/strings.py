"""Plausible strings for a JSON schema field, steered by its format and property name."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from typing import Any

from simulator.words import Vocabulary

PROSE_HINTS = (
    "description",
    "summary",
    "text",
    "body",
    "reason",
    "explanation",
    "answer",
    "content",
    "notes",
    "details",
    "message",
    "comment",
    "review",
    "caption",
)
"""Field names (parts of) that ask for a sentence or a paragraph."""
_SHORT = ("tag", "keyword", "category", "categories", "brand", "color", "colour", "material")
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def string_for(schema: dict[str, Any], name: str, words: Vocabulary, rng: random.Random) -> str:
    """A string for a field: its format if given, else a shape its name suggests."""
    formatted = _formatted(str(schema.get("format", "")), words, rng)
    if formatted is not None:
        return formatted
    key = name.lower()
    if any(hint in key for hint in PROSE_HINTS):
        return words.text(rng, rng.randint(1, 2))
    if any(hint in key for hint in ("title", "headline", "name")):
        return words.phrase(rng, rng.randint(3, 7)).title()
    if key in ("id", "sku") or key.endswith(("_id", "sku", "code")):
        return f"{words.word(rng)[:3].upper()}-{rng.randint(1000, 9999)}"
    for hint in ("url", "link", "email", "date", "time"):
        if hint in key:
            return _formatted({"link": "uri", "url": "uri"}.get(hint, hint), words, rng) or ""
    if "currency" in key:
        return "USD"
    if "lang" in key:
        return "en"
    if any(hint in key for hint in _SHORT):
        return words.phrase(rng, rng.randint(1, 2)).lower()
    return words.phrase(rng, rng.randint(2, 4))


def fit_length(text: str, low: int, high: int | None, words: Vocabulary) -> str:
    """text padded with prompt words to low characters and cut (at a space if it can) to high."""
    filler = itertools.cycle(words.words)
    while len(text) < low:
        text = f"{text} {next(filler)}".lstrip()
    if high is not None and len(text) > high:
        cut = text[:high]
        space = cut.rfind(" ")
        if space >= max(low, 1):
            cut = cut[:space]
        stripped = cut.rstrip(" ,;:-")
        text = stripped if len(stripped) >= low else cut
    return text


def _formatted(fmt: str, words: Vocabulary, rng: random.Random) -> str | None:
    moment = _EPOCH + dt.timedelta(days=rng.randint(0, 700), seconds=rng.randint(0, 86_399))
    slug = "-".join(words.phrase(rng, 2).lower().split())
    if fmt == "date":
        return moment.date().isoformat()
    if fmt == "date-time":
        return moment.isoformat().replace("+00:00", "Z")
    if fmt == "time":
        return moment.time().isoformat() + "Z"
    if fmt == "email":
        return f"{words.word(rng).lower()}@example.com"
    if fmt in ("uri", "url", "iri"):
        return f"https://example.com/{slug}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if fmt == "hostname":
        return f"{words.word(rng).lower()}.example.com"
    if fmt == "ipv4":
        return f"192.0.2.{rng.randint(1, 254)}"
    return None
