"""The closed-class words of the entity checks, read once from assets/lexicon.toml.

The words are data, not code (router/semantic/assets/lexicon.toml says what each list is
for); this module turns them into lookup tables. Nothing here does I/O at import: the file
is read on the first call of lexicon() and kept.
"""

from __future__ import annotations

import asyncio
import functools
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources

PhraseTable = dict[tuple[str, ...], tuple[str, str]]
"""Words of a phrase -> (entity kind, canonical value)."""

_SUFFIXES = ("ing", "ed", "es", "s")
_VOWELS = set("aeiou")


def stem(word: str) -> str:
    """A crude English fold of inflections: increased, increasing, increases -> increas."""
    word = word.lower().removesuffix("'s").removesuffix("’s")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]:
                word = word[:-1]  # cancelled -> cancel, stopped -> stop
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


@dataclass(frozen=True, kw_only=True)
class Lexicon:
    """Lookup tables of the entity checks."""

    words: dict[str, tuple[str, str]]
    """Single word -> (kind, canonical value): colours, sizes, plans, quantities, times of
    day, brands and products."""
    phrases: PhraseTable
    """Multi-word phrases, matched before single words (longest first)."""
    longest_phrase: int
    colour_words: frozenset[str]
    colour_modifiers: frozenset[str]
    size_letters: frozenset[str]
    axes: dict[str, tuple[str, str]]
    """Stemmed word -> (axis, side "up" or "down")."""
    negators: frozenset[str]
    order_markers: frozenset[str]
    context_brands: frozenset[str]
    """Brands that are everyday words: a brand only before a product word ("coach bag")."""
    product_nouns: frozenset[str]
    """The product family words ([products] words: "bag", "shoes", "phone")."""
    paraphrase_safe: frozenset[str]
    """Function words a paraphrase may change (router.semantic.minimal_pairs)."""
    synonyms: dict[str, int]
    """Word -> its synonym group (router.semantic.minimal_pairs)."""
    value_words: frozenset[str]
    """Words that name a value when a minimal pair changes them (router.semantic.minimal_pairs)."""
    marker_words: frozenset[str]
    """Words a minimal pair may not add or drop (router.semantic.minimal_pairs)."""
    relative_markers: frozenset[str]
    """Markers of a relative time, excused where both questions' dates read the same."""


def axis_of(word: str, table: Lexicon) -> tuple[str, str] | None:
    """The opposite-intent axis and side of a word, prefixes "un", "dis", "de" flipping it."""
    for suffix in ("", "ment", "ments", "ation", "ations", "al", "als"):
        if suffix and (len(word) - len(suffix) < 3 or not word.endswith(suffix)):
            continue
        base = stem(word[: len(word) - len(suffix)])
        found = table.axes.get(base) or table.axes.get(
            base[:-1] if base[-2:-1] == base[-1:] else ""
        )
        if found is not None:
            return found  # reimbursement -> reimburse, cancellation -> cancel
    for prefix in ("un", "dis", "de-", "de"):
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            flipped = table.axes.get(stem(word[len(prefix) :]))
            if flipped is not None:
                return flipped[0], "down" if flipped[1] == "up" else "up"
    return None


@functools.cache
def lexicon() -> Lexicon:
    """The packaged lexicon (read once)."""
    source = resources.files("router.semantic").joinpath("assets", "lexicon.toml")
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    words: dict[str, tuple[str, str]] = {}
    phrases: PhraseTable = {}

    def add(kind: str, word: str, value: str) -> None:
        parts = tuple(word.split())
        if len(parts) > 1:
            phrases[parts] = (kind, value)
        else:
            words.setdefault(word, (kind, value))

    colours = data["colours"]
    for word in colours["words"]:
        add("attribute", word, colours["aliases"].get(word, word))
    for section in ("sizes", "plans"):
        part = data[section]
        for word in part["words"]:
            add("attribute", word, part.get("aliases", {}).get(word, word))
    for phrase, value in data["sizes"]["phrases"].items():
        add("attribute", phrase, value)
    for word, value in data["quantities"].items():
        add("quantity", word, value)
    for word, value in data["time_of_day"].items():
        add("time", word, value)
    for section in ("brands", "products"):
        for word in data[section]["words"]:
            add("product", word, word.replace("'", ""))
    for phrase, value in data["products"]["phrases"].items():
        add("product", phrase, value)
    axes: dict[str, tuple[str, str]] = {}
    for axis, sides in data["axes"].items():
        for side in ("up", "down"):
            for word in sides[side]:
                axes.setdefault(stem(word), (axis, side))
    return Lexicon(
        words=words,
        phrases=phrases,
        longest_phrase=max(len(p) for p in phrases),
        colour_words=frozenset(colours["words"]),
        colour_modifiers=frozenset(colours["modifiers"]),
        size_letters=frozenset(data["sizes"]["letters"]),
        axes=axes,
        negators=frozenset(data["negation"]["words"]),
        order_markers=frozenset(data["order"]["markers"]),
        context_brands=frozenset(data["brands"]["context"]),
        product_nouns=frozenset(data["products"]["words"]),
        paraphrase_safe=frozenset(data["paraphrase"]["safe"]),
        synonyms={w: i for i, group in enumerate(data["paraphrase"]["synonyms"]) for w in group},
        value_words=frozenset(data["paraphrase"]["values"]),
        marker_words=frozenset(data["paraphrase"]["markers"]),
        relative_markers=frozenset(data["paraphrase"]["relative"]),
    )


@dataclass(frozen=True, kw_only=True)
class Places:
    """The gazetteer (assets/places.txt): place names as words, and the value each names."""

    any_case: dict[tuple[str, ...], str]
    """Folded words of a name (lower case, no accents) -> its value ("usa" -> "united states")."""
    exact: dict[tuple[str, ...], str]
    """Names matched only as written ("US": "us" is the pronoun)."""
    longest: int
    """Most words in one name."""


def fold(word: str) -> str:
    """A word as the gazetteer compares it: lower case, no accents."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@functools.cache
def places() -> Places:
    """The packaged gazetteer (read once; bench/places.py derives it from GeoNames)."""
    source = resources.files("router.semantic").joinpath("assets", "places.txt")
    any_case: dict[tuple[str, ...], str] = {}
    exact: dict[tuple[str, ...], str] = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("\t")
        table = any_case if name == name.lower() else exact
        table[tuple(name.split())] = value or name
    longest = max(len(name) for name in (*any_case, *exact))
    return Places(any_case=any_case, exact=exact, longest=longest)


@functools.cache
def vocabulary() -> frozenset[str]:
    """The whole words of the embedder's WordPiece vocabulary (read once)."""
    source = resources.files("router.semantic").joinpath("assets", "minilm_vocab.txt")
    lines = source.read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in lines if w.isalpha() and not w.startswith("##"))


def known(word: str) -> bool:
    """Whether word, or a plain inflection of it, is a whole word of the vocabulary."""
    words = vocabulary()
    if word in words:
        return True
    for suffix in ("s", "es", "ed", "d", "ing", "ly", "er", "ers"):
        if word.endswith(suffix) and word[: -len(suffix)] in words:
            return True
    return word.endswith("ing") and word[:-3] + "e" in words


async def load_word_tables() -> None:
    """Read the lexicon and the WordNet table now, in a thread, so that no request waits
    for them (the router calls it before it takes requests)."""
    from router.semantic.wordnet import table

    def both() -> None:
        lexicon()
        table()

    await asyncio.to_thread(both)
