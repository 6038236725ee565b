"""The photo checks of a source: every photo file missing, not an image, too large, outside
the source or one too many, named at once."""

from __future__ import annotations

from pathlib import Path

from agents.containment import outside_problem, source_root
from agents.csv_import import ImportError_
from agents.limits import MAX_PHOTO_BYTES, MAX_PHOTOS
from agents.photos import PhotoError, check_photo
from agents.product_input import ProductInput
from agents.source_files import SourceError


def check_photos(source: Path, products: list[ProductInput]) -> None:
    """Raise SourceError naming every photo problem of the products (photo_problems)."""
    problems: list[str] = []
    root = source_root(source)
    for product in products:
        paths = [photo.path for photo in product.photos if photo.path is not None]
        problems += photo_problems(root, paths, product.product_id)
    if len(problems) == 1:
        raise SourceError(problems[0])
    if problems:
        raise SourceError(str(ImportError_(source, problems)))


def photo_problems(root: Path, paths: list[Path], product_id: str = "") -> list[str]:
    """Every photo file of one product that is missing, does not open as an image, is over
    MAX_PHOTO_BYTES, or lies outside root (agents.containment); and more than MAX_PHOTOS."""
    problems: list[str] = []
    if len(paths) > MAX_PHOTOS:
        who = f"product {product_id}" if product_id else "product"
        problems.append(f"{who}: {len(paths)} photos, at most {MAX_PHOTOS}")
    missing: list[str] = []
    for path in paths:
        if problem := outside_problem(root, path):
            problems.append(problem)
            continue
        if not path.is_file():
            missing.append(str(path))
            continue
        if (size := path.stat().st_size) > MAX_PHOTO_BYTES:  # read whole on upload
            problems.append(f"{path}: {size} bytes, over the {MAX_PHOTO_BYTES}-byte limit")
            continue
        try:
            check_photo(path)
        except PhotoError as exc:
            problems.append(f"{path}: {exc}")
    if missing:
        problems.insert(0, f"photos not found: {', '.join(missing)}")
    return problems
