"""Where products come from: a catalog file, a CSV of products, or folders of photos and notes.

- ``catalog.json``: ``{"products": [{"product_id", "title_hint", "notes", "cost_price",
  "photos": [{"file": NAME}], "attributes": {...}}]}``, photos in ``photos/`` beside it.
- A CSV with a header: ``product_id``, ``title_hint`` (or ``title``), ``notes``,
  ``cost_price``, ``photos`` (file names separated by ``;``, relative to the CSV); any other
  column becomes an attribute (``weight_g``, ``size``, ``sku``...).
- A folder of photos: one product named after the folder, its notes in ``notes.txt``, and
  optionally ``product.json`` with the other fields. A folder of such folders: one product
  each. A folder holding ``catalog.json`` or CSV files: those.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parent / "samples"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
_FIELDS = ("product_id", "title_hint", "title", "notes", "cost_price", "photos")


@dataclass(frozen=True, kw_only=True)
class PhotoFile:
    """One photo as handed in: a file to read, or bytes already received."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        """The photo's bytes."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    @classmethod
    def at(cls, path: Path) -> PhotoFile:
        """A photo file on disk (read only when uploaded)."""
        return cls(name=path.name, path=path)


@dataclass(frozen=True, kw_only=True)
class ProductInput:
    """A product as a seller hands it in: notes and photo files."""

    product_id: str
    title_hint: str = ""
    notes: str = ""
    cost_price: str = ""
    photos: tuple[PhotoFile, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)


class SourceError(ValueError):
    """A path that holds no products FlipSync can read, with the reason."""


def load_catalog(path: Path = SAMPLES / "catalog.json") -> list[ProductInput]:
    """The products of a catalog file like the shipped sample."""
    raw = json.loads(path.read_text())
    return [
        _product(item, [path.parent / "photos" / p["file"] for p in item.get("photos", [])])
        for item in raw["products"]
    ]


def load_csv(path: Path) -> list[ProductInput]:
    """The products of a CSV file, one per row."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    products = []
    for number, row in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        if not row.get("product_id"):
            raise SourceError(f"{path}:{number}: product_id is empty")
        photos = [path.parent / name.strip() for name in row.get("photos", "").split(";")]
        attributes = {k: v for k, v in row.items() if k not in _FIELDS and v}
        products.append(
            _product({**row, "attributes": attributes}, [p for p in photos if p != path.parent])
        )
    return products


def load_folder(path: Path) -> list[ProductInput]:
    """One product from a folder of photos and notes."""
    extra: dict[str, Any] = {}
    if (path / "product.json").is_file():
        extra = json.loads((path / "product.json").read_text())
    notes = (path / "notes.txt").read_text().strip() if (path / "notes.txt").is_file() else ""
    photos = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [_product({"product_id": path.name, "notes": notes, **extra}, photos)]


def load_path(path: Path) -> tuple[list[ProductInput], bool]:
    """The products at path, and whether they came from CSV (a bulk import)."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return load_csv(path), True
        if path.suffix.lower() == ".json":
            return load_catalog(path), False
        raise SourceError(f"{path}: expected a .csv or catalog .json file, or a folder")
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    if (path / "catalog.json").is_file():
        return load_catalog(path / "catalog.json"), False
    tables = sorted(path.glob("*.csv"))
    if tables:
        return [product for table in tables for product in load_csv(table)], True
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        return load_folder(path), False
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    products = [product for folder in folders for product in load_folder(folder)]
    if not products:
        raise SourceError(f"{path}: no photos, catalog.json or CSV found")
    return products, False


def _product(item: dict[str, Any], photos: list[Path]) -> ProductInput:
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise SourceError(f"product {item.get('product_id')}: photos not found: {missing}")
    return ProductInput(
        product_id=str(item["product_id"]),
        title_hint=str(item.get("title_hint") or item.get("title") or ""),
        notes=str(item.get("notes", "")),
        cost_price=str(item.get("cost_price", "")),
        photos=tuple(PhotoFile.at(p) for p in photos),
        attributes={str(k): str(v) for k, v in dict(item.get("attributes") or {}).items()},
    )
