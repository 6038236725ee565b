"""Keyword work the step budget did not count (router.schema_budget), found by review.

Each was one step or none: a 4 KiB answer took 27 s of CPU on the event loop (``required``
of 6,000 names: an error built for each missing one), 1.9 s (a ``const`` of 9,000 floats
repr'd into each item's message), 1.0 s (a subschema of 6,000 unknown keys walked per item).
Steps are counted, not timed: these tests do not depend on the machine's speed.
"""

from __future__ import annotations

import json

import pytest

from router.batching.split import split_answer
from router.schema_patterns import MAX_PROGRAM
from router.validation import MAX_MESSAGE_CHARS, parse_answer, schema_problem

NAMES = [f"_{i:x}" for i in range(5000)]
FAR_CHARS = "".join(chr(0x10000 + 4097 * i) for i in range(60))
"""Sixty scattered astral characters: a class RE2 compiles to hundreds of instructions."""


def items(schema: dict[str, object]) -> dict[str, object]:
    return {"type": "array", "items": schema}


@pytest.mark.parametrize(
    ("schema", "item"),
    [
        (items({"type": "object", "required": NAMES}), "{}"),
        (items({"dependentRequired": {"a": NAMES}}), '{"a":0}'),
        (items(dict.fromkeys(NAMES, 0)), "0"),
        (items({"const": [0.1] * 9000}), "0"),
        (items({"enum": [[0.1] * 9000]}), "0"),
        (items({"properties": dict.fromkeys(NAMES[:4000], True)}), "{}"),
        (items({"allOf": [{}] * 6000}), "0"),
    ],
    ids=["required", "dependentRequired", "unknown-keys", "const", "enum", "properties", "allOf"],
)
def test_work_a_keyword_does_beside_its_descent_counts(
    schema: dict[str, object], item: str
) -> None:
    assert schema_problem(schema) == ""
    answer = "[" + ",".join([item] * (4000 // (len(item) + 1))) + "]"
    parsed, problem = parse_answer(answer, schema)
    assert parsed is None and "could not be checked against the schema within" in problem
    short = "[" + ",".join([item] * 2) + "]"
    assert "could not be checked" not in parse_answer(short, schema)[1]


def test_a_refusal_quotes_a_short_message_whatever_the_instance() -> None:
    answer = json.dumps(FAR_CHARS * 600, ensure_ascii=False)  # repr'd at ten chars each
    parsed, problem = parse_answer(answer, {"type": "object"})
    assert parsed is None and problem.startswith("answer does not match the schema at (root)")
    assert len(problem) < MAX_MESSAGE_CHARS + 100


def test_patterns_that_compile_to_huge_programs_are_refused_with_the_schema() -> None:
    one = {"type": "string", "pattern": f"[{FAR_CHARS}]{{1000}}"}  # 180,000 instructions
    assert "is refused" in schema_problem(one)
    many = {
        "type": "object",
        "properties": {f"p{i}": {"pattern": f"[{FAR_CHARS}]{{{200 - i}}}"} for i in range(5)},
    }
    assert f"over {MAX_PROGRAM:,} RE2 instructions" in schema_problem(many)


def test_a_long_string_against_a_heavy_pattern_counts_its_search() -> None:
    schema: dict[str, object] = {"type": "string", "pattern": f"[{FAR_CHARS}]{{200}}"}  # 36k
    assert schema_problem(schema) == ""
    text = "".join(FAR_CHARS[i % 60] if i % 200 != 199 else "a" for i in range(40_000))
    parsed, problem = parse_answer(json.dumps(text, ensure_ascii=False), schema)
    assert parsed is None and "could not be checked against the schema within" in problem


def test_a_packed_answer_nested_too_deep_is_missing_items_not_an_exception() -> None:
    answers = split_answer("[" * 100_000 + "]" * 100_000, [{"type": "object"}] * 2)
    assert [a.problem.startswith("the packed answer is not JSON") for a in answers] == [True] * 2
