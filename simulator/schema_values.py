"""JSON values that validate against a JSON schema, made of the prompt's words.

Supported: type (or a list of types), properties, required, additionalProperties, enum, const,
minLength/maxLength, minItems/maxItems, uniqueItems, prefixItems, minimum/maximum (and the
exclusive ones), multipleOf, anyOf/oneOf (one branch), allOf (merged), format (date,
date-time, email, uri, uuid) and local $ref into $defs/definitions. pattern is not honoured.
"""

from __future__ import annotations

import math
import random
from typing import Any, TypeGuard

from simulator.facts import Facts
from simulator.listing_text import (
    TERM_HINTS,
    clause,
    grade_choice,
    prose,
    search_terms,
    short,
    title,
    typical_grams,
    typical_side_cm,
    typical_usd,
)
from simulator.strings import PROSE_HINTS, fit_length, string_for
from simulator.words import Vocabulary

DEEP = 4
"""From this depth on, arrays take their minimum length and objects only required keys."""
MAX_DEPTH = 32
"""A recursive schema that still requires more nesting here gets null."""
_NUMBER_RANGES = {
    "price": (5.0, 250.0),
    "cost": (5.0, 250.0),
    "amount": (5.0, 250.0),
    "rating": (1.0, 5.0),
    "score": (0.0, 1.0),
    "confidence": (0.0, 1.0),
    "probability": (0.0, 1.0),
    "percent": (0.0, 100.0),
    "quantity": (1.0, 50.0),
    "count": (1.0, 50.0),
    "year": (2015.0, 2025.0),
    "weight_g": (150.0, 2500.0),
    "dimensions_cm": (5.0, 60.0),
}


_POINTS = frozenset({"bullets", "bullet", "disclosed", "fixes", "drivers", "buyers", "lines",
                     "add_items", "disclosures"})  # fmt: skip
"""List fields whose items are selling points or short statements about the product."""


