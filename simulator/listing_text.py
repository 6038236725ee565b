"""Text a listing would carry, written from one product's facts: titles that name the
product, descriptions that repeat what the seller said, tags made of the product's words."""

from __future__ import annotations

import random
import re

from simulator.facts import COLOURS, MATERIALS, PLACEHOLDERS, Facts, named_in

_PROSE = ("description", "summary", "text", "body", "explanation", "content", "details",
          "caption", "review", "positive", "neutral", "negative", "meta")  # fmt: skip
_REASON = ("rationale", "reason", "why")
_GRADE_WORDS = {
    "new": ("new", "unused", "sealed", "unworn", "tags"),
    "like_new": ("like new", "mint", "once"),
    "very_good": ("twice", "barely", "excellent"),
    "good": ("worn", "used", "vintage", "patina", "mark", "scuff", "pre-owned", "rewired"),
    "acceptable": ("stain", "crack", "chip", "heavy wear"),
    "for_parts": ("untested", "for parts", "not working", "broken", "spares"),
}


def words_of(facts: Facts) -> list[str]:
    """The product's own content words, in order, once each."""
    seen: set[str] = set()
    out: list[str] = []
    for word in re.findall(r"[^\W_]+(?:[-'][^\W_]+)*", facts.text):
        key = word.lower()
        if len(word) >= 3 and not key.isdigit() and key not in seen and key not in _STOP:
            seen.add(key)
            out.append(word)
    return out


_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "this",
        "that",
        "very",
        "only",
        "all",
        "are",
        "was",
        "has",
        "have",
        "not",
    ]
)


def title(facts: Facts, high: int | None) -> str:
    """A listing title: brand, the product, then material, colour and size it lacks."""
    base = facts.product
    brand = facts.brand if facts.brand.lower() not in PLACEHOLDERS else ""
    parts = [brand] if brand and brand.lower() not in base.lower() else []
    head = " ".join([*parts, base])
    extras = [e for e in (facts.material, facts.color, facts.size) if e.lower() not in PLACEHOLDERS]
    extras = [e for e in extras if e.lower() not in head.lower()]
    text = ", ".join([head, *extras])
    if facts.grade and facts.grade not in ("new",) and high and len(text) + 20 < high:
        text += f" - {grade_words(facts.grade)}"
    return text[:1].upper() + text[1:]


def grade_words(grade: str) -> str:
    """A grade ("very_good") as a listing says it ("Very good condition")."""
    return grade.replace("_", " ").capitalize() + " condition"


def prose(facts: Facts, name: str, rng: random.Random) -> str:
    """A paragraph for a descriptive field, from the facts and the field's name."""
    key = name.lower()
    product = facts.product
    said = facts.notes.rstrip(".") + "." if facts.notes else ""
    if any(hint in key for hint in _REASON):
        cost = ""
        if facts.price and facts.cost:
            cost = f", about {facts.price / facts.cost:.1f} times its cost"
        return (f"Priced against comparable {product} listings in "
                f"{grade_words(facts.grade or 'good').lower()}{cost}.")  # fmt: skip
    if key in ("note", "condition_note"):
        return f"As described by the seller: {said}" if said else f"{grade_words(facts.grade)}."
    if key == "message":
        return f"{title(facts, 60)}: a limited-time offer."
    if key == "question":
        return rng.choice(_QUESTIONS).format(product=product.lower())
    if key == "answer":
        return f"{said} Ask if you need another photo or a measurement.".strip()
    if key in ("positive", "neutral", "negative"):
        return _REPLIES[key].format(product=product.lower())
    sentences = [f"{title(facts, None)}."]
    if said:
        sentences.append(said)
    if facts.brand:
        sentences.append(f"Brand: {facts.brand}.")
    if facts.material or facts.color:
        bits = ", ".join(b for b in (facts.material, facts.color) if b)
        sentences.append(f"Made of / colour: {bits}.")
    if facts.grade:
        sentences.append(f"{grade_words(facts.grade)}.")
    sentences.append("Carefully packed and shipped within two business days.")
    return " ".join(sentences)


def short(facts: Facts, name: str, rng: random.Random) -> str | None:
    """A one-word or few-word field (brand, colour, a tag), or None if the name is not one."""
    key = name.lower()
    colour = facts.color or named_in(facts.text, COLOURS) or "see photos"
    material = facts.material or named_in(facts.text, MATERIALS) or "see photos"
    direct = {"brand": facts.brand or "Unbranded", "color": colour, "colour": colour,
              "main_color": colour, "material": material, "size": facts.size,
              "product_type": facts.product_type or facts.product,
              "object": facts.product}  # fmt: skip
    for hint, value in direct.items():
        if hint in key and value:
            return value
    if key == "size":  # a size the seller gave ("size M", "EU 42"), else none to state
        found = re.search(r"\b(size \w+|EU \d+|US \d+|\d+ ?(?:ml|l|cm|in))\b", facts.text, re.I)
        return found[0] if found else "n/a"
    if key in ("model", "mpn", "country_of_origin"):
        return "n/a"
    if any(hint in key for hint in TERM_HINTS):
        candidates = search_terms(facts, long="long" in key)
        return candidates[rng.randrange(len(candidates))]
    if "category" in key or key in ("ebay", "amazon", "etsy", "google"):
        return f"Home > {facts.product_type or facts.product}".strip()
    return None


