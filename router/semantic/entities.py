"""Entities of a request's text that must match exactly before a cached answer may serve it.

Pure functions, no I/O. Two texts that mean the same but name a different order id, amount,
SKU, size, colour, plan, date, e-mail, URL or proper name ("ship to Toronto" and "ship to
Dublin") get different entity sets, and the semantic cache never lets one answer the other.

The extractor is deliberately over-eager: a word it wrongly takes for an entity only costs a
cache miss (a paid call), while an entity it overlooks could serve a wrong answer. Values are
normalised so that spellings of the same thing agree ("$1,200.00" and "1200 dollars",
"Gray" and "grey", "#00108" and "00108"); leading zeros are kept, since ids keep them.
"""

from __future__ import annotations

import enum
import hashlib
import re
from decimal import Decimal, InvalidOperation


class Kind(enum.StrEnum):
    """What an entity is; part of its identity, so "5 kg" never equals "5"."""

    EMAIL = "email"
    URL = "url"
    DATE = "date"
    MONEY = "money"
    NUMBER = "number"
    CODE = "code"
    """Letters and digits together: SKUs, model numbers, "256GB", "A1234"."""
    ATTRIBUTE = "attribute"
    """A closed-class word that changes the answer: a size, colour, plan, condition, speed."""
    NAME = "name"
    """A capitalised word inside a sentence: a person, place, brand or product name."""


