"""Where products come from: a catalog file, a CSV of products, or folders of photos and notes.

- ``catalog.json``: ``{"products": [{"product_id", "title_hint", "notes", "cost_price",
  "photos": [{"file": NAME}], "attributes": {...}}]}``, photos in ``photos/`` beside it.
- A CSV (or tab-delimited) product file: a plain spreadsheet (``product_id``, ``title``,
  ``notes``, ``cost_price``, ``photos`` separated by ``;``...), Shopify's product CSV, eBay's
  or Amazon's listing exports; see agents/formats.py and docs/import.md. The whole file is
  checked first (agents/csv_import.py); any other column becomes an attribute.
- A folder of photos: one product named after the folder, its notes in ``notes.txt``, and
  optionally ``product.json`` with the other fields (agents/folders.py; any other file in it
  is named in a warning). A folder of such folders: one product each. A folder holding
  ``catalog.json`` or CSV files: those.

This module reads folders and chooses the reader for a path; a catalog is read by
agents/catalog_file.py, a product file by agents/product_table.py, and each product is
checked by agents/product_input.py, its photos by agents/source_photos.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.catalog_file import load_catalog
from agents.containment import outside_problem
from agents.folders import (
    FIELDS_FILE,
    NOTES_FILE,
    PHOTO_SUFFIXES,
    ignored_files,
    unknown_keys,
    visible_files,
)
from agents.limits import MAX_TEXT_BYTES, json_type
from agents.product_input import ProductInput, checked_product
from agents.product_table import table_products
from agents.source_files import SourceError, read_json, read_text
from agents.source_photos import check_photos
from bus.terminal import terminal_safe

IMAGE_SUFFIXES = frozenset(PHOTO_SUFFIXES)
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The products at a path, whether they came from a table (a bulk import), and the
    warnings their reading raised (renamed ids, columns kept as attributes...)."""

    products: list[ProductInput]
    bulk: bool
    warnings: list[str] = field(default_factory=list)


def load_folder(
    path: Path, root: Path | None = None, warnings: list[str] | None = None
) -> list[ProductInput]:
    """One product from a folder of photos and notes (inside root, by default the folder:
    agents.containment); a key of its product.json that is not read is added to warnings,
    named from root."""
    root = root or path
    for named in (path, path / FIELDS_FILE, path / NOTES_FILE):
        if problem := outside_problem(root, named):
            raise SourceError(problem)
    extra: dict[str, Any] = {}
    if (path / FIELDS_FILE).is_file():
        raw = read_json(path / FIELDS_FILE)
        if not isinstance(raw, dict):
            found = json_type(raw)
            raise SourceError(f"{path / FIELDS_FILE}: expected an object of fields, found {found}")
        extra = raw
        if warnings is not None:
            warnings += unknown_keys(extra, str((path / FIELDS_FILE).relative_to(root)))
    notes = ""
    if (path / NOTES_FILE).is_file():
        notes = read_text(path / NOTES_FILE, MAX_TEXT_BYTES).strip()
    photos = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    # "." and ".." have no name of their own: the folder's real name is the product's id.
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    where = path / FIELDS_FILE if "product_id" in extra else path
    return [checked_product({"product_id": name, "notes": notes, **extra}, photos, str(where))]


def load_path(path: Path) -> tuple[list[ProductInput], bool]:
    """The products at path, and whether they came from CSV (a bulk import)."""
    loaded = load_source(path)
    return loaded.products, loaded.bulk


def load_source(path: Path, *, duplicates: str = "refuse") -> Loaded:
    """The products at path (a file or a folder), checked, with the warnings to show.

    Checked means each product's fields, and that every photo opens as an image (its
    header: agents.photos.check_photo), so a bad file is named before anything starts.
    """
    loaded = _load(path, duplicates)
    if not loaded.bulk:  # a product file's photos were checked with its rows, by line
        check_photos(path, loaded.products)
    return loaded


def _load(path: Path, duplicates: str) -> Loaded:
    """The products at path, their fields checked (not yet their photos)."""
    warnings: list[str] = []
    if path.is_file():
        if path.suffix.lower() in TABLE_SUFFIXES:
            return Loaded(
                products=table_products(path, duplicates, warnings), bulk=True, warnings=warnings
            )
        if path.suffix.lower() == ".json":
            return Loaded(products=load_catalog(path, warnings), bulk=False, warnings=warnings)
        raise SourceError(f"{path}: expected a .csv, .tsv or catalog .json file, or a folder")
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    if (path / "catalog.json").is_file():
        _check_inside(path, [path / "catalog.json"])
        catalog = load_catalog(path / "catalog.json", warnings)
        return Loaded(products=catalog, bulk=False, warnings=warnings)
    tables = sorted(p for p in path.glob("*.*") if p.suffix.lower() in (".csv", ".tsv"))
    _check_inside(path, tables)
    products: list[ProductInput] = []
    if tables:
        products = [p for table in tables for p in table_products(table, duplicates, warnings)]
        return Loaded(products=products, bulk=True, warnings=warnings)
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        products = load_folder(path, warnings=warnings)
        return Loaded(products=products, bulk=False, warnings=warnings + ignored_files(path))
    # Hidden folders (.git, .flipsync...) are never products.
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    in_folders: list[str] = []  # each folder's, after those of the folder of folders itself
    for folder in folders:
        products += load_folder(folder, path, in_folders)
        in_folders += ignored_files(folder, path)
    if not products:
        raise SourceError(f"{path}: no photos, catalog.json or CSV found")
    warnings += [
        f"ignored {terminal_safe(file.name, line_breaks=False)}: a folder of product folders "
        "is read one folder at a time (put it in its product's folder)"
        for file in visible_files(path)
    ]
    warnings += in_folders
    return Loaded(products=products, bulk=False, warnings=warnings)


def _check_inside(root: Path, paths: list[Path]) -> None:
    """SourceError for the first of paths (found in the folder root) that leads outside it."""
    for path in paths:
        if problem := outside_problem(root, path):
            raise SourceError(problem)
