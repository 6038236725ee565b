"""A caller's schema patterns run in linear time: RE2, never Python's backtracking engine.

A ``pattern`` such as ``^(a+)+$`` takes Python's ``re`` exponential time on an answer of a
few dozen characters, and ``re`` holds the GIL while it runs: the worker thread's time limit
fired only after the match ended, and the router's event loop stood still meanwhile (found
by review: a 28-character answer froze the router 4 s, each added character doubles it).
RE2 (google-re2, Google's C++ engine) matches in time linear in the text, whatever the
pattern; the price is that it refuses what needs backtracking (lookaround, backreferences),
and such a pattern is refused with the schema before any call, saying why.

jsonschema matches patterns in three keywords: ``pattern``, ``patternProperties`` and
``additionalProperties`` (the names patternProperties covers); ``linear`` overrides them.
``unevaluatedProperties`` also matches patternProperties' names inside jsonschema, so the
two are refused together.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import re2
from jsonschema import ValidationError
from jsonschema.validators import extend

from router.schema_walk import schema_objects

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is said in the schema's verdict, not on stderr
_OPTIONS.max_mem = 1 << 20  # RE2's memory bound per compiled pattern (its default, 8 MiB, let
# a 21-byte pattern compile for 170 ms holding the GIL, and the cache keep 1,024 of them)
MAX_PROGRAM = 100_000
"""Most RE2 instructions a schema's patterns may compile to together: compiling takes about
0.2 us an instruction, holding the GIL (found by review: 64 KiB of patterns of a few hundred
bytes, 180,000 instructions each, held it 7 s), and searching costs in proportion too."""


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """pattern compiled by RE2 (re2.error when RE2 cannot run it)."""
    return re2.compile(_re2_syntax(pattern), options=_OPTIONS)


def pattern_problem(schema: object) -> str:
    """Why a schema's patterns cannot run in linear time, or ""."""
    named_anywhere = unevaluated_anywhere = False
    program = 0
    for node in schema_objects(schema):
        patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        named = node.get("patternProperties")
        if isinstance(named, dict):
            named_anywhere = True
            patterns += [str(name) for name in named]
        unevaluated_anywhere = unevaluated_anywhere or "unevaluatedProperties" in node
        for pattern in patterns:
            try:
                program += compiled(pattern).programsize
            except re2.error as exc:
                why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
                return (
                    f"the output schema's pattern {pattern[:80]!r} is refused: {str(why)[:80]} "
                    "(patterns run on RE2, in linear time: no lookaround, no backreferences, "
                    "repeats up to 1000)"
                )
            if program > MAX_PROGRAM:
                return (
                    f"the output schema's patterns compile to over {MAX_PROGRAM:,} RE2"
                    f" instructions (at {pattern[:80]!r}): fewer or simpler patterns"
                )
    if named_anywhere and unevaluated_anywhere:
        # jsonschema matches patternProperties' names for unevaluatedProperties with Python's
        # re, through allOf, $ref and the like (found by review): not allowed together
        return "the output schema has both patternProperties and unevaluatedProperties"
    return ""


_ESCAPED_U = re.compile(r"(\\\\)|\\u([0-9a-fA-F]{4})")
"""A JSON-schema (ECMA-262) \\uXXXX escape, or an escaped backslash (left as it is)."""


def _re2_syntax(pattern: str) -> str:
    """pattern with ECMA-262's \\uXXXX escapes as RE2 writes them (\\x{XXXX})."""
    return _ESCAPED_U.sub(lambda m: m.group(1) or "\\x{" + m.group(2) + "}", pattern)


def linear(cls: Any) -> Any:
    """cls (a jsonschema validator class) matching every pattern with RE2."""
    return extend(  # type: ignore[no-untyped-call]
        cls,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, named: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in named.items():
        for key, value in instance.items():
            if compiled(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = sorted(_additional(instance, schema), key=str)
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        listed = ", ".join(repr(extra) for extra in extras)
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    """The instance's properties neither properties nor patternProperties name."""
    properties = schema.get("properties", {})
    patterns = [compiled(p) for p in schema.get("patternProperties", {})]
    for name in instance:
        if name not in properties and not any(p.search(name) for p in patterns):
            yield name
