"""Minimal pairs: two questions alike but for a word or two, where those words are the point.

"Ship to Canada?" and "ship from Canada?", "the 5 km box" and "the 5 miles box", "jeans in
m" and "jeans in l", "iphone 14 pro" and "iphone 14 pro max", "fba or fbm" and "fbm or
fba": the embedding puts each pair at cosine 0.9 or more, because nearly every word is
shared. When two questions share all their words but a few (at most MAX_CHANGED on each
side), differs() refuses the pair if a change names a value a person tells them apart by:

- a value replaced by a value (a digit, a word of the entity and axis lists, or one of
  assets/lexicon.toml [paraphrase] values: units, time spans, roles and directions...);
- a marker added or dropped (a digit, a negation, a variant or scale word, a verb that
  negates what follows, a point of a span: [paraphrase] markers; a relative time such as
  "next" or "last": [paraphrase] relative, unless both questions' dates read the same, as
  "last week" and "a week ago" do), or a word replaced by its negation ("compatible" /
  "incompatible");
- the same content words (a person as one word: "I", "me") in another order, unless one
  block of them moved whole past another ("since I married, I need..." / "I need...
  since I married"): "I owe my sister" / "my sister owes me", "GBP for AUD" / "AUD for
  GBP", "fba or fbm" / "fbm or fba";
- one content word replaced by another that WordNet lists as its antonym or its sister
  term, a kind of the same specific thing ("violin" / "cello", "hot" / "cold":
  router.semantic.wordnet).

A change of function words only ([paraphrase] safe), the same word inflected
(lexicon.stem), a listed synonym, or spans the entity extractor reads as the same values
("17:00" / "5pm") explains itself; any other rewording ("took" / "kept") is left to the
embedding and the error bound. Texts of more than MAX_WORDS words are not compared.

Words are compared after Unicode compatibility folding (full-width "ｘｌ" is "xl"), without
accents ("café" is "cafe"), lower-cased, with typographic apostrophes and the backtick read
as "'".
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from router.semantic.entities import describe, extract
from router.semantic.entity_types import Kind
from router.semantic.lexicon import axis_of, lexicon, stem
from router.semantic.wordnet import contrasting

MAX_CHANGED = 3
"""Most words changed on either side for two questions to count as a minimal pair."""
MAX_WORDS = 128
"""Longer texts keep no words and are not compared (a long document differs in more ways
than a minimal pair describes; the other checks still apply)."""

_SHORTHANDS = {"w/o": "without", "w/": "with "}
_SHORTHAND = re.compile(r"(?<!\w)w/o?(?!\w)")
_NEGATING_PREFIXES = ("non", "un", "in", "im", "ir", "il", "dis")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})
_WORD = re.compile(
    r"(?:(?<![\w.,-])-)?[$€£¥]?\d+(?:[.,:]\d+)*(?:[^\W\d_]+|%)?|[^\W\d_]+(?:'[^\W\d_]+)*|[^\w\s]"
)
"""A number (with its sign where a minus stands before it alone: "-20" is not "20", while
"2024-05" and "AB-12" are not negative), a word, or a sign."""


def words(text: str) -> tuple[str, ...]:
    """text's words as minimal pairs compare them; () when it has more than MAX_WORDS."""
    decomposed = unicodedata.normalize("NFKD", text).lower().translate(_APOSTROPHES)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).replace("−", "-")
    folded = _SHORTHAND.sub(lambda m: _SHORTHANDS[m.group(0)], folded)
    found = _WORD.findall(folded)
    return () if len(found) > MAX_WORDS else tuple(found)


def differs(one: Sequence[str], other: Sequence[str]) -> str | None:
    """Why two questions (their words()) are a minimal pair a person reads as two
    questions, or None when they are not one (or differ only in ways that keep the meaning)."""
    if not one or not other or one == other:
        return None
    left, right = Counter(one), Counter(other)
    if max(sum((left - right).values()), sum((right - left).values())) > MAX_CHANGED:
        return None
    (mine, my_words), (theirs, _) = _roles(one), _roles(other)
    if Counter(mine) == Counter(theirs):  # the same words, maybe in another order
        if mine == theirs or _moved_block(mine, theirs, my_words):
            return None if left == right else _changed(one, other)
        return f"the same words in another order ({' '.join(mine)} / {' '.join(theirs)})"
    return _changed(one, other)


