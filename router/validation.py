"""Checking a structured answer against the request's JSON schema."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import msgspec


def parse_answer(content: str, schema: dict[str, object]) -> tuple[object | None, str]:
    """(parsed value, "") when content is JSON valid for schema, else (None, the reason)."""
    try:
        value = msgspec.json.decode(content)
    except msgspec.DecodeError as exc:
        return None, f"answer is not JSON: {exc}"
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return None, f"answer does not match the schema at {where}: {error.message}"
    return value, ""


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)
