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
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from router.semantic import dates
from router.semantic.lexicon import Lexicon, axis_of, fold, known, lexicon, places


class Kind(enum.StrEnum):
    """What an entity is; part of its identity, so "5 kg" never equals "5"."""

    EMAIL = "email"
    URL = "url"
    DATE = "date"
    TIME = "time"
    """A clock time ("17:30") or a part of the day ("morning")."""
    MONEY = "money"
    NUMBER = "number"
    CODE = "code"
    """Letters and digits together: SKUs, model numbers, "256GB", "A1234"."""
    ATTRIBUTE = "attribute"
    """A closed-class word that changes the answer: a size, colour, plan, condition, speed."""
    NAME = "name"
    """A capitalised word inside a sentence: a person, place, brand or product name."""
    PLACE = "place"
    """A country, region or city of the gazetteer (assets/places.txt), in any case."""
    PRODUCT = "product"
    """A brand or product named in the lexicon, in any case ("ipad", "Samsung")."""
    QUANTITY = "quantity"
    """How many or how much in words: "double", "single", "all", "a pair"."""
    NEGATION = "negation"
    """The question is negated ("don't", "not", "never")."""


Entity = tuple[Kind, str]


@dataclass(frozen=True, kw_only=True)
class Entities:
    """What extract() found in one text."""

    items: tuple[Entity, ...] = ()
    """Hard entities in text order, each once; equal partitions need equal items."""
    ordered: bool = False
    """Whether the order of items is part of the meaning ("from X to Y")."""
    actions: frozenset[str] = field(default_factory=frozenset)
    """Opposite-intent axes as "axis:side" ("money:up" for a refund); compared pairwise."""
    unknown: frozenset[str] = field(default_factory=frozenset)
    """Lower-case words the embedder's vocabulary lacks; compared pairwise."""

    def __contains__(self, entity: object) -> bool:
        """Whether a hard entity is among items."""
        return entity in self.items

    def kinds(self) -> frozenset[Entity]:
        """The hard entities as a set."""
        return frozenset(self.items)


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})\b")
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
_TOKEN = re.compile(r"-?\d+(?:[.,]\d+)+[^\W\d_]*|[#]?[\w'’-]+|[.!?;:%]")
"""Words; a number keeps a minus that stands before it alone ("-20", "-1.5")."""
_UNITS = {
    "kg": "kg", "kgs": "kg", "g": "g", "gram": "g", "grams": "g", "lb": "lb", "lbs": "lb",
    "pound": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz", "cm": "cm", "mm": "mm",
    "m": "m", "meter": "m", "meters": "m", "in": "in", "inch": "in", "inches": "in",
    "ft": "ft", "feet": "ft", "foot": "ft", "ml": "ml", "l": "l", "liter": "l",
    "liters": "l", "gb": "gb", "tb": "tb", "mb": "mb", "%": "%", "percent": "%",
    "pack": "pack", "pcs": "pcs", "pieces": "pcs", "x": "x",
}  # fmt: skip
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "hundred": "100", "thousand": "1000", "dozen": "12",
    "first": "1st", "second": "2nd", "third": "3rd", "half": "0.5", "twice": "2",
}  # fmt: skip
# "one" and "a" are left out: "which one", "no one" would make every such question a miss.
_MONTHS = {
    "january": "01", "jan": "01", "february": "02", "feb": "02", "march": "03", "mar": "03",
    "april": "04", "apr": "04", "june": "06", "jun": "06", "july": "07", "jul": "07",
    "august": "08", "aug": "08", "september": "09", "sep": "09", "sept": "09",
    "october": "10", "oct": "10", "november": "11", "nov": "11", "december": "12", "dec": "12",
}  # fmt: skip
# "may" is a month only next to a number ("May 5", "5 may"): otherwise it is the verb.
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_CURRENCY_CODES = {
    "usd", "eur", "gbp", "aud", "cad", "jpy", "chf", "cny", "nzd", "sek", "nok", "dkk",
    "pln", "inr", "mxn", "brl", "hkd", "sgd", "zar", "try", "rub", "krw", "btc", "eth",
}  # fmt: skip
_GENERIC_ACRONYMS = {
    "ATM", "ATMS", "PIN", "PINS", "ID", "IDS", "FAQ", "ETA", "SMS", "PDF", "APP", "API", "OTP",
    "CVV", "CVC", "URL", "FYI", "ASAP", "PLS", "PLZ", "THX", "DM", "PM", "AM",
}  # fmt: skip
"""Acronyms that are common nouns: the embedding already tells "ATM" from "card"."""
_ROUTE = re.compile(
    r"\bfrom\s+(?:my\s+|the\s+|a\s+|an\s+)?([a-z][\w'-]*(?:\s+[a-z][\w'-]*)?)\s+"
    r"(?:to|into)\s+(?:my\s+|the\s+|a\s+|an\s+)?([a-z][\w'-]*)\b",
    re.IGNORECASE,
)
"""A move with two ends: the ends are entities, in their order."""
_GLUED_WORDS = (
    "premium|platinum|standard|freemium|business|enterprise|starter|student|personal|"
    "corporate|express|overnight|economy|international|domestic|wholesale"
)
_GLUED = re.compile(rf"(?<![a-z'’-])(?:({_GLUED_WORDS})[a-z'’-]+|[a-z'’-]+?({_GLUED_WORDS}))")
"""Plan words also found glued to another word ("anotherstandard", "Premiumaccount")."""
_STANDALONE_MODIFIERS = {
    "dark", "light", "pale", "bright", "neon", "pastel", "matte", "glossy", "metallic",
}  # fmt: skip
"""Colour modifiers that name a shade without a colour after them ("the dark one")."""
_NOT_NAMES = {
    "I", "I'm", "I've", "I'd", "I'll", "OK", "Ok", "Hi", "Hello", "Hey", "Thanks", "Thank",
    "Please", "Dear", "Sir", "Madam", "Mr", "Mrs", "Ms", "Dr", "Mr.", "Mrs.", "Ms.", "Dr.",
}  # fmt: skip
_SENTENCE_END = {".", "!", "?", ";", ":"}
_TITLES = {"mr", "mrs", "ms", "dr", "st", "mt", "no"}
"""Abbreviations whose full stop does not end the sentence ("Mr. Jones" is a name)."""


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
    rest = _money(rest, found)
    reader = _Reader(rest, lexicon())
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


