"""The objects of a JSON schema that are schemas, not data: what its checks walk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

DATA_KEYWORDS = ("const", "enum", "default", "examples")
"""Keywords whose values are instances, not schemas: a "$ref" or a "pattern" inside them is
only data."""


def schema_objects(schema: object) -> Iterator[dict[str, Any]]:
    """Every object of schema outside data keywords, without recursion (depth is bounded
    before this runs, but a walk on the stack needs no bound)."""
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            yield node
            stack.extend(value for key, value in node.items() if key not in DATA_KEYWORDS)
