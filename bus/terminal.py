"""Text from anyone (file names, CSV cells, folder names) made safe to print on a terminal."""

from __future__ import annotations


def terminal_safe(text: str, *, line_breaks: bool = True) -> str:
    """text with every control character escaped as repr writes it (a terminal escape, a
    bell), line breaks kept unless line_breaks is False (a name that must stay on one line)."""
    keep = "\n" if line_breaks else ""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
