"""A product as a seller hands it in (ProductInput, its PhotoFiles), and the checks that
build one from the fields a catalog, a product file or a folder gave."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.csv_values import ValueProblem, parse_money
from agents.limits import (
    attributes_size_problem,
    attributes_type_problem,
    json_type,
    product_id_problem,
    product_size_problem,
    size_problem,
)
from agents.source_files import SourceError


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


def checked_product(item: dict[str, Any], photos: list[Path], where: str) -> ProductInput:
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
