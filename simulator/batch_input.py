"""A batch input file read as OpenAI validates it: one POST to the endpoint per line, unique
custom_ids, a body object each."""

from __future__ import annotations

import json
from typing import Any

ENDPOINT = "/v1/chat/completions"
"""The one endpoint the simulator's batches serve."""


def jsonl(lines: list[str]) -> bytes:
    """Lines as a JSONL file."""
    return ("\n".join(lines) + "\n").encode()


def read_lines(data: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input lines, and OpenAI-style validation errors (one per bad line)."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.decode(errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        problem = _line_problem(line, seen)
        if problem:
            errors.append({"code": "invalid_request", "message": problem, "line": number})
            continue
        assert isinstance(line, dict)
        seen.add(line["custom_id"])
        lines.append(line)
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "The input file has no requests."})
    return lines, errors


def _line_problem(line: object, seen: set[str]) -> str:
    if not isinstance(line, dict):
        return "Each line must be a JSON object."
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "Each line needs a custom_id string."
    if custom_id in seen:
        return f"Duplicate custom_id {custom_id!r}."
    if line.get("method") != "POST" or line.get("url") != ENDPOINT:
        return f"Each line must be a POST to {ENDPOINT}."
    if not isinstance(line.get("body"), dict):
        return "Each line needs a body object."
    return ""