def _changed(one: Sequence[str], other: Sequence[str]) -> str | None:
    """Why two questions whose words differ are two questions (the changes' words), or None."""
    matcher = difflib.SequenceMatcher(a=one, b=other, autojunk=False)
    changes = [(one[a0:a1], other[b0:b1]) for op, a0, a1, b0, b1 in matcher.get_opcodes()
               if op != "equal"]  # fmt: skip
    relative = lexicon().relative_markers
    excused = relative if relative & {*one, *other} and _same_dates(one, other) else frozenset()
    unexplained = [w for a, b in changes for w in _unexplained(a, b, excused)]
    if not unexplained:
        return None
    return f"alike but for {', '.join(dict.fromkeys(unexplained))}"


def _same_dates(one: Sequence[str], other: Sequence[str]) -> bool:
    """Whether the date checks read the same dates and times in both questions (and some)."""
    timed = (Kind.DATE, Kind.TIME)
    mine = [e for e in extract(" ".join(one)).items if e[0] in timed]
    theirs = [e for e in extract(" ".join(other)).items if e[0] in timed]
    return bool(mine) and mine == theirs


def _unexplained(
    left: Sequence[str], right: Sequence[str], excused: frozenset[str] = frozenset()
) -> list[str]:
    """The words of one change (left replaced by right) that change the question: a word
    and its negation (a function word too), else, among the content words with no
    counterpart on the other side (the same word inflected, a listed synonym), the markers
    (but the excused ones), else the values when both sides changed one (see the module
    doc)."""
    table = lexicon()
    content_left = [w for w in left if w not in table.paraphrase_safe]
    content_right = [w for w in right if w not in table.paraphrase_safe]
    # A word and its negated form count even when the word is a function word ("like" /
    # "dislike", "do" / "undo", "well" / "unwell").
    negated = [f"not {a}" for a in left for b in right if _negates(b, a)]
    negated += [f"not {b}" for a in left for b in right if _negates(a, b)]
    if negated:
        return negated
    keys_left = Counter(_key(w) for w in content_left)
    keys_right = Counter(_key(w) for w in content_right)
    alone = (keys_left - keys_right) + (keys_right - keys_left)
    if not alone:
        return []
    if left and right:
        seen_left = describe(extract(" ".join(left)))
        if seen_left != "none" and seen_left == describe(extract(" ".join(right))):
            return []
    only_left = [w for w in content_left if _key(w) in alone]
    only_right = [w for w in content_right if _key(w) in alone]
    markers = [w for w in (*only_left, *only_right) if _marks(w) and w not in excused]
    if markers:
        return markers
    values_left = [w for w in only_left if _names_value(w)]
    values_right = [w for w in only_right if _names_value(w)]
    if values_left and values_right:
        return [*values_left, *values_right]
    if len(only_left) == 1 and len(only_right) == 1 and contrasting(only_left[0], only_right[0]):
        return [*only_left, *only_right]  # "hot" / "cold", "violin" / "cello"
    return []


_PERSONS = {
    **dict.fromkeys(("i", "me", "myself", "i'm", "i've", "i'd", "i'll"), "<i>"),
    **dict.fromkeys(("you", "yourself", "you're", "you've", "you'd", "you'll"), "<you>"),
    **dict.fromkeys(("he", "him", "himself", "he's", "he'd", "he'll"), "<he>"),
    **dict.fromkeys(("she", "her", "herself", "she's", "she'd", "she'll"), "<she>"),
    **dict.fromkeys(("we", "ourselves", "we're", "we've", "we'd", "we'll"), "<we>"),
    **dict.fromkeys(("they", "them", "they're", "they've", "they'd", "they'll"), "<they>"),
}
"""Persons as doers or done-to, each one key ("I" and "me": <i>; "her" too, though it may
be a possessive; "us" is not read, as it may be the country); possessives ("my", "their")
are left out, as the noun they stand before carries them."""
_POSSESSIVES = frozenset(
    ("my", "mine", "your", "yours", "his", "hers", "our", "ours", "their", "theirs")
)


