"""Bounds on untrusted structure: how deep and how large a decoded document may be.

Walks are iterative, so a hostile document can never raise RecursionError here; deep
nesting is refused before any recursive code (json.dumps, jsonschema) sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

MAX_DEPTH = 64
"""Deepest nesting any wire message or HTTP body may have; real messages stay under 20."""


def nesting_depth(value: object, limit: int) -> int:
    """The nesting depth of value (a scalar is 0), counted up to limit + 1 and no further."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[object]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def count_nodes(value: object, limit: int) -> int:
    """How many values value holds (itself included), counted up to limit + 1 and no further."""
    count = 0
    stack: list[object] = [value]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return count


def bracket_bound(data: bytes) -> int:
    """An upper bound of the nesting depth of a JSON document: its count of opening brackets.

    Cheap (two C scans); when it is under a limit the document is surely shallow enough.
    """
    return data.count(b"[") + data.count(b"{")


def json_body(raw: bytes) -> object:
    """A JSON body, parsed strictly (msgspec refuses lone surrogates) and bounded in depth;
    ValueError with a short reason otherwise."""
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        raise ValueError(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except (msgspec.DecodeError, UnicodeError):
        raise ValueError("the body is not valid JSON (UTF-8, no lone surrogates)") from None
    if nesting_depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
    return value
