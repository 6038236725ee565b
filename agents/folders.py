"""What a product folder may hold, and what FlipSync says of a file in it that it does not read.

A folder is one product, named after the folder: its photos (PHOTO_SUFFIXES), its notes in
NOTES_FILE and its other fields in FIELDS_FILE. Anything else in it used to be skipped
without a word (a newcomer's description.txt was never read); now each such file gets one
warning naming it and what it would have to be called, and so does each key of FIELDS_FILE
(or of a catalog.json, or of one of its products) that is not read, with the known keys
close to it (unknown_keys). Light imports: `--help` shows FOLDER_HELP.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path, PurePath

from bus.terminal import terminal_safe

NOTES_FILE = "notes.txt"
"""A product's notes, plain UTF-8 text."""
FIELDS_FILE = "product.json"
"""A product's other fields, a JSON object of FIELDS_KEYS."""
FIELDS_KEYS = ("product_id", "title_hint", "notes", "cost_price", "attributes")
"""The keys FIELDS_FILE is read for (``title`` is taken for ``title_hint``)."""
FIELDS_READ = (*FIELDS_KEYS, "title")
"""Every key of FIELDS_FILE that is read; any other is named in a warning (unknown_keys)."""
CATALOG_READ = (*FIELDS_READ, "photos")
"""Every key of a catalog.json product that is read (its photos: [{"file": NAME}, ...])."""
CATALOG_FILE_KEYS = ("products", "about")
"""The keys of a catalog.json itself: its products (CATALOG_READ each), and about, a text
describing it (the shipped sample's; not read)."""
KEYS_NAMED = 20
"""How many unknown keys of one FIELDS_FILE get a warning each; the rest are counted."""
KEY_SHOWN = 60
"""How many characters of an unknown key its warning repeats."""
CLOSE_KEYS = 3
"""How many known keys an unknown key's warning offers at most."""
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""The photo files a folder's product is uploaded with (every one of them)."""
_TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".rtf", ".doc", ".docx", ".odt", ""})
_PHOTO_LIKE = frozenset({".heic", ".heif", ".avif", ".svg", ".raw", ".cr2", ".nef", ".dng"})

_PHOTOS_NAMED = " ".join(f"*{suffix}" for suffix in PHOTO_SUFFIXES)

FOLDER_HELP = "\n".join(
    [
        "a product folder (one product, named after the folder) may hold:",
        f"  {_PHOTOS_NAMED}",
        "                its photos, every one uploaded",
        f"  {NOTES_FILE:13} what you know about it, plain UTF-8 text (description, flaws,",
        "                what is included); a cost price in it is not read: use product.json",
        f"  {FIELDS_FILE:13} the other fields, all optional: "
        '{"title_hint": "Teal mug", "cost_price":',
        '                "4.20", "attributes": {"brand": "Acme"}, "notes": "...", "product_id":',
        '                "..."} (notes here replace notes.txt; product_id replaces the name);',
        "                any other key is not read: it is named in a warning, with the key",
        "                it is close to (pirce: did you mean cost_price?)",
        "  any other file is not read: it is named in a warning and the upload goes on.",
        "a folder of product folders: one product each; a folder holding catalog.json or",
        "CSV files: the products they list.",
    ]
)
"""The folder format, for `flipsync upload --help`."""


def ignored_reason(name: str) -> str | None:
    """Why a file named name in a product folder is not read, and what it would have to be
    called to be; None for a file that is read (a photo, the notes, the fields)."""
    suffix = PurePath(name).suffix.lower()  # as the folder is read: .PNG is a photo
    if suffix in PHOTO_SUFFIXES or name in (NOTES_FILE, FIELDS_FILE):  # Notes.txt is not read
        return None
    if suffix == ".json":
        return f"fields (title_hint, cost_price, attributes...) are read from {FIELDS_FILE}"
    if suffix in _PHOTO_LIKE:
        return f"photos are read from {', '.join(PHOTO_SUFFIXES)} files"
    if suffix in _TEXT_SUFFIXES:
        return f"notes are read from {NOTES_FILE}"
    return (
        f"a product folder is read for photos ({', '.join(PHOTO_SUFFIXES)}), {NOTES_FILE} "
        f"and {FIELDS_FILE}"
    )


def ignored_files(folder: Path, source: Path | None = None) -> list[str]:
    """One warning per file of a product folder that is not read, named from the source
    folder (escaped: a name is anyone's to choose), with what it would have to be called."""
    warnings = []
    for file in visible_files(folder):
        if (why := ignored_reason(file.name)) is not None:
            name = terminal_safe(str(file.relative_to(source or folder)), line_breaks=False)
            warnings.append(f"ignored {name}: {why}")
    return warnings


def unknown_keys(
    fields: Mapping[str, object], name: str, read: tuple[str, ...] = FIELDS_READ
) -> list[str]:
    """One warning per key of a FIELDS_FILE or catalog product (named name) not in read, with
    the known keys it is close to: a seller's "pirce" was dropped without a word."""
    unknown = [key for key in fields if key not in read]
    shown_name = terminal_safe(name, line_breaks=False)
    warnings = [
        f"ignored key {_shown_key(key)} in {shown_name}: {_unknown_key_hint(key, read)}"
        for key in unknown[:KEYS_NAMED]
    ]
    if len(unknown) > KEYS_NAMED:
        warnings.append(f"ignored {len(unknown) - KEYS_NAMED} more unknown keys in {shown_name}")
    return warnings


def close_keys(key: str, read: tuple[str, ...] = FIELDS_READ) -> list[str]:
    """The known keys (read) close to key, closest first: to the whole key ("costprice") or
    to one of its words ("pirce" is close to cost_price's "price"); a key close to "title"
    is offered title_hint, the field's own name."""
    candidates: dict[str, str] = {}
    for known in read:
        for word in (known, *known.split("_")):
            candidates.setdefault(word, known)
    matches = difflib.get_close_matches(key.lower(), list(candidates), n=len(candidates))
    return list(dict.fromkeys(candidates[match] for match in matches))[:CLOSE_KEYS]


def _unknown_key_hint(key: str, read: tuple[str, ...]) -> str:
    catalog_file = read == CATALOG_FILE_KEYS
    if catalog_file and key in CATALOG_READ:  # meant for every product, perhaps: not so read
        return "a product's key, read only inside each entry of products"
    if close := close_keys(key, read):
        return f"did you mean {' or '.join(close)}?"
    if catalog_file:
        return (
            "a catalog.json is read for products (and about, its description); "
            "a product's facts go in its entry"
        )
    if "photos" in read:
        return (
            "a catalog.json product is read for product_id, title_hint (or title), notes, "
            "cost_price, attributes and photos; other facts go in attributes"
        )
    if key.lower() == "photos":
        return "a folder's photos are its image files"
    return (
        f"{FIELDS_FILE} is read for product_id, title_hint (or title), notes, cost_price and "
        "attributes; other facts go in attributes"
    )


def _shown_key(key: str) -> str:
    shown = terminal_safe(key[:KEY_SHOWN], line_breaks=False)
    return f"'{shown}...'" if len(key) > KEY_SHOWN else f"'{shown}'"


def visible_files(folder: Path) -> list[Path]:
    """The files of a folder, sorted, but hidden ones (.DS_Store...): never a seller's."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
