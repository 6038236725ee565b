"""The simulated provider's structured answers validate against any JSON schema, and its
deliberately broken ones do not (no HTTP: the content generator on its own)."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest

from simulator.content import generate
from simulator.facts import facts_of
from simulator.listing_text import grade_choice
from simulator.request import ChatRequest
from tests.sim_schemas import LISTING_SCHEMA, json_schema_format, schema_errors

MODEL = "gpt-4o-mini"


def test_schema_values_validate_across_many_prompts() -> None:
    validator = jsonschema.Draft202012Validator(LISTING_SCHEMA)
    rng = random.Random(1)
    words = [
        "red",
        "blue",
        "oak",
        "steel",
        "cotton",
        "lamp",
        "chair",
        "desk",
        "mug",
        "boot",
        "scarf",
        "kettle",
        "drill",
    ]
    for _ in range(200):
        prompt = " ".join(rng.sample(words, rng.randint(1, 6)))
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        request = ChatRequest(
            model=MODEL, messages=messages, response_format=json_schema_format(LISTING_SCHEMA)
        )
        value = json.loads(generate(request).content)
        assert schema_errors(value, LISTING_SCHEMA, LISTING_SCHEMA) == []
        assert list(validator.iter_errors(value)) == []


TREE_SCHEMA: dict[str, Any] = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "maxLength": 20},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["label", "children"],
            "additionalProperties": False,
        }
    },
    "$ref": "#/$defs/node",
}
ODD_SCHEMAS: list[dict[str, Any]] = [
    TREE_SCHEMA,
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2},
    {"type": "string", "enum": ["a", "b"]},
    {"type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": False},
    {"anyOf": [{"type": "object"}, {"type": "array"}]},
    {"allOf": [{"properties": {"a": {"type": "string", "format": "date"}}, "required": ["a"]}]},
]


@pytest.mark.parametrize("schema", ODD_SCHEMAS)
def test_generated_values_validate_and_broken_ones_do_not(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for prompt in ("oak desk", "linen shirt with long sleeves", "kettle"):
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        request = ChatRequest(
            model=MODEL, messages=messages, response_format=json_schema_format(schema)
        )
        assert validator.is_valid(json.loads(generate(request).content))
        assert not validator.is_valid(json.loads(generate(request, break_schema=True).content))


def test_an_enum_the_facts_say_nothing_about_takes_its_usual_first_option() -> None:
    # A plain mug is not "blocked" by a coin toss: the compliance status is the schema's
    # first option unless the seller's words name another (a condition grade does).
    mug = facts_of('Inputs:\n{"upload": {"title": "Stoneware mug", "notes": "teal, 350 ml"}}')
    assert grade_choice(["ok", "review", "blocked"], mug) == "ok"
    worn = facts_of('Inputs:\n{"upload": {"title": "Trail shoes", "notes": "worn once"}}')
    assert grade_choice(["new", "like_new", "good", "fair"], worn) == "like_new"
