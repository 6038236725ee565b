"""Text from anyone (file names, CSV cells, folder names) made safe to print on a terminal."""

from __future__ import annotations

import unicodedata


def terminal_safe(text: str, *, line_breaks: bool = True) -> str:
    """text with every character a terminal would obey or hide escaped as repr writes it."""
    # Escaped: controls (a terminal escape, a bell), format characters (bidi overrides such
    # as U+202E, zero-width ones), surrogates, private use, unassigned code points and the
    # line and paragraph separators, i.e. what str.isprintable refuses, but for spaces
    # (category Zs: NO-BREAK SPACE in a seller's "12 oz" is a space, not "\xa0"). Line
    # breaks are kept unless line_breaks is False (a name that must stay on one line).
    keep = "\n" if line_breaks else ""
    return "".join(
        c if c.isprintable() or c in keep or unicodedata.category(c) == "Zs" else repr(c)[1:-1]
        for c in text
    )