Entity = tuple[Kind, str]
Entities = frozenset[Entity]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})\b")
_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy"}
_CURRENCY_WORDS = {
    "usd": "usd", "dollar": "usd", "dollars": "usd", "bucks": "usd", "eur": "eur",
    "euro": "eur", "euros": "eur", "gbp": "gbp", "pound": "gbp", "pounds": "gbp",
    "cad": "cad", "aud": "aud", "jpy": "jpy", "yen": "jpy", "cents": "cents",
}  # fmt: skip
_NUM = r"\d+(?:[.,]\d+)*"
_MEASURE = re.compile(rf"({_NUM})([a-z]+)")
_MONEY_SYMBOL = re.compile(rf"([$€£¥])\s?({_NUM})|({_NUM})\s?([$€£¥])")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+[^\W\d_]*|[#]?[\w'’-]+|[.!?;:%]")
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
_DAYS = {
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today",
    "tonight", "tomorrow", "yesterday", "weekend", "weekday", "yesterday's", "today's",
}  # fmt: skip
_COLOURS = {
    "red", "blue", "green", "black", "white", "grey", "gray", "yellow", "orange", "purple",
    "pink", "brown", "beige", "navy", "teal", "gold", "golden", "silver", "maroon", "ivory",
    "cream", "tan", "khaki", "olive", "turquoise", "burgundy", "charcoal", "cyan", "magenta",
    "lavender", "violet", "coral", "mint", "bronze", "copper", "indigo", "aqua", "crimson",
    "multicolor", "multicolour", "transparent", "clear",
}  # fmt: skip
_SIZES = {
    "xxs", "xs", "xl", "xxl", "xxxl", "2xl", "3xl", "4xl", "small", "medium", "large",
    "petite", "tall", "king", "queen", "twin", "mini", "jumbo", "oversized", "slim", "regular",
}  # fmt: skip
_PLANS = {
    "free", "freemium", "pro", "premium", "platinum", "standard", "basic", "business",
    "enterprise", "plus", "starter", "trial", "vip", "personal", "corporate", "student",
    "express", "overnight", "economy", "expedited", "international", "domestic",
    "used", "refurbished", "pre-owned", "vintage", "damaged", "wholesale", "retail",
    "monthly", "yearly", "annual", "weekly", "daily", "hourly",
}  # fmt: skip
_CURRENCY_CODES = {
    "usd", "eur", "gbp", "aud", "cad", "jpy", "chf", "cny", "nzd", "sek", "nok", "dkk",
    "pln", "inr", "mxn", "brl", "hkd", "sgd", "zar", "try", "rub", "krw", "btc", "eth",
}  # fmt: skip
_GENERIC_ACRONYMS = {
    "ATM", "ATMS", "PIN", "PINS", "ID", "IDS", "FAQ", "ETA", "SMS", "PDF", "APP", "API", "OTP",
    "CVV", "CVC", "URL", "FYI", "ASAP", "PLS", "PLZ", "THX", "DM", "PM", "AM",
}  # fmt: skip
"""Acronyms that are common nouns: the embedding already tells "ATM" from "card"."""
_ALIASES = {"gray": "grey", "golden": "gold", "multicolour": "multicolor", "annual": "yearly"}
_ATTRIBUTES = _COLOURS | _SIZES | _PLANS
_GLUED_WORDS = "|".join(
    sorted((w for w in _COLOURS | _PLANS if len(w) >= 4), key=lambda w: -len(w))
)
_GLUED = re.compile(rf"({_GLUED_WORDS})[a-z'’-]+|[a-z'’-]+?({_GLUED_WORDS})")
"""Attribute words also found glued to another word ("anotherstandard", "Premiumaccount")."""
_UPPER_SIZES = {"S", "M", "L"}
"""Single-letter sizes count only in capitals: "size M", not the "s" of "it's"."""
_NOT_NAMES = {
    "I", "I'm", "I've", "I'd", "I'll", "OK", "Ok", "Hi", "Hello", "Hey", "Thanks", "Thank",
    "Please", "Dear", "Sir", "Madam", "Mr", "Mrs", "Ms", "Dr", "Mr.", "Mrs.", "Ms.", "Dr.",
}  # fmt: skip
_SENTENCE_END = {".", "!", "?", ";", ":"}
_TITLES = {"mr", "mrs", "ms", "dr", "st", "mt", "no"}
"""Abbreviations whose full stop does not end the sentence ("Mr. Jones" is a name)."""


def extract(text: str) -> Entities:
    """Every entity of text, normalised; an empty set when it names none."""
    found: set[Entity] = set()
    rest = text
    for pattern, kind in ((_EMAIL, Kind.EMAIL), (_URL, Kind.URL)):
        for match in pattern.finditer(rest):
            found.add((kind, match.group(0).rstrip(".,;:!?)").lower()))
        rest = pattern.sub(" ", rest)
    rest = _dates(rest, found)
    rest = _money(rest, found)
    _words(rest, found)
    return frozenset(found)


def signature(entities: Entities) -> str:
    """A short stable digest of an entity set: equal sets, and only they, share it."""
    if not entities:
        return "none"
    canonical = "\x1f".join(sorted(f"{kind.value}\x1e{value}" for kind, value in entities))
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def describe(entities: Entities) -> str:
    """The entities as a short human string, for reasons and logs."""
    return ", ".join(sorted(f"{kind.value}={value}" for kind, value in entities)) or "none"


def _dates(text: str, found: set[Entity]) -> str:
    for match in _ISO_DATE.finditer(text):
        year, month, day = match.groups()
        found.add((Kind.DATE, f"{year}-{int(month):02d}-{int(day):02d}"))
    text = _ISO_DATE.sub(" ", text)
    for match in _SLASH_DATE.finditer(text):
        found.add((Kind.DATE, "/".join(str(int(part)) for part in match.groups())))
    return _SLASH_DATE.sub(" ", text)


def _money(text: str, found: set[Entity]) -> str:
    for match in _MONEY_SYMBOL.finditer(text):
        symbol = match.group(1) or match.group(4)
        amount = match.group(2) or match.group(3)
        found.add((Kind.MONEY, f"{_CURRENCY[symbol]}:{_amount(amount)}"))
    return _MONEY_SYMBOL.sub(" ", text)


def _words(text: str, found: set[Entity]) -> None:
    tokens = _TOKEN.findall(text)
    sentence_start = True
    skip = False
    for i, raw in enumerate(tokens):
        before = tokens[i - 1].lower() if i > 0 else ""
        if skip:  # the unit or currency word of the number just read
            skip = False
            continue
        if raw in _SENTENCE_END:
            sentence_start = raw != "." or before not in _TITLES
            continue
        word = raw.lstrip("#").strip("'’-")
        lower = word.lower()
        after = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
        if any(ch.isdigit() for ch in word):
            entity, skip = _numeric(word, after)
            found.add(entity)
        elif lower in _NUMBER_WORDS:
            found.add((Kind.NUMBER, _NUMBER_WORDS[lower]))
        elif lower in _MONTHS or (lower == "may" and _is_number(after, before)):
            found.add((Kind.DATE, f"month:{_MONTHS.get(lower, '05')}"))
        elif lower in _DAYS:
            found.add((Kind.DATE, lower.removesuffix("'s")))
        elif lower in _ATTRIBUTES:
            found.add((Kind.ATTRIBUTE, _ALIASES.get(lower, lower)))
        elif lower in _CURRENCY_CODES and (word.isupper() or _is_number(after, before)):
            found.add((Kind.MONEY, lower))
        elif word in _UPPER_SIZES:
            found.add((Kind.ATTRIBUTE, lower))
        else:
            if (glued := _glued(lower)) is not None:
                found.add((Kind.ATTRIBUTE, _ALIASES.get(glued, glued)))
            if _is_name(word, sentence_start):  # "Freeman" is a name, not only "free"
                found.add((Kind.NAME, lower))
        sentence_start = False


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


def _amount(text: str) -> str:
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
