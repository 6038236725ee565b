"""What a product handed in may be: its id, which names the package folder, and its size.

Checked where products are read (agents/product_input.py, agents/source_files.py,
agents/source_photos.py, agents/csv_import.py), before anything is uploaded; ids again where
a package is written (agents/output.py). A product id is never in a NATS subject (tenants
are: bus.subjects.valid_token), so it may hold more than a subject token does (a folder
named "Tasse café", a SKU like "A.12"); it is one folder name, not a path. An id that breaks
the rule is refused with the reason, never renamed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

MAX_PRODUCT_ID_CHARS = 64
"""The longest product id, in characters (a subject token's bound, bus.subjects)."""
MAX_NAME_BYTES = 255
"""A folder name's limit on common file systems, in UTF-8 bytes (64 emoji would not fit)."""
MAX_TEXT_BYTES = 64 * 1024
"""The largest text of one field (notes, a notes.txt, a title, an attribute), in UTF-8 bytes:
about 16,000 tokens, far more than a seller writes and far below a model's context and
Settings.max_request_bytes (4 MiB) even where several prompts quote it. Megabytes of notes
were uploaded and then failed inside the router (its tokenizer refuses a million characters)."""
MAX_PRODUCT_BYTES = 1024 * 1024
"""The largest text of one product together (title, notes, every attribute's name and value),
in UTF-8 bytes. Each field alone may be MAX_TEXT_BYTES, but a product.json or CSV row of a
hundred and fifty 60 KB attributes passed every field's check, and its upload, one NATS
message (8 MiB at most), failed at the publish with MaxPayloadError: `flipsync upload` ended
in a traceback with the other products in flight left running. A product this large could
not be listed anyway: the agents' prompts quote it (past 250,000 tokens)."""
MAX_PHOTO_BYTES = 20 * 1024 * 1024
"""The largest photo file, from the CLI as over HTTP: an upload reads each photo whole."""
MAX_PHOTOS = 24
"""The most photos of one product, from the CLI as over HTTP."""
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest catalog.json, CSV or product.json: each is read whole and checked before
anything is uploaded. Tens of thousands of products with long descriptions fit."""


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


def size_problem(name: str, text: str) -> str | None:
    """Why one field's text is too large to upload (over MAX_TEXT_BYTES), or None."""
    size = len(text.encode(errors="replace"))
    if size > MAX_TEXT_BYTES:
        return f"{name}: {size} bytes, over the {MAX_TEXT_BYTES}-byte limit"
    return None


class _Product(Protocol):
    """The fields of a product handed in that size_problem bounds."""

    @property
    def title_hint(self) -> str: ...
    @property
    def notes(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...


def product_size_problem(product: _Product) -> str | None:
    """Why a product's title, notes or an attribute is too large to upload, or all of them
    together (MAX_PRODUCT_BYTES), or None."""
    for name, text in (("title", product.title_hint), ("notes", product.notes)):
        if problem := size_problem(name, text):
            return problem
    if problem := attributes_size_problem(product.attributes):
        return problem
    texts = [product.title_hint, product.notes, *product.attributes, *product.attributes.values()]
    return total_size_problem("title, notes and attributes", texts)


def total_size_problem(what: str, texts: Iterable[str]) -> str | None:
    """Why texts (one product's) are too large together (over MAX_PRODUCT_BYTES), or None."""
    size = sum(len(text.encode(errors="replace")) for text in texts)
    if size > MAX_PRODUCT_BYTES:
        return f"{what} together: {size} bytes, over the {MAX_PRODUCT_BYTES}-byte limit"
    return None


def attributes_type_problem(attributes: Mapping[str, object]) -> str | None:
    """Why one of a product's attributes is not text or a number, from a file or HTTP, or None."""
    # str() made null the brand "None", an object "{'w': 1}" in Python's quotes.
    for key, value in attributes.items():
        if value is None or isinstance(value, dict | list):
            found = json_type(value)
            return f"attribute {str(key)[:40]!r}: expected text or a number, found {found}"
    return None


def json_type(value: object) -> str:
    """What a JSON value is, in JSON's words."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def attributes_size_problem(attributes: Mapping[str, object]) -> str | None:
    """Why one of a product's attributes (its name and value) is too large, or None."""
    for key, value in attributes.items():
        if problem := size_problem(f"attribute {str(key)[:40]!r}", f"{key}{value}"):
            return problem
    return None
