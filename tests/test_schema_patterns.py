"""A caller's schema patterns run in linear time (RE2), whatever the pattern and the answer.

Found by review: ``^(a+)+$`` in a request's output schema and an answer of 28 characters froze
the router's event loop for 4 s (Python's re holds the GIL through the match; the worker
thread's time limit fired only after it), each added character doubling it.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.validation import parse_answer, schema_problem

EVIL = "^(a+)+$"


@pytest.mark.timeout(60)  # a hang guard: Python's re would take hours on this answer
def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"title": {"type": "string", "pattern": EVIL}},
    }
    assert schema_problem(schema) == ""
    value, why = parse_answer('{"title": "' + "a" * 5000 + '!"}', schema)
    assert value is None and "does not match" in why
    value, why = parse_answer('{"title": "' + "a" * 5000 + '"}', schema)
    assert why == "" and value == {"title": "a" * 5000}


@pytest.mark.timeout(60)
def test_pattern_properties_and_additional_properties_match_in_linear_time() -> None:
    schema: dict[str, object] = {
        "type": "object",
        "patternProperties": {EVIL: {"type": "integer"}},
        "additionalProperties": False,
    }
    assert schema_problem(schema) == ""
    assert parse_answer('{"' + "a" * 5000 + '": 1}', schema)[1] == ""
    assert parse_answer('{"aaa": "x"}', schema)[0] is None  # a named property's schema holds
    value, why = parse_answer('{"' + "a" * 5000 + '!": 1}', schema)
    assert value is None and "Additional properties are not allowed" in why


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "(?=a)a+"},  # lookahead
        {"type": "string", "pattern": r"(a)\1"},  # backreference
        {"type": "object", "patternProperties": {"(?<!x)y": {}}},  # lookbehind
        {"type": "array", "items": {"type": "string", "pattern": r"(?!b)\w+"}},
    ],
)
def test_a_pattern_that_needs_backtracking_is_refused_with_the_schema(
    schema: dict[str, Any],
) -> None:
    problem = schema_problem(schema)
    assert "is refused" in problem and "patterns run on RE2" in problem


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^a": {}}, "unevaluatedProperties": False},
        # Found by review: jsonschema matches these names with Python's re through allOf
        # and $ref too; ^(a+)+$ froze the router again this way.
        {"type": "object", "allOf": [{"patternProperties": {EVIL: {}}}],
         "unevaluatedProperties": False},
        {"$defs": {"p": {"patternProperties": {EVIL: {}}}}, "$ref": "#/$defs/p",
         "unevaluatedProperties": False},
    ],
)  # fmt: skip
def test_pattern_properties_anywhere_beside_unevaluated_properties_are_refused(
    schema: dict[str, Any],
) -> None:
    assert "unevaluatedProperties" in schema_problem(schema)


def test_ecma_unicode_escapes_run_on_re2() -> None:
    """Found by review: RE2 has no \\uXXXX; such a JSON-schema pattern was refused."""
    schema: dict[str, object] = {"type": "string", "pattern": "^[\\u0041-\\u005A]+$"}
    assert schema_problem(schema) == ""
    assert parse_answer('"ABC"', schema)[1] == ""
    assert "does not match" in parse_answer('"abc"', schema)[1]


def test_a_pattern_inside_data_is_only_data() -> None:
    schema = {"type": "string", "enum": ["x"], "examples": [{"pattern": "(?=a)"}]}
    assert schema_problem(schema) == ""
