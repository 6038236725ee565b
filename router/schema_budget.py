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

from jsonschema.validators import extend

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


Cost = Callable[[Any, Any], int]
"""The steps one evaluation of a keyword counts for, from its value and the instance."""


def _one(value: Any, instance: Any) -> int:
    return 1


def _reference(value: Any, instance: Any) -> int:
    return REFERENCE_STEPS


def _enum(value: Any, instance: Any) -> int:
    """A comparison with each allowed value (an enum of thousands, met by every item): about
    eight to a step (0.3 us each here)."""
    return 1 + len(value) // 8 if isinstance(value, list) else 1


def _unique_items(value: Any, instance: Any) -> int:
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
    "enum": _enum,
    "uniqueItems": _unique_items,
}
"""Keywords whose one evaluation does more than constant work beside its descent."""


def bounded(cls: Any) -> Any:
    """cls (a jsonschema validator class) counting each keyword it evaluates against the
    thread's step_budget (no budget set: no bound)."""
    return extend(  # type: ignore[no-untyped-call]
        cls,
        {name: _counted(check, COSTS.get(name, _one)) for name, check in cls.VALIDATORS.items()},
    )


def _counted(check: Callable[..., Any], cost: Cost) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        steps = getattr(_left, "steps", None)
        if steps is not None:
            spent = cost(value, instance)
            if steps < spent:
                raise CheckTooLongError
            _left.steps = steps - spent
        return check(validator, value, instance, schema)

    return run