TERM_HINTS = ("tag", "keyword", "primary", "long_tail", "feature")
"""Field names (parts of) whose values are search terms."""


def search_terms(facts: Facts, *, long: bool = False) -> list[str]:
    """Terms a buyer would search for this product: its words, pairs of them, then the
    product with the words buyers add ("teal mug gift"); enough distinct ones for a list."""
    words = [w.lower() for w in words_of(facts)] or ["item"]
    pairs = [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    head = words[-1] if len(words) < 3 else " ".join(words[:2])
    extras = [f"{head} {suffix}" for suffix in ("gift", "for sale", "deal", "style", "idea")]
    terms = [*pairs, *extras] if long else [*words, *pairs, *extras]
    return list(dict.fromkeys(terms))


def grade_choice(options: list[object], facts: Facts) -> object:
    """The enum option the facts point at (a condition grade from the seller's words)."""
    text = facts.text.lower()
    if facts.grade in options:
        return facts.grade
    said = set(re.findall(r"[a-z][a-z-]*", text))
    for grade, hints in _GRADE_WORDS.items():
        if grade in options and any(_says(text, said, hint) for hint in hints):
            return grade
    named = [o for o in options if isinstance(o, str) and _says(text, said, o.lower())]
    if named:
        return named[0]
    if "good" in options and "new" in options:
        return "good"
    # Nothing in the facts points anywhere: the first option, which a schema lists as its
    # usual answer ("ok" before "review" and "blocked"), so a plain mug is not blocked.
    return options[0]


def _says(text: str, words: set[str], hint: str) -> bool:
    """Whether the text says hint: a whole word, or a phrase of several."""
    return hint in text if " " in hint else hint in words


def clause(facts: Facts, index: int) -> str:
    """Selling point number index of a list (bullets, features): the clauses of the seller's
    notes, then the product, its brand and condition, then how it ships."""
    parts = [p.strip() for p in re.split(r"[,.;/]", facts.notes) if len(p.strip()) > 2]
    points = [p[:1].upper() + p[1:] for p in parts]
    points.append(title(facts, None))
    if facts.brand:
        points.append(f"Genuine {facts.brand}")
    if facts.grade:
        points.append(grade_words(facts.grade))
    points.append("Carefully packed, ships within two business days")
    return points[index % len(points)]


_QUESTIONS = (
    "Is the {product} still available?",
    "What condition is the {product} in?",
    "How is the {product} shipped?",
    "Can I return the {product} if it does not suit?",
    "Are there any flaws on the {product}?",
)
_REPLIES = {
    "positive": "Thank you! Glad the {product} arrived safely and that you like it.",
    "neutral": "Thanks for the feedback on the {product}; tell us what would have made it "
    "five stars.",
    "negative": "Sorry the {product} was not what you hoped. Please message us and we will "
    "make it right with a return or a refund.",
}


_TYPICAL = {
    "mug": (400, 18), "cup": (300, 14), "plate": (500, 16), "bowl": (450, 16),
    "shoes": (950, 55), "sneakers": (950, 55), "boots": (1500, 70), "lamp": (1600, 45),
    "jacket": (1200, 65), "coat": (1500, 80), "shirt": (250, 20), "dress": (400, 35),
    "board": (1800, 40), "camera": (750, 85), "lens": (500, 120), "book": (500, 12),
    "watch": (150, 90), "bag": (800, 45), "phone": (250, 150), "headphones": (350, 60),
    "vase": (900, 30), "chair": (6000, 90), "table": (12000, 150),
}  # fmt: skip
"""What a product of a kind typically weighs packed (g) and sells for used (USD)."""


def _typical(facts: Facts) -> tuple[float, float]:
    said = set(re.findall(r"[a-z]+", facts.text.lower()))
    found = [figures for word, figures in _TYPICAL.items() if word in said]
    grams, usd = found[0] if found else (500, 30)
    return float(grams), float(usd)


def typical_grams(facts: Facts) -> float:
    """A parcel weight for what the product is (a mug 400 g, a lamp 1.6 kg), else 500 g."""
    return _typical(facts)[0]


def typical_usd(facts: Facts) -> float:
    """A price for what the product is, when nothing else tells (a mug $18), else $30."""
    return _typical(facts)[1]


def typical_side_cm(facts: Facts) -> float:
    """A parcel side for the product's weight (a 400 g mug about 15 cm)."""
    return 8.0 + float(typical_grams(facts) ** (1 / 3)) * 0.9