def _money(text: str, found: list[tuple[int, Entity]]) -> str:
    for match in _MONEY_SYMBOL.finditer(text):
        sign, symbol, amount, scale = match.group(1, 2, 3, 4)
        if symbol is None:
            amount, scale, symbol = match.group(5, 6, 7)
        value = ("-" if sign else "") + _amount(amount) + (scale or "")
        found.append((match.start(), (Kind.MONEY, f"{_CURRENCY[symbol]}:{value}")))
    return _MONEY_SYMBOL.sub(lambda m: " " * len(m.group(0)), text)


class _Reader:
    """One left-to-right pass over the words of a text (what is left of it after dates,
    e-mails, URLs and amounts were taken out)."""

    def __init__(self, text: str, table: Lexicon) -> None:
        self.table = table
        self.matches = list(_TOKEN.finditer(text))
        self.tokens = [m.group(0) for m in self.matches]
        self.lower = [t.lower() for t in self.tokens]
        self.folded = [_place_word(t) for t in self.tokens]
        self.found: list[tuple[int, Entity]] = []
        self.actions: set[str] = set()
        self.unknown: set[str] = set()
        self.directed = False

    def add(self, i: int, kind: Kind, value: str) -> None:
        self.found.append((self.matches[i].start(), (kind, value)))

    def read(self) -> None:
        sentence_start = True
        i = 0
        while i < len(self.tokens):
            raw = self.tokens[i]
            if raw in _SENTENCE_END:
                before = self.lower[i - 1] if i > 0 else ""
                sentence_start = raw != "." or before not in _TITLES
                i += 1
                continue
            i = self.word(i, sentence_start)
            sentence_start = False

    def word(self, i: int, sentence_start: bool) -> int:
        """Read the word at i (and any words it joins with); the index of the next word."""
        table = self.table
        raw = self.tokens[i]
        word = raw.lstrip("#").strip("'’-")
        lower = word.lower()
        before = self.lower[i - 1] if i > 0 else ""
        after = self.lower[i + 1] if i + 1 < len(self.tokens) else ""
        if lower in table.order_markers:
            self.directed = True
        if lower in table.negators or lower.endswith(("n't", "n’t")) or _negated(lower):
            self.add(i, Kind.NEGATION, "not")
        axis = axis_of(lower, table)
        if axis is not None:
            self.actions.add(f"{axis[0]}:{axis[1]}")
        for size in range(table.longest_phrase, 1, -1):
            phrase = tuple(self.lower[i : i + size])
            if phrase in table.phrases:
                kind, value = table.phrases[phrase]
                self.add(i, Kind(kind), value)
                return i + size
        if lower in table.context_brands and self.before_product(i):
            self.add(i, Kind.PRODUCT, lower)  # "coach bag", not "the bus coach"
            return i + 1
        if (place := self.place(i)) is not None:
            size, value = place
            self.add(i, Kind.PLACE, value)
            return i + size
        if lower in table.colour_modifiers and after in table.colour_words:
            colour = table.words[after][1]
            self.add(i, Kind.ATTRIBUTE, f"{lower} {colour}")
            return i + 2
        if any(ch.isdigit() for ch in word):
            entity, used_next = _numeric(word, after)
            if raw.lstrip("#").startswith("-") and word[:1].isdigit():
                entity = _negative(entity)  # "-20 degrees" is not "20 degrees"
            self.found.append((self.matches[i].start(), entity))
            return i + 2 if used_next else i + 1
        if lower in table.words:
            kind, value = table.words[lower]
            if not (kind == "time" and before == "good"):  # "good morning" is a greeting
                self.add(i, Kind(kind), value)
        elif lower in _NUMBER_WORDS:
            self.add(i, Kind.NUMBER, _NUMBER_WORDS[lower])
        elif lower in _MONTHS:
            self.add(i, Kind.DATE, f"month:{_MONTHS[lower]}")
        elif lower in _WEEKDAYS:
            self.add(i, Kind.DATE, lower)
        elif lower in _STANDALONE_MODIFIERS:
            self.add(i, Kind.ATTRIBUTE, lower)
        elif lower in _CURRENCY_CODES and (word.isupper() or _is_number(after, before)):
            self.add(i, Kind.MONEY, lower)
        elif lower in table.size_letters and (word.isupper() or before == "size"):
            self.add(i, Kind.ATTRIBUTE, lower)
        else:
            if (glued := _glued(lower)) is not None:
                self.add(i, Kind.ATTRIBUTE, glued)
            if _is_name(word, sentence_start):  # "Freeman" is a name, not only "free"
                self.add(i, Kind.NAME, lower)
            elif axis is None and _unknown(lower):
                self.unknown.add(lower)
        return i + 1

    def before_product(self, i: int) -> bool:
        """Whether a product word (or a model number) follows word i, at once or after one
        content word ("coach bag", "brooks trail shoes", "jordan 4")."""
        table = self.table
        after = self.lower[i + 1 : i + 3]
        if not after:
            return False
        if after[0][:1].isdigit() or _product_noun(after[0], table):
            return True
        middle_ok = after[0].isalpha() and after[0] not in table.paraphrase_safe
        return len(after) == 2 and middle_ok and _product_noun(after[1], table)

    def place(self, i: int) -> tuple[int, str] | None:
        """The longest place name starting at word i: (its words, its value), or None."""
        gazetteer = places()
        for size in range(min(gazetteer.longest, len(self.tokens) - i), 0, -1):
            value = gazetteer.exact.get(tuple(self.tokens[i : i + size]))
            if value is None:
                value = gazetteer.any_case.get(tuple(self.folded[i : i + size]))
            if value is not None:
                return size, value
        return None


