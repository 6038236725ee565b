"""Checking an answer against a caller's schema does bounded work (router.schema_budget).

A schema whose branches refer to branches made jsonschema try every path: 33 s of CPU for an
answer of twenty numbers at depth 14, doubling with each level, in a worker thread that ran
on after the router stopped waiting. Steps are counted, not timed, so these tests do not
depend on the machine's speed.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from router.schema_budget import (
    BASE_STEPS,
    CheckTooLongError,
    answer_steps,
    bounded,
    step_budget,
    steps_left,
)
from router.validation import parse_answer, schema_problem


def branching(depth: int, *, top: str = "array") -> dict[str, object]:
    """Each level an anyOf of two references to the next: 2**depth paths to the end."""
    defs: dict[str, object] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(depth)
    }
    defs[f"d{depth}"] = {"type": "string"}
    if top == "ref":
        return {"$ref": "#/$defs/d0", "$defs": defs}
    items = {"type": "array", "items": {"$ref": "#/$defs/d0"}}
    return {"type": "object", "properties": {"v": items}, "$defs": defs}


def steps_taken(schema: dict[str, object], instance: object) -> int:
    """Keyword evaluations a full check of instance takes (weighted as the budget counts)."""
    validator = bounded(jsonschema.Draft202012Validator)(schema)
    budget = 10**9
    with step_budget(budget):
        list(validator.iter_errors(instance))
        left = steps_left()
    assert left is not None
    return budget - left


def test_an_answer_whose_check_branches_without_end_is_refused_with_the_reason() -> None:
    schema = branching(14)
    assert schema_problem(schema) == ""  # the small probes never reach the branches
    answer = json.dumps({"v": [1] * 20})
    parsed, problem = parse_answer(answer, schema)
    assert parsed is None
    assert f"within {answer_steps(answer):,} steps" in problem
    # The budget is what stopped it: depth 10 already takes several times the budget.
    assert steps_taken(branching(10), {"v": [1] * 20}) > 3 * answer_steps(answer)


def test_the_budget_grows_with_the_answer_so_long_plain_answers_pass() -> None:
    item: dict[str, object] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "price", "tags"],
        "properties": {
            "title": {"type": "string", "maxLength": 80},
            "price": {"type": "number", "minimum": 0, "multipleOf": 0.01},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 10},
        },
    }
    schema: dict[str, object] = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": item}},
        "$defs": {"tag": {"type": "string", "maxLength": 20}},
    }
    value = {"items": [{"title": "t" * 60, "price": 12.5, "tags": ["x" * 10] * 5}] * 300}
    answer = json.dumps(value)
    assert steps_taken(schema, value) > BASE_STEPS  # more than the base: the length pays
    assert parse_answer(answer, schema) == (value, "")
    words = json.dumps(["ab"] * 16_000)  # 96 KB of short strings: two steps a value
    strings: dict[str, object] = {"type": "array", "items": {"type": "string"}}
    assert parse_answer(words, strings)[1] == ""


def test_a_new_schema_whose_own_check_branches_without_end_is_refused_before_any_call() -> None:
    problem = schema_problem(branching(14, top="ref"))
    assert "steps to check" in problem and "branches, references" in problem


def test_no_budget_no_bound_and_an_exhausted_budget_stops_at_once() -> None:
    validator = bounded(jsonschema.Draft202012Validator)({"type": "string"})
    assert list(validator.iter_errors("a")) == []  # no budget set: nothing counted
    with step_budget(0), pytest.raises(CheckTooLongError):
        list(validator.iter_errors("a"))


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        # jsonschema compares unsortable items pair by pair: 2,000 objects took 3.2 s
        ({"type": "array", "uniqueItems": True}, [{"a": i} for i in range(6000)]),
        # each item compared with every allowed value: 2,000 of 5,000 took 3.2 s
        ({"type": "array", "items": {"enum": list(range(5000))}}, [4999] * 6000),
    ],
)
def test_keywords_that_do_more_than_constant_work_count_it(
    schema: dict[str, object], value: list[object]
) -> None:
    parsed, problem = parse_answer(json.dumps(value), schema)
    assert parsed is None and "uniqueItems over objects or long enums" in problem
    small = value[:20]
    assert parse_answer(json.dumps(small), schema) == (small, "")


def test_unique_strings_are_sorted_so_they_count_once_each() -> None:
    value = [f"tag{i}" for i in range(6000)]
    schema: dict[str, object] = {"type": "array", "uniqueItems": True}
    assert parse_answer(json.dumps(value), schema) == (value, "")
