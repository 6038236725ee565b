"""Reading a source's files within their size limits: every failure a SourceError naming the
file (and, for JSON, the line and column)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agents.limits import MAX_FILE_BYTES


class SourceError(ValueError):
    """A path that holds no products FlipSync can read, with the reason."""


def check_size(path: Path, limit: int) -> None:
    """SourceError if the file at path is over limit bytes (before it is read)."""
    size = path.stat().st_size
    if size > limit:
        raise SourceError(f"{path}: {size} bytes, over the {limit}-byte limit")


def read_text(path: Path, limit: int) -> str:
    """A text file of at most limit bytes that must be UTF-8 (a byte order mark is dropped);
    SourceError names it."""
    check_size(path, limit)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json(path: Path) -> Any:
    """A JSON file's value; SourceError names the file, and the line and column of an error."""
    text = read_text(path, MAX_FILE_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise SourceError(f"{path}: not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise SourceError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError:  # Python's bound on int digits: its message names neither file nor line
        digits = sys.get_int_max_str_digits()
        raise SourceError(f"{path}: a number of more than {digits:,} digits") from None
