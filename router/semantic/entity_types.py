"""The types of what the entity extractor finds: an entity's Kind, the Entity pair, and the
Entities of one text (router.semantic.entities extracts them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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
