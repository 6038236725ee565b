"""bus.terminal.terminal_safe: what reaches a seller's terminal from anyone's text."""

from __future__ import annotations

import pytest

from bus.terminal import terminal_safe


@pytest.mark.parametrize(
    "space", ["\u00a0", "\u202f", "\u2009", "\u3000", "\u2007", "\u1680"]
)  # fmt: skip
def test_a_space_of_any_kind_is_shown_as_itself(space: str) -> None:
    """A seller's title with a NO-BREAK SPACE ("12\xa0oz") was printed "12\\xa0oz" in the
    upload's lines and the listings (str.isprintable refuses every space but ' ')."""
    title = f"Mug 12{space}oz"
    assert terminal_safe(title) == title
    assert terminal_safe(title, line_breaks=False) == title


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"), ("a\rb", "a\\rb"), ("\t", "\\t"),
     ("\x7f\x9b", "\\x7f\\x9b"), ("\u202eevil", "\\u202eevil"), ("a\u200bb", "a\\u200bb"),
     ("\ufeff", "\\ufeff"), ("\u2028\u2029", "\\u2028\\u2029"), ("\ue000", "\\ue000"),
     ("\udc80", "\\udc80"), ("\U000e0041", "\\U000e0041"), ("\U0010ffff", "\\U0010ffff")],
)  # fmt: skip
def test_what_a_terminal_obeys_or_hides_is_escaped(hostile: str, shown: str) -> None:
    """Controls, format characters (bidi overrides, zero-width), line and paragraph
    separators, private use, surrogates and unassigned code points stay escaped."""
    assert terminal_safe(hostile) == shown


def test_line_breaks_are_kept_unless_the_name_must_stay_on_one_line() -> None:
    """A listing keeps its lines; a file name or key is shown on one."""
    assert terminal_safe("a\nb") == "a\nb"
    assert terminal_safe("a\nb", line_breaks=False) == "a\\nb"
