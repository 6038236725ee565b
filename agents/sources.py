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
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.containment import outside_problem, source_root
from agents.csv_import import ImportError_, Row, read_table
from agents.csv_values import ValueProblem, parse_money
from agents.folders import (
    CATALOG_FILE_KEYS,
    CATALOG_READ,
    FIELDS_FILE,
    NOTES_FILE,
    PHOTO_SUFFIXES,
    ignored_files,
    unknown_keys,
    visible_files,
)
from agents.limits import (
    MAX_FILE_BYTES,
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    MAX_TEXT_BYTES,
    attributes_size_problem,
    attributes_type_problem,
    json_type,
    product_id_problem,
    product_size_problem,
    size_problem,
)
from agents.photos import PhotoError, check_photo
from bus.terminal import terminal_safe

SAMPLES = Path(__file__).parent / "samples"
IMAGE_SUFFIXES = frozenset(PHOTO_SUFFIXES)
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_FIELDS = ("product_id", "title_hint", "notes", "cost_price", "photos")


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


def load_catalog(
    path: Path = SAMPLES / "catalog.json", warnings: list[str] | None = None
) -> list[ProductInput]:
    """The products of a catalog file like the shipped sample; a key of the file or of a
    product that is not read is added to warnings (a product's naming it by number and id)."""
    raw = _read_json(path)
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
        product = _product(item, _catalog_photos(path.parent / "photos", item, where), where)
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


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The products at a path, whether they came from a table (a bulk import), and the
    warnings their reading raised (renamed ids, columns kept as attributes...)."""

    products: list[ProductInput]
    bulk: bool
    warnings: list[str] = field(default_factory=list)


def load_csv(path: Path, *, duplicates: str = "refuse") -> list[ProductInput]:
    """The products of a product file (CSV or tab-delimited), checked whole first."""
    return _table(path, duplicates, [])


def _table(path: Path, duplicates: str, warnings: list[str]) -> list[ProductInput]:
    """The products of one product file; every defect of the file, its photos' included, is
    raised at once by line (ImportError_'s message)."""
    _check_size(path, MAX_FILE_BYTES)
    root = source_root(path)

    def photo_problems(row: Row) -> list[str]:
        return _photo_problems(root, _row_photos(path, row), row.fields.get("product_id", ""))

    try:
        imported = read_table(path, duplicates=duplicates, row_check=photo_problems)
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
        products.append(_product(item, _row_photos(path, row), f"{path}: line {row.line}"))
    return products


def _row_photos(table: Path, row: Row) -> list[Path]:
    """The photo files a row's photos column names (separated by ;), beside the table."""
    names = [n.strip() for n in row.fields.get("photos", "").split(";") if n.strip()]
    return [table.parent / n for n in names]


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
        raw = _read_json(path / FIELDS_FILE)
        if not isinstance(raw, dict):
            found = json_type(raw)
            raise SourceError(f"{path / FIELDS_FILE}: expected an object of fields, found {found}")
        extra = raw
        if warnings is not None:
            warnings += unknown_keys(extra, str((path / FIELDS_FILE).relative_to(root)))
    notes = ""
    if (path / NOTES_FILE).is_file():
        notes = _read_text(path / NOTES_FILE, MAX_TEXT_BYTES).strip()
    photos = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    # "." and ".." have no name of their own: the folder's real name is the product's id.
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    where = path / FIELDS_FILE if "product_id" in extra else path
    return [_product({"product_id": name, "notes": notes, **extra}, photos, str(where))]


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
        _check_photos(path, loaded.products)
    return loaded


def _load(path: Path, duplicates: str) -> Loaded:
    """The products at path, their fields checked (not yet their photos)."""
    warnings: list[str] = []
    if path.is_file():
        if path.suffix.lower() in TABLE_SUFFIXES:
            return Loaded(products=_table(path, duplicates, warnings), bulk=True, warnings=warnings)
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
        products = [p for table in tables for p in _table(table, duplicates, warnings)]
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


def _check_photos(source: Path, products: list[ProductInput]) -> None:
    """Raise SourceError naming every photo problem of the products (_photo_problems)."""
    problems: list[str] = []
    root = source_root(source)
    for product in products:
        paths = [photo.path for photo in product.photos if photo.path is not None]
        problems += _photo_problems(root, paths, product.product_id)
    if len(problems) == 1:
        raise SourceError(problems[0])
    if problems:
        raise SourceError(str(ImportError_(source, problems)))


def _photo_problems(root: Path, paths: list[Path], product_id: str = "") -> list[str]:
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


def _check_inside(root: Path, paths: list[Path]) -> None:
    """SourceError for the first of paths (found in the folder root) that leads outside it."""
    for path in paths:
        if problem := outside_problem(root, path):
            raise SourceError(problem)


def _product(item: dict[str, Any], photos: list[Path], where: str) -> ProductInput:
    """A product from its fields as read; where (file and line, or folder) names it in errors."""
    if "product_id" not in item:
        raise SourceError(f"{where}: no product_id")
    product_id = item["product_id"]
    if isinstance(product_id, int) and not isinstance(product_id, bool):
        product_id = str(product_id)  # a catalog's numeric id: 1001 is "1001"
    if not isinstance(product_id, str):
        raise SourceError(f"{where}: product id {product_id!r} is not text")
    if problem := product_id_problem(product_id):
        raise SourceError(f"{where}: {problem}")
    for name in ("title_hint", "title", "notes", "cost_price"):
        if problem := size_problem(name, str(item.get(name, ""))):
            raise SourceError(f"{where}: {problem}")
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise SourceError(f"{where}: attributes: expected an object, found {json_type(attributes)}")
    if problem := attributes_type_problem(attributes) or attributes_size_problem(attributes):
        raise SourceError(f"{where}: {problem}")
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise SourceError(f"{where}: photos not found: {', '.join(missing)}")
    cost_price, currency = _cost_price(item.get("cost_price"), where)
    if currency is not None:
        attributes = {**attributes, "cost_price_currency": currency}
    product = ProductInput(
        product_id=product_id,
        title_hint=str(item.get("title_hint") or item.get("title") or ""),
        notes=str(item.get("notes", "")),
        cost_price=cost_price,
        photos=tuple(PhotoFile.at(p) for p in photos),
        attributes={str(k): str(v) for k, v in attributes.items()},
    )
    if problem := product_size_problem(product):  # all of it: the upload is one message
        raise SourceError(f"{where}: {problem}")
    return product


def _cost_price(value: object, where: str) -> tuple[str, str | None]:
    """A cost price as an amount ("$25" -> "25") and its currency when not USD, read as a
    CSV's is; SourceError names an unreadable one (a product.json's "$25" used to pass as
    text the pricing agent could not read, and the upload said no cost price was given)."""
    if value is None or value == "":
        return "", None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SourceError(f"{where}: cost_price: expected an amount, found {json_type(value)}")
    if not isinstance(value, str):  # a JSON number is the amount as written (4.125 is not
        amount = Decimal(str(value))  # 4,125 with a thousands mark, as text may be)
        if not amount.is_finite() or amount < 0:
            raise SourceError(f"{where}: cost_price: {value!r} is not an amount of money")
        return str(amount), None
    try:
        amount, currency = parse_money(value)
    except ValueProblem as exc:
        raise SourceError(f"{where}: cost_price: {exc}") from None
    return str(amount), None if currency in (None, "USD") else currency


def _check_size(path: Path, limit: int) -> None:
    """SourceError if the file at path is over limit bytes (before it is read)."""
    size = path.stat().st_size
    if size > limit:
        raise SourceError(f"{path}: {size} bytes, over the {limit}-byte limit")


def _read_text(path: Path, limit: int) -> str:
    """A text file of at most limit bytes that must be UTF-8 (a byte order mark is dropped);
    SourceError names it."""
    _check_size(path, limit)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_json(path: Path) -> Any:
    """A JSON file's value; SourceError names the file, and the line and column of an error."""
    text = _read_text(path, MAX_FILE_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise SourceError(f"{path}: not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise SourceError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError:  # Python's bound on int digits: its message names neither file nor line
        digits = sys.get_int_max_str_digits()
        raise SourceError(f"{path}: a number of more than {digits:,} digits") from None
