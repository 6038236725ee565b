"""A product file (CSV or tab-delimited): its products, the whole file and its photos checked
first (agents/csv_import.py), any column not a product field kept as an attribute."""

from __future__ import annotations

from pathlib import Path

from agents.containment import source_root
from agents.csv_import import ImportError_, Row, read_table
from agents.limits import MAX_FILE_BYTES
from agents.product_input import ProductInput, checked_product
from agents.source_files import SourceError, check_size
from agents.source_photos import photo_problems

_FIELDS = ("product_id", "title_hint", "notes", "cost_price", "photos")


def load_csv(path: Path, *, duplicates: str = "refuse") -> list[ProductInput]:
    """The products of a product file (CSV or tab-delimited), checked whole first."""
    return table_products(path, duplicates, [])


def table_products(path: Path, duplicates: str, warnings: list[str]) -> list[ProductInput]:
    """The products of one product file; every defect of the file, its photos' included, is
    raised at once by line (ImportError_'s message)."""
    check_size(path, MAX_FILE_BYTES)
    root = source_root(path)

    def row_problems(row: Row) -> list[str]:
        return photo_problems(root, _row_photos(path, row), row.fields.get("product_id", ""))

    try:
        imported = read_table(path, duplicates=duplicates, row_check=row_problems)
    except ImportError_ as exc:
        raise SourceError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not imported.rows:
        raise SourceError(f"{path}: no products (a header and no rows)")
    warnings += imported.warnings
    products = []
    for row in imported.rows:
        attributes = {k: v for k, v in row.fields.items() if k not in _FIELDS}
        attributes |= {k: v for k, v in row.extra.items() if k not in attributes}
        item = {**row.fields, "attributes": attributes}
        products.append(checked_product(item, _row_photos(path, row), f"{path}: line {row.line}"))
    return products


def _row_photos(table: Path, row: Row) -> list[Path]:
    """The photo files a row's photos column names (separated by ;), beside the table."""
    names = [n.strip() for n in row.fields.get("photos", "").split(";") if n.strip()]
    return [table.parent / n for n in names]
