"""The prompt's own words, from which the simulator builds plausible answers."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
_STOPWORD_TEXT = """
the and for with that this from your you are was were has have had not but all any can its
it's into out our their them they then than there these those what which who whom why how
when where will would should could must may might shall about above after again also been
being both each few more most other some such only own same very just over under please
write give return make json answer using use based following below
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_FALLBACK_TEXT = """
quality classic durable everyday premium design comfort style value practical modern
lightweight reliable versatile compact elegant sturdy simple natural original
"""
FALLBACK_WORDS = tuple(_FALLBACK_TEXT.split())
"""Filler when the prompt has too few words of its own."""
_SENTENCES = (
    "The {a} {b} brings {c} {d} to everyday use.",
    "This {a} {b} combines {c} with {d} {e}.",
    "Expect {a} {b}, {c} and {d}.",
    "The {a} {b} is a good fit for {c} {d}.",
    "It features {a} {b} and a {c} {d}.",
    "Buyers value the {a} {b} for its {c} {d}.",
)


@dataclass(frozen=True)
class Vocabulary:
    """Content words of a prompt in order of appearance, without stopwords or repeats."""

    words: tuple[str, ...]
    own: int
    """How many of the words (the first ones) come from the prompt; the rest is filler."""

    @classmethod
    def from_messages(cls, messages: Iterable[Mapping[str, Any]]) -> Vocabulary:
        """The user messages' words (all messages' when users say nothing), plus filler."""
        messages = list(messages)
        user = [m for m in messages if m.get("role") == "user"]
        found = _words(_texts(user)) or _words(_texts(messages))
        own = len(found)
        if own < 8:
            found += [w for w in FALLBACK_WORDS if w.lower() not in {f.lower() for f in found}]
        return cls(tuple(found), own)

    def word(self, rng: random.Random) -> str:
        """One word, from the prompt's own when it has any."""
        return rng.choice(self.words[: self.own] or self.words)

    def phrase(self, rng: random.Random, count: int) -> str:
        """Up to count consecutive prompt words, as they stand (for titles and names)."""
        pool = self.words[: self.own] or self.words
        count = max(1, min(count, len(pool)))
        start = rng.randrange(len(pool) - count + 1)
        return " ".join(pool[start : start + count])

    def sentence(self, rng: random.Random) -> str:
        """One plausible sentence made of prompt words."""
        template = rng.choice(_SENTENCES)
        # The prompt's own words first; filler only for the slots they cannot fill.
        picked = rng.sample(self.words[: self.own], min(5, self.own))
        picked += rng.sample(self.words[self.own :], 5 - len(picked))
        rng.shuffle(picked)
        slots = dict(zip("abcde", (word.lower() for word in picked), strict=True))
        filled = template.format(**slots)
        return filled[0].upper() + filled[1:]

    def text(self, rng: random.Random, sentences: int) -> str:
        """A paragraph of the given number of sentences."""
        return " ".join(self.sentence(rng) for _ in range(max(1, sentences)))


def _texts(messages: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "text":
                    yield str(part.get("text", ""))


def _words(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        for word in _WORD.findall(text):
            key = word.lower()
            if len(word) >= 3 and key not in _STOPWORDS and key not in seen:
                seen.add(key)
                out.append(word)
    return out


def user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """The text of the last user message that gives inputs (a retry's "your last answer was
    invalid" comes after the one holding the product), else of the last user message."""
    texts = ["\n".join(_texts([m])) for m in messages if m.get("role") == "user"]
    with_inputs = [text for text in texts if "Inputs:\n" in text]
    return (with_inputs or texts or [""])[-1]
