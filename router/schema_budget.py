"""Checking an answer against a caller's schema does bounded work: a count of steps, not a
clock.

A schema whose branches refer to branches (``anyOf`` of two ``$ref`` to the next level, a
dozen levels deep) makes jsonschema try every path: found by review, a schema that passed
the schema check in 10 ms took 5 s of CPU to check an answer of twenty numbers at depth 12,
33 s at depth 14, and doubles with each level. The worker thread's time limit only stopped
the router waiting; the thread ran on, and a few such requests held every worker thread of
the router (and a share of the GIL) for minutes. Each keyword a validator evaluates is one
step here; a check that runs out of steps stops at once with CheckTooLongError, whatever the
machine's speed, and the answer is refused with that reason.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from jsonschema.exceptions import ValidationError
from jsonschema.validators import create

from router.schema_patterns import compiled

BASE_STEPS = 20_000
"""Steps any answer's check may take (measured here: about 2 us each on plain keywords, up
to about 20 us where references branch); an answer's own length adds STEPS_PER_CHAR each."""
STEPS_PER_CHAR = 4
"""Steps an answer's check may take per character: a 57 KB answer of 300 objects of five
typed fields took 7,505 steps, a 64 KiB list of short strings about two per character."""
REFERENCE_STEPS = 10
"""Steps a reference keyword counts for: resolving one costs about ten plain keywords."""
REFERENCES = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
"""Keywords that resolve a reference, counted REFERENCE_STEPS each."""
WORK_MULTIPLIERS = (
    "its branches, references, uniqueItems over objects or long enums multiply the work"
)
"""What a refusal for running out of steps says of the schema."""
MESSAGE_CHARS_PER_STEP = 64
"""Characters of an error's message one step pays for: jsonschema writes the instance or the
schema's value into it (``{const!r} was expected``), at about 20 ns a character here."""
KEYS_PER_STEP = 16
"""Keys of a subschema one step pays for: each evaluation of a subschema walks all its keys,
known keywords or not."""
PATTERN_INSTRUCTIONS_PER_STEP = 4_096
"""RE2 instructions times characters one step pays for: a search meets new DFA states
throughout a string and builds each from the whole program."""
MAX_PROBE_STEPS = 20_000
"""Most a new schema's check may take on one small probe instance (router.validation)."""

_left = threading.local()


class CheckTooLongError(Exception):
    """A schema check ran out of steps (it would take too long to finish)."""


@contextlib.contextmanager
def step_budget(steps: int) -> Iterator[None]:
    """Let the checks in this block (on this thread) take at most steps keyword evaluations."""
    before = getattr(_left, "steps", None)
    _left.steps = steps
    try:
        yield
    finally:
        _left.steps = before


def steps_left() -> int | None:
    """Steps left in this thread's budget (None: no budget set)."""
    steps = getattr(_left, "steps", None)
    return None if steps is None else int(steps)


def answer_steps(content: str) -> int:
    """The steps an answer's check may take: BASE_STEPS plus STEPS_PER_CHAR per character,
    so its work stays linear in the answer whatever the schema."""
    return BASE_STEPS + STEPS_PER_CHAR * len(content)


Cost = Callable[[Any, Any, Any], int]
"""The steps one evaluation of a keyword counts for, from its value, the instance and the
subschema holding it."""


def _sized(value: Any, instance: Any, schema: Any) -> int:
    """A keyword walks its value each time (``required`` of thousands of names, ``properties``
    of thousands of ``true``, an enum of thousands): about eight entries to a step."""
    return 1 + len(value) // 8 if isinstance(value, (list, dict)) else 1


def _branches(value: Any, instance: Any, schema: Any) -> int:
    """Each branch is a descent, a step even when it holds no keyword (``{}``)."""
    return 1 + len(value) if isinstance(value, list) else 1


def _reference(value: Any, instance: Any, schema: Any) -> int:
    return REFERENCE_STEPS


def _pattern(value: Any, instance: Any, schema: Any) -> int:
    """RE2 runs in time linear in the string, times its program's size."""
    if not isinstance(value, str) or not isinstance(instance, str):
        return 1
    try:
        size = int(compiled(value).programsize)
    except Exception:  # noqa: BLE001 (refused with the schema: the keyword says why)
        return 1
    return 1 + len(instance) * size // PATTERN_INSTRUCTIONS_PER_STEP


def _named(value: Any, instance: Any, schema: Any) -> int:
    """patternProperties matches every pattern with every name of the instance."""
    names = len(instance) if isinstance(instance, dict) else 0
    return 1 + len(value) * (1 + names) // 8 if isinstance(value, dict) else 1


def _additional(value: Any, instance: Any, schema: Any) -> int:
    """additionalProperties matches every name with every pattern of patternProperties."""
    named = schema.get("patternProperties") if isinstance(schema, dict) else None
    patterns = len(named) if isinstance(named, dict) else 0
    names = len(instance) if isinstance(instance, dict) else 0
    return 1 + names * (1 + patterns) // 8


def _unique_items(value: Any, instance: Any, schema: Any) -> int:
    """jsonschema sorts numbers or strings; anything else it compares pair by pair."""
    if not value or not isinstance(instance, list):
        return 1
    n = len(instance)
    sortable = all(isinstance(i, str) for i in instance) or all(
        isinstance(i, (int, float)) and not isinstance(i, bool) for i in instance
    )
    return 1 + n if sortable else 1 + n * (n - 1) // 2


COSTS: dict[str, Cost] = {
    **dict.fromkeys(REFERENCES, _reference),
    **dict.fromkeys(("allOf", "anyOf", "oneOf", "prefixItems"), _branches),
    "pattern": _pattern,
    "patternProperties": _named,
    "additionalProperties": _additional,
    "uniqueItems": _unique_items,
}
"""Keywords whose one evaluation does more than constant work beside its descent."""


def bounded(cls: Any) -> Any:
    """cls (a jsonschema validator class) counting each keyword it evaluates against the
    thread's step_budget (no budget set: no bound): each keyword, each error it makes (by
    its message's length) and each walk of a subschema's keys."""
    return create(
        meta_schema=cls.META_SCHEMA,
        validators={
            name: _counted(check, COSTS.get(name, _sized)) for name, check in cls.VALIDATORS.items()
        },
        type_checker=cls.TYPE_CHECKER,
        format_checker=cls.FORMAT_CHECKER,
        id_of=cls.ID_OF,
        applicable_validators=_walked(cls._APPLICABLE_VALIDATORS),
    )


_UNSET = ValidationError("").validator
"""What an error's validator is until iter_errors names the keyword that made it."""


def _spend(cost: int) -> None:
    steps = getattr(_left, "steps", None)
    if steps is not None:
        if steps < cost:
            raise CheckTooLongError
        _left.steps = steps - cost


def _counted(check: Callable[..., Any], cost: Cost) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        _spend(cost(value, instance, schema))
        for error in check(validator, value, instance, schema) or ():
            if error.validator is _UNSET:  # made here (not passed up): its message was built
                _spend(1 + len(error.message) // MESSAGE_CHARS_PER_STEP)
            yield error

    return run


def _walked(applicable: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """applicable (which lists a subschema's keywords) counting the keys it walks."""

    def keywords(schema: Any) -> Any:
        _spend(len(schema) // KEYS_PER_STEP if isinstance(schema, dict) else 0)
        return applicable(schema)

    return keywords
