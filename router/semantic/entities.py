"""Entities of a request's text that must match before a cached answer may serve it.

Pure functions (the word lists are read once from assets/lexicon.toml, see lexicon.py). Two
texts that mean the same but name a different order id, amount, SKU, date or relative time,
clock time or part of the day, size ("extra large" is not "large"), colour with its
modifier ("dark green" is not "light green"), plan, brand, product or product line in any
case ("ipad" is not "iphone", "echo dot" is not "echo show"; a brand that is an everyday word
counts only before a product word: "coach bag"), quantity ("double" is not "single"), place
in any case ("sydney" is not "melbourne"; "new york" is one place: assets/places.txt, from
GeoNames), e-mail, URL or proper name get different hard entities: these, in text order
when a word such as "from" or "to" gives them roles, make the request's partition, and the
semantic cache never lets one answer the other. A negation is a hard entity too ("cancel"
is not "don't cancel"), and so is a number's sign ("-20" is not "20").

Two softer checks compare a request with one candidate entry (conflict()): opposite
intents on one axis ("increase" and "decrease", "enable" and "disable", "refund" and
"charge"), and words the embedder's vocabulary does not know (lower-case brand and model
names such as "garmin" or "airpods"), which clash when each side has one the other lacks.
They are pairwise because a paraphrase often uses a synonym the lists do not hold ("money
back" for "refund"): only a clash, not an absence, tells two questions apart.

The extractor is deliberately over-eager: a word it wrongly takes for an entity only costs a
cache miss (a paid call), while an entity it overlooks could serve a wrong answer. Values are
normalised so that spellings of the same thing agree ("$1,200.00" and "1200 dollars",
"Gray" and "grey", "#00108" and "00108"); leading zeros are kept, since ids keep them.

The parts: the types in entity_types.py, amounts and measures in amounts.py, the pass over
the words in entity_reader.py; this module runs them and compares their results.
"""

from __future__ import annotations

import hashlib
import re

from router.semantic import dates
from router.semantic.amounts import take_money
from router.semantic.entity_reader import Reader
from router.semantic.entity_types import Entities, Entity, Kind
from router.semantic.lexicon import lexicon

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_ROUTE = re.compile(
    r"\bfrom\s+(?:my\s+|the\s+|a\s+|an\s+)?([a-z][\w'-]*(?:\s+[a-z][\w'-]*)?)\s+"
    r"(?:to|into)\s+(?:my\s+|the\s+|a\s+|an\s+)?([a-z][\w'-]*)\b",
    re.IGNORECASE,
)
"""A move with two ends: the ends are entities, in their order."""


def extract(text: str) -> Entities:
    """Every entity of text, normalised; empty Entities when it names none."""
    found: list[tuple[int, Entity]] = []
    rest = text.replace("−", "-")  # the minus sign: "−20" is "-20"
    for pattern, kind in ((_EMAIL, Kind.EMAIL), (_URL, Kind.URL)):
        for match in pattern.finditer(rest):
            found.append((match.start(), (kind, match.group(0).rstrip(".,;:!?)").lower())))
        rest = pattern.sub(lambda m: " " * len(m.group(0)), rest)
    for match in _ROUTE.finditer(rest):  # "from new york to boston": the roles, in order
        found.append((match.start(1), (Kind.NAME, f"from:{match.group(1).lower()}")))
        found.append((match.start(2), (Kind.NAME, f"to:{match.group(2).lower()}")))
    spans, rest = dates.find(rest)
    for pos, span_kind, value in spans:
        found.append((pos, (Kind.TIME if span_kind == "time" else Kind.DATE, value)))
    rest = take_money(rest, found)
    reader = Reader(rest, lexicon())
    reader.read()
    found += reader.found
    items: list[Entity] = []
    for _pos, entity in sorted(found, key=lambda f: f[0]):
        if entity not in items:
            items.append(entity)
    roles = sum(1 for kind, _ in items if kind is not Kind.NEGATION)
    return Entities(
        items=tuple(items),
        ordered=reader.directed and roles >= 2,
        actions=frozenset(reader.actions),
        unknown=frozenset(reader.unknown),
    )


def signature(entities: Entities) -> str:
    """A short stable digest of the hard entities: equal ones, and only they, share it."""
    if not entities.items:
        return "none"
    parts = [f"{kind.value}\x1e{value}" for kind, value in entities.items]
    canonical = "\x1f".join(parts if entities.ordered else sorted(parts))
    if entities.ordered:
        canonical = "ordered\x1d" + canonical
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def describe(entities: Entities) -> str:
    """The entities as a short human string, for reasons and logs."""
    hard = [f"{kind.value}={value}" for kind, value in entities.items]
    if not entities.ordered:
        hard.sort()
    soft = sorted(entities.actions) + sorted(f"word={w}" for w in entities.unknown)
    return ", ".join(hard + soft) or "none"


def conflict(one: Entities, other: Entities) -> str | None:
    """Why two texts of one partition still ask different things, or None if they may not.

    Opposite sides of one axis clash ("refund" against "charge"); so do unknown words when
    each text has one the other lacks ("anker" against "belkin")."""
    sides: dict[str, set[str]] = {}
    for action in one.actions:
        axis, _, side = action.partition(":")
        sides.setdefault(axis, set()).add(side)
    for action in other.actions:
        axis, _, side = action.partition(":")
        if axis in sides and side not in sides[axis] and not _shares(axis, one, other):
            return f"opposite intent on {axis}"
    if one.unknown - other.unknown and other.unknown - one.unknown:
        return f"different names ({', '.join(sorted(one.unknown ^ other.unknown))})"
    return None


def _shares(axis: str, one: Entities, other: Entities) -> bool:
    """Whether the two texts have a side of axis in common (both mention both, say)."""
    mine = {a for a in one.actions if a.startswith(axis + ":")}
    theirs = {a for a in other.actions if a.startswith(axis + ":")}
    return bool(mine & theirs)
