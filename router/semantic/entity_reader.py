"""The entity extractor's pass over the words of a text: attributes, products, places, names,
numbers with their units, negations, intents and unknown words (router.semantic.entities
takes out e-mails, URLs, dates and amounts first)."""

from __future__ import annotations

import re

from router.semantic.amounts import negative, numeric
from router.semantic.entity_types import Entity, Kind
from router.semantic.lexicon import Lexicon, axis_of, fold, known, places

_TOKEN = re.compile(r"-?\d+(?:[.,]\d+)+[^\W\d_]*|[#]?[\w'’-]+|[.!?;:%]")
"""Words; a number keeps a minus that stands before it alone ("-20", "-1.5")."""
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


class Reader:
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
        """Record an entity found at word i."""
        self.found.append((self.matches[i].start(), (kind, value)))

    def read(self) -> None:
        """Read every word, left to right, into found, actions, unknown and directed."""
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
            entity, used_next = numeric(word, after)
            if raw.lstrip("#").startswith("-") and word[:1].isdigit():
                entity = negative(entity)  # "-20 degrees" is not "20 degrees"
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
