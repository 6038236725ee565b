"""A catalog file: ``{"products": [...]}`` like the shipped sample, photos in ``photos/``
beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.folders import CATALOG_FILE_KEYS, CATALOG_READ, unknown_keys
from agents.limits import json_type
from agents.product_input import ProductInput, checked_product
from agents.source_files import SourceError, read_json

SAMPLES = Path(__file__).parent / "samples"


def load_catalog(
    path: Path = SAMPLES / "catalog.json", warnings: list[str] | None = None
) -> list[ProductInput]:
    """The products of a catalog file like the shipped sample; a key of the file or of a
    product that is not read is added to warnings (a product's naming it by number and id)."""
    raw = read_json(path)
    items = raw.get("products") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        found = f"keys {', '.join(map(repr, raw))}" if isinstance(raw, dict) else json_type(raw)
        raise SourceError(f'{path}: expected {{"products": [...]}} (a catalog), found {found}')
    if not items:
        raise SourceError(f"{path}: no products")
    if warnings is not None:  # a "defaults" beside products was dropped without a word
        warnings += unknown_keys(raw, str(path), CATALOG_FILE_KEYS)
    products = []
    for number, item in enumerate(items, 1):
        where = f"{path}: product {number}"
        if not isinstance(item, dict):
            raise SourceError(f"{where}: expected an object of fields, found {json_type(item)}")
        product = checked_product(item, _catalog_photos(path.parent / "photos", item, where), where)
        products.append(product)
        if warnings is not None:  # as a product.json's: a "pirce" was dropped without a word
            entry = f"{path}, product {number} ({product.product_id})"
            warnings += unknown_keys(item, entry, CATALOG_READ)
    return products


def _catalog_photos(folder: Path, item: dict[str, Any], where: str) -> list[Path]:
    """The photo files a catalog product names: {"photos": [{"file": NAME}, ...]}."""
    photos = item.get("photos", [])
    if not isinstance(photos, list) or not all(
        isinstance(p, dict) and isinstance(p.get("file"), str) for p in photos
    ):
        raise SourceError(f'{where}: photos: expected a list of {{"file": NAME}}')
    return [folder / p["file"] for p in photos]