def _product_noun(word: str, table: Lexicon) -> bool:
    """Whether word is a product family word, or its plural ("bags", "watches")."""
    nouns = table.product_nouns
    return word in nouns or word.removesuffix("s") in nouns or word.removesuffix("es") in nouns


def _place_word(token: str) -> str:
    """A token as the gazetteer compares it: folded, without a possessive ("Germany's")."""
    word = fold(token.strip("'’-")).replace("’", "'")
    return word.removesuffix("'s") if len(word) > 3 else word


def _negated(lower: str) -> bool:
    """A word that is a known word with "un" or "non" before it (unavailable, unpaid)."""
    for prefix in ("un", "non-", "non"):
        rest = lower.removeprefix(prefix)
        if rest != lower and len(rest) >= 4 and rest.isalpha() and known(rest):
            return True
    return False


def _unknown(lower: str) -> bool:
    """A lower-case word of letters the vocabulary lacks: likely a brand or model name."""
    return len(lower) >= 4 and lower.isalpha() and lower.isascii() and not known(lower)


def _numeric(word: str, after: str) -> tuple[Entity, bool]:
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


def _negative(entity: Entity) -> Entity:
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


def _is_number(*words: str) -> bool:
    return any(word[:1].isdigit() or word in _NUMBER_WORDS for word in words)


def _glued(lower: str) -> str | None:
    """An attribute word run together with another word, if lower is one."""
    match = _GLUED.fullmatch(lower)
    return None if match is None else match.group(1) or match.group(2)


def _is_name(word: str, sentence_start: bool) -> bool:
    if not word or not word[0].isupper() or word in _NOT_NAMES:
        return False
    if word.upper() in _GENERIC_ACRONYMS:
        return False
    if word.isupper() and len(word) > 1:
        return True  # an acronym (USA, UPS) names a thing wherever it stands
    return not sentence_start
