"""Small builders of the JSON schemas agents answer in (strict: every property required)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def obj(**properties: Schema) -> Schema:
    """An object with exactly these properties, all required (OpenAI strict mode)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def text(high: int, low: int = 1) -> Schema:
    """A string of low to high characters."""
    return {"type": "string", "minLength": low, "maxLength": high}


def choice(*values: str) -> Schema:
    """One of values."""
    return {"type": "string", "enum": list(values)}


def number(low: float, high: float, step: float | None = None) -> Schema:
    """A number in [low, high], a multiple of step if given (0.01 for money)."""
    schema: Schema = {"type": "number", "minimum": low, "maximum": high}
    if step is not None:
        schema["multipleOf"] = step
    return schema


def integer(low: int, high: int) -> Schema:
    """An integer in [low, high]."""
    return {"type": "integer", "minimum": low, "maximum": high}


def array(items: Schema, low: int = 0, high: int | None = None, unique: bool = False) -> Schema:
    """A list of low to high items."""
    schema: Schema = {"type": "array", "items": items, "minItems": low}
    if high is not None:
        schema["maxItems"] = high
    if unique:
        schema["uniqueItems"] = True
    return schema


def boolean() -> Schema:
    """true or false."""
    return {"type": "boolean"}


def money() -> Schema:
    """A USD amount in cents (converted to Decimal from its decimal text on arrival)."""
    return {"type": "number", "minimum": 0.01, "multipleOf": 0.01}