def _roles(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The content words' keys in order, each person as one key ("I", "me": <i>), and the
    words they were read from."""
    safe = lexicon().paraphrase_safe
    kept = [
        w
        for w in words
        if (w in _PERSONS or w not in safe)
        and w not in _POSSESSIVES
        and any(c.isalnum() for c in w)
    ]
    return [_PERSONS.get(w) or _key(w) for w in kept], kept


_CONNECTIVES = frozenset(
    ("if", "unless", "when", "whenever", "while", "because", "although", "though", "but",
     "and", "or", "nor", "than", "then", "once", "whether", "instead", "rather", "as",
     "before", "after", "until", "till", "since")
)  # fmt: skip
"""Words that join two clauses: moved alone, they change which clause depends on which
("after the buyer pays, the seller ships" / "the buyer pays after the seller ships")."""


_PARTICLES = frozenset(("up", "down", "out", "off", "on", "back", "away"))
"""A phrasal verb's particle, which may move past its object alone ("set up the address" /
"set the address up")."""


def _moved_block(one: list[str], other: list[str], words: list[str]) -> bool:
    """Whether other (keys) is one (keys, read from words) with a block moved past another
    ("since I married, I need to change my name" / "I need to change my name since I
    married", "will a transfer take from Europe" / "will a transfer from Europe take"),
    which keeps who does what.
    Words trading places ("I owe my sister" / "my sister owes me", "fba or fbm" / "fbm or
    fba") do not, nor does a block of one word that joins clauses, negates, names a value or
    a person ("after", "if", "not", "dark", "me")."""
    if len(one) < 3 or len(one) != len(other):
        return False
    n = len(one)
    doubled = [*one, *one]
    for cut in range(1, n):
        if doubled[cut : cut + n] == other and _plain_blocks(words, 0, cut, n):
            return True
    start = 0
    while start < n and one[start] == other[start]:
        start += 1
    end = n
    while end > start and one[end - 1] == other[end - 1]:
        end -= 1
    middle, moved = one[start:end], other[start:end]
    return len(middle) > 2 and any(
        middle[cut:] + middle[:cut] == moved and _plain_blocks(words, start, start + cut, end)
        for cut in range(1, len(middle))
    )


def _plain_blocks(words: list[str], start: int, cut: int, end: int) -> bool:
    """Whether the blocks words[start:cut] and words[cut:end] may trade places. A block of
    one word may not when it joins clauses, negates or is a person ("after", "not", "me"),
    nor when it names a value and the other block holds such a word ("the tan boots, not
    the dark tan": "dark" moves past "not"); a value moved within a clause keeps the
    question ("charged twice for the same thing" / "charged for the same thing twice"), and
    so does a particle ("set up the address" / "set the address up")."""
    blocks = (words[start:cut], words[cut:end])
    for alone, other in (blocks, blocks[::-1]):
        if len(alone) != 1 or alone[0] in _PARTICLES:
            continue
        word = alone[0]
        if word in _CONNECTIVES or word in _PERSONS or _marks(word):
            return False
        if _names_value(word) and any(w in _CONNECTIVES or _marks(w) for w in other):
            return False
    return True


def _key(word: str) -> str:
    """What a word is compared by: its synonym group, else its stem (words with digits or
    signs as they are)."""
    group = lexicon().synonyms.get(word)
    if group is not None:
        return f"={group}"
    return stem(word) if word.isalpha() else word


def _names_value(word: str) -> bool:
    """Whether a changed word names a value a person tells questions apart by: a digit, a
    word of the entity and axis lists, or a listed value word (units, time spans, roles and
    directions, comparatives, conditions: assets/lexicon.toml [paraphrase] values), also
    as a possessive ("buyer's")."""
    table = lexicon()
    word = word.removesuffix("'s")
    return (
        any(c.isdigit() for c in word)
        or word in table.value_words
        or word in table.words
        or word in table.colour_modifiers
        or word in table.size_letters
        or axis_of(word, table) is not None
    )


def _marks(word: str) -> bool:
    """Whether adding or dropping word changes a question: a digit, a negation, a variant or
    scale word (assets/lexicon.toml [paraphrase] markers)."""
    table = lexicon()
    return (
        any(c.isdigit() for c in word)
        or word in table.marker_words
        or word in table.relative_markers
        or any(part in table.negators for part in word.split())
        or word.endswith(("n't", "'nt"))
    )


def _negates(word: str, other: str) -> bool:
    """Whether word is other with a negating prefix ("incompatible", "non-refundable")."""
    return any(word == prefix + other for prefix in _NEGATING_PREFIXES)
