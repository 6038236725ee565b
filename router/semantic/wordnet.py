"""Sister terms and antonyms from Open English WordNet: "raw" / "cooked", "bee" / "wasp".

Two questions alike but for one word ("how long does cooked chicken keep" / "... raw
chicken ...") are two questions when the words are opposites or two kinds of one thing, and
one question when they are synonyms ("order" / "purchase") or one is a kind of the other
("card" / "debit card"). An embedding cannot tell these apart (it puts "bigger" and
"smaller" at cosine 0.80); WordNet records them. contrasting() reads a table derived once
from Open English WordNet (assets/wordnet_contrast.json.gz, made by bench/derive_wordnet.py):
per word its
senses in WordNet's order, each sense's hypernyms two levels up, adjective satellites'
heads, and antonyms.

Two words contrast when WordNet lists them as antonyms, or when one of the two commonest
senses (per part of speech) of each shares a direct hypernym with one of the other's, unless
any sense of one is a sense of the other (synonyms somewhere) or a hypernym, two levels up,
of the other's (a kind of it), or they are adjectives under one head (near-synonyms).
The few proper names WordNet lists (weekdays, holidays, some countries) are read like other
words; the entity checks (entity_reader.py, and the gazetteer: lexicon.places) read names
first.

Data: Open English WordNet (globalwordnet/english-wordnet), CC-BY-4.0, derived from
Princeton WordNet 3.0 (WordNet License); see router/semantic/assets/README.md.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

ASSET = "wordnet_contrast.json.gz"
"""The derived table's file in router/semantic/assets."""
TOP_SENSES = 2
"""The commonest senses per part of speech that sister terms are read from."""
MIN_PARENT_DEPTH = 6
"""How far below WordNet's roots a shared hypernym must be for sisters to contrast: "bee" /
"wasp" share "hymenopterous insect" (8), "german" / "dutch" "West Germanic" (7); "service"
/ "support" share only "work" (5), "talk" / "chat" "conversation" (5), alike in use."""
SISTER_POS = frozenset(("n", "a", "s"))
"""Parts of speech read for sister terms: nouns and adjectives (WordNet's verb hierarchy is
shallow: "help" and "try" would be sisters)."""
_FORMS = (
    ("ies", "y"), ("ied", "y"), ("ier", "y"), ("iest", "y"), ("es", ""), ("s", ""), ("ed", ""),
    ("ed", "e"), ("ing", ""), ("ing", "e"), ("er", ""), ("est", ""),
)  # fmt: skip


@dataclass(frozen=True)
class Table:
    """The derived table (see the module doc)."""

    senses: dict[str, list[tuple[str, int]]]
    """Each lemma's senses in WordNet's order, as (part of speech, synset number)."""
    hypernyms: dict[int, list[int]]
    """Each synset's direct hypernyms (those of the lemmas' senses, two levels up)."""
    heads: dict[int, list[int]]
    """Each adjective satellite's head adjectives."""
    depths: dict[int, int]
    """Each synset's fewest hypernym steps to a root."""
    antonyms: dict[str, frozenset[str]]
    """Each lemma's antonyms (of any of its senses)."""


@functools.cache
def table() -> Table:
    """The packaged table, read once (0.15 to 0.25 s: the router reads it at start)."""
    raw = resources.files("router.semantic").joinpath("assets", ASSET).read_bytes()
    data: dict[str, Any] = json.loads(gzip.decompress(raw))
    return Table(
        senses={w: [(p, s) for p, s in found] for w, found in data["senses"].items()},
        hypernyms={int(s): h for s, h in data["hyper"].items()},
        heads={int(s): h for s, h in data["similar"].items()},
        depths={int(s): d for s, d in data["depth"].items()},
        antonyms={w: frozenset(a) for w, a in data["antonyms"].items()},
    )


def forms(word: str) -> list[str]:
    """The table's lemma for word: word itself when listed ("corner" is not "corn"), else
    the base forms an English inflection may hide ("cooked": "cook", "bigger": "big")."""
    known = table().senses
    if word in known:
        return [word]
    found: list[str] = []
    for suffix, ending in _FORMS:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            base = word[: -len(suffix)] + ending
            if not ending and len(base) > 2 and base[-1] == base[-2] and base[:-1] in known:
                base = base[:-1]  # bigger -> big, stopped -> stop
            if base in known and base not in found:
                found.append(base)
    return found


def contrasting(one: str, other: str) -> bool:
    """Whether WordNet reads two words as opposites or as two kinds of one thing (see the
    module doc); False for words it does not list."""
    mine, theirs = forms(one), forms(other)
    if not mine or not theirs:
        return False
    t = table()
    if any(b in t.antonyms.get(a, ()) or a in t.antonyms.get(b, ()) for a in mine for b in theirs):
        return True
    every_mine, every_theirs = _senses(mine, None), _senses(theirs, None)
    if every_mine & every_theirs:
        return False  # synonyms in some sense
    top_mine, top_theirs = _senses(mine, TOP_SENSES), _senses(theirs, TOP_SENSES)
    if top_mine & _above(every_theirs) or top_theirs & _above(every_mine):
        return False  # one is a kind of the other
    heads_mine = {h for s in top_mine for h in t.heads.get(s, ())}
    if heads_mine & {h for s in top_theirs for h in t.heads.get(s, ())}:
        return False  # adjectives under one head: near-synonyms
    parents = {h for s in top_mine for h in t.hypernyms.get(s, ())}
    shared = parents & {h for s in top_theirs for h in t.hypernyms.get(s, ())}
    return any(t.depths.get(h, 0) >= MIN_PARENT_DEPTH for h in shared)


def _senses(words: Iterable[str], top: int | None) -> set[int]:
    """The senses of words, the first top per part of speech (None: all)."""
    found: set[int] = set()
    for word in words:
        counts: dict[str, int] = {}
        for pos, sense in table().senses[word]:
            counts[pos] = counts.get(pos, 0) + 1
            if top is None or (counts[pos] <= top and pos in SISTER_POS):
                found.add(sense)
    return found


def _above(senses: set[int], levels: int = 2) -> set[int]:
    """senses and their hypernyms up to levels above."""
    found, frontier = set(senses), set(senses)
    hypernyms = table().hypernyms
    for _ in range(levels):
        frontier = {h for s in frontier for h in hypernyms.get(s, ())}
        found |= frontier
    return found
