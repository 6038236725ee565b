"""What a product handed in may be: its id, which names the package folder.

Checked where products are read (agents/sources.py, agents/csv_import.py), before anything
is uploaded, and again where a package is written (agents/output.py). A product id is never
in a NATS subject (tenants are: bus.subjects.valid_token), so it may hold more than a subject
token does (a folder named "Tasse café", a SKU like "A.12"); it is one folder name, not a
path. An id that breaks the rule is refused with the reason, never renamed.
"""

from __future__ import annotations

MAX_PRODUCT_ID_CHARS = 64
"""The longest product id, in characters (a subject token's bound, bus.subjects)."""
MAX_NAME_BYTES = 255
"""A folder name's limit on common file systems, in UTF-8 bytes (64 emoji would not fit)."""


def product_id_problem(value: str) -> str | None:
    """Why value cannot be a product id (it names a folder: one name, not a path), or None.

    A product id is 1 to 64 printable characters, with no / or \\ and no leading "." (so
    never "." or ".."), and no space at either end.
    """
    if not value:
        return "product id is empty"
    if len(value) > MAX_PRODUCT_ID_CHARS:
        return f"product id {value[:20]!r}... is over {MAX_PRODUCT_ID_CHARS} characters"
    if "/" in value or "\\" in value:
        return f"product id {value!r} has / or \\ in it (it names a folder, not a path)"
    if value.startswith("."):
        return f"product id {value!r} starts with '.' (it names a folder: not . or ..)"
    if not value.isprintable():
        return f"product id {value!r} has a control or invisible character"
    if value != value.strip():
        return f"product id {value!r} starts or ends with a space"
    if len(value.encode()) > MAX_NAME_BYTES:
        return f"product id {value!r} is over {MAX_NAME_BYTES} bytes as UTF-8"
    return None
