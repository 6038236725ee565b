"""Plain-text rich consoles for the cost views, as wide as the reader's terminal.

The tables were rendered at a fixed 110-120 columns, so on an 80-column terminal every row
wrapped onto a second line. A width left unset is the terminal's when standard output is a
terminal (``COLUMNS``, else the terminal's own size), and FALLBACK_COLUMNS when it goes to a
file, a pipe, a log or a test's capture (pytest-xdist's workers set COLUMNS=80 for all).
"""

from __future__ import annotations

import io
import shutil
import sys

from rich.console import Console

FALLBACK_COLUMNS = 120
"""Width when the output is not a terminal (a file, a pipe, a log)."""
MIN_COLUMNS = 60
"""Narrowest width a table is drawn at; narrower terminals wrap."""


def columns() -> int:
    """The reader's terminal width (COLUMNS first) when standard output is a terminal,
    else FALLBACK_COLUMNS."""
    if not sys.stdout.isatty():
        return FALLBACK_COLUMNS
    return max(shutil.get_terminal_size((FALLBACK_COLUMNS, 24)).columns, MIN_COLUMNS)


def plain_console(out: io.StringIO, width: int | None = None) -> Console:
    """A console writing plain text to out (no colour, markup or emoji: names come from
    tenants and agents, never read as codes), width columns wide (None: columns())."""
    return Console(
        file=out, width=width or columns(), color_system=None, force_terminal=False,
        markup=False, emoji=False, highlight=False,
    )  # fmt: skip