class SchemaFaker:
    """Makes values for the schemas of one root document, drawing from one RNG."""

    def __init__(
        self,
        root: dict[str, Any],
        words: Vocabulary,
        rng: random.Random,
        facts: Facts | None = None,
    ) -> None:
        self.root = root
        self.rng = rng
        self.facts = facts if facts is not None and facts.known else None
        if self.facts is not None:  # the product's own words only, never the instructions'
            words = Vocabulary.from_messages([{"role": "user", "content": self.facts.text}])
        self.words = words
        self._points: dict[str, int] = {}

    def value(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        """A value valid for schema; name (the property's) steers strings and numbers."""
        schema = self.resolve(schema)
        if depth > MAX_DEPTH or not isinstance(schema, dict):
            return None if schema is False else self.words.phrase(self.rng, 2)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            if self.facts is not None:
                return grade_choice(list(schema["enum"]), self.facts)
            return self.rng.choice(schema["enum"])
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            return self.value({**rest, **self.resolve(self._branch(branches, depth))}, name, depth)
        kind = self._type(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("number", "integer"):
            return self._number(schema, name, kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        text = self._string(schema, name)
        return fit_length(text, schema.get("minLength", 0), schema.get("maxLength"), self.words)

    def _string(self, schema: dict[str, Any], name: str) -> str:
        """From the product's facts when there are any, else shaped by the field's name."""
        facts, key = self.facts, name.lower()
        if facts is None or schema.get("format"):
            return string_for(schema, name, self.words, self.rng)
        if any(hint in key for hint in ("title", "headline")) or key == "name":
            return title(facts, schema.get("maxLength"))
        if any(hint in key for hint in TERM_HINTS):  # in turn, so a list's terms differ
            terms = search_terms(facts, long="long" in key)
            self._points[key] = self._points.get(key, -1) + 1
            return terms[self._points[key] % len(terms)]
        found = short(facts, name, self.rng)
        if found is not None:
            return found
        if key in _POINTS:
            self._points[key] = self._points.get(key, -1) + 1
            return clause(facts, self._points[key])
        if any(
            hint in key
            for hint in (
                *PROSE_HINTS,
                "rationale",
                "note",
                "message",
                "question",
                "positive",
                "neutral",
                "negative",
            )
        ):
            return prose(facts, name, self.rng)
        return string_for(schema, name, self.words, self.rng)

    def resolve(self, schema: Any) -> Any:
        """The schema with local $refs followed and allOf merged into one schema."""
        for _ in range(MAX_DEPTH):
            if not isinstance(schema, dict) or "$ref" not in schema:
                break
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self._pointer(schema["$ref"]), **rest}
        if isinstance(schema, dict) and "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                if isinstance(part, dict):
                    props = {**merged.get("properties", {}), **part.get("properties", {})}
                    required = [*merged.get("required", []), *part.get("required", [])]
                    merged = {**merged, **part, "properties": props, "required": required}
            schema = merged
        return schema

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}  # remote refs are not fetched: anything goes
        node: Any = self.root
        for token in ref[1:].lstrip("/").split("/"):
            if token == "":
                continue
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token, {}) if isinstance(node, dict) else {}
        return node

    def _branch(self, branches: list[Any], depth: int) -> Any:
        if depth >= DEEP:
            # Prefer a branch that ends the recursion: no $ref, no nesting.
            flat = [b for b in branches if isinstance(b, dict) and not _nests(b)]
            if flat:
                return flat[0]
        return self.rng.choice(branches)

    def _type(self, schema: dict[str, Any], depth: int) -> str:
        kind = schema.get("type")
        if isinstance(kind, list) and kind:
            real = [k for k in kind if k != "null"]
            if "null" in kind and (not real or depth >= DEEP or self.rng.random() < 0.15):
                return "null"
            return str(self.rng.choice(real))
        if isinstance(kind, str):
            return kind
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if "minimum" in schema or "maximum" in schema:
            return "number"
        return "string"

    def _price_for(self, key: str) -> float:
        """A price this product could sell at: the suggested one when the inputs have it,
        else a markup on the seller's cost, else a plausible figure; quick sale lower."""
        assert self.facts is not None
        base = self.facts.price
        if base is None and self.facts.cost:
            base = self.facts.cost * self.rng.uniform(2.2, 3.2)
        if base is None:
            base = typical_usd(self.facts) * self.rng.uniform(0.8, 1.25)
        if "quick" in key:
            return base * self.rng.uniform(0.78, 0.9)
        if "bundle" in key:
            return base * self.rng.uniform(1.4, 1.7)
        if self.facts.price is not None:  # a comparable: near the suggested price
            return base * self.rng.uniform(0.85, 1.15)
        return base

    def _money(self, target: float, low: float, high: float | None) -> float:
        """target as whole cents, ending in .99 (or the nearest cents) above $10, that JSON
        Schema validators accept as a multiple of 0.01 (value / 0.01 an integer in floats)."""
        cents = max(round(target * 100), math.ceil(low * 100))
        if high is not None:
            cents = min(cents, math.floor(high * 100))
        if cents > 1000:
            cents = cents - cents % 100 - 1  # $42.99, not $43.17
        for offset in (0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5):
            value = round((cents + offset) * 0.01, 2)
            inside = value >= low and (high is None or value <= high)
            if inside and (value / 0.01).is_integer():
                return value
        return round(cents * 0.01, 2)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        listed = schema.get("required")
        required = set(listed) if isinstance(listed, list) else set()
        max_props = schema.get("maxProperties", len(props) + len(required))
        out: dict[str, Any] = {}
        for key, sub in props.items():
            optional_ok = depth < DEEP and len(out) < max_props and self.rng.random() < 0.75
            if key in required or optional_ok:
                out[key] = self.value(sub, key, depth + 1)
        extra = schema.get("additionalProperties", True)
        extra_schema = extra if isinstance(extra, dict) else {}
        for key in sorted(required - out.keys()):
            out[key] = self.value(extra_schema, key, depth + 1)
        while extra is not False and len(out) < schema.get("minProperties", 0):
            out[f"{self.words.word(self.rng).lower()}_{len(out)}"] = self.value(
                extra_schema, "", depth + 1
            )
        price, quick = out.get("price_usd"), out.get("quick_sale_usd")
        if _is_number(price) and _is_number(quick) and quick >= price:  # a quick sale is cheaper
            out["quick_sale_usd"] = self._money(price * 0.85, 0.01, price)
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix: list[Any] = schema.get("prefixItems", [])
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        wanted = low if depth >= DEEP else self.rng.randint(max(low, 1), max(low, 3))
        if items is False:
            high = min(high, len(prefix)) if high is not None else len(prefix)
        count = min(wanted, high) if high is not None else wanted
        unique = bool(schema.get("uniqueItems"))
        out: list[Any] = []
        seen: set[str] = set()
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            item = self.value(sub, name, depth + 1)
            for _retry in range(10):
                if not unique or repr(item) not in seen:
                    break
                item = self.value(sub, name, depth + 1)
            if unique and repr(item) in seen and len(out) >= low:
                break
            seen.add(repr(item))
            out.append(item)
        return out

    def _number(self, schema: dict[str, Any], name: str, integer: bool) -> int | float:
        key = name.lower()
        if self.facts is not None and "dimensions_cm" in key:
            side = round(typical_side_cm(self.facts) * self.rng.uniform(0.6, 1.2), 1)
            low, high = _bounds(schema)
            return min(max(side, low[0] if low else 1), high[0] if high else side)
        if self.facts is not None and integer and "weight_g" in key:
            grams = typical_grams(self.facts) * self.rng.uniform(0.9, 1.2)
            low, high = _bounds(schema)
            return int(min(max(grams, low[0] if low else 1), high[0] if high else grams))
        if self.facts is not None and not integer and any(k in key for k in ("price", "usd")):
            low, high = _bounds(schema)
            return self._money(self._price_for(key), low[0] if low else 0.01,
                               high[0] if high else None)  # fmt: skip
        default = next((r for k, r in _NUMBER_RANGES.items() if k in name.lower()), (1.0, 100.0))
        low, high = _bounds(schema)
        span = default[1] - default[0]
        lo = low[0] if low else default[0]
        hi = high[0] if high else default[1]
        if self.facts is not None and lo <= default[0] < default[1] <= hi:
            lo, hi = default  # a product's figure (a parcel's weight), not just any allowed one
        if lo > hi:
            lo, hi = (lo, lo + span) if low else (hi - span, hi)
        lo_open, hi_open = bool(low and low[1]), bool(high and high[1])
        step = schema.get("multipleOf")
        if integer or (isinstance(step, int) and not isinstance(step, bool)):
            unit = step if isinstance(step, int) and step > 0 else 1
            first = math.ceil(lo / unit) * unit
            first += unit if lo_open and first == lo else 0
            last = math.floor(hi / unit) * unit
            last -= unit if hi_open and last == hi else 0
            if last < first:
                return first
            return first + unit * self.rng.randint(0, (last - first) // unit)
        if isinstance(step, float) and step > 0:
            return _float_multiple(lo, hi, step, self.rng)
        value = round(self.rng.uniform(lo, hi), 2)
        inside = (lo < value if lo_open else lo <= value) and (
            value < hi if hi_open else value <= hi
        )
        return value if inside else (lo + hi) / 2


def _bounds(schema: dict[str, Any]) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """((low, exclusive) or None, (high, exclusive) or None), draft 4 and 2020-12 spellings."""
    return (
        _bound(schema, "minimum", "exclusiveMinimum", max),
        _bound(schema, "maximum", "exclusiveMaximum", min),
    )


def _bound(
    schema: dict[str, Any], inclusive_key: str, exclusive_key: str, tighter: Any
) -> tuple[float, bool] | None:
    inclusive, exclusive = schema.get(inclusive_key), schema.get(exclusive_key)
    bound = None
    if _is_number(inclusive):
        bound = (float(inclusive), exclusive is True)  # draft 4: exclusive* is a flag
    if _is_number(exclusive) and (bound is None or tighter(exclusive, bound[0]) == exclusive):
        bound = (float(exclusive), True)
    return bound


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float_multiple(lo: float, hi: float, step: float, rng: random.Random) -> float:
    first, last = int(-(-lo // step)), int(hi // step)
    for _ in range(50):
        value = round(rng.randint(first, max(first, last)) * step, 12)
        if (value / step).is_integer():
            return value
    return 0.0 if lo <= 0 <= hi else first * step


def _nests(schema: dict[str, Any]) -> bool:
    nested = ("$ref", "properties", "items", "anyOf", "oneOf", "allOf")
    return any(key in schema for key in nested) or schema.get("type") in ("object", "array")
