"""A product file (CSV or tab-delimited) read whole and checked before anything is uploaded.

Every problem is found in one pass and reported together, by line: missing columns (with
the expected ones), rows whose fields do not line up (an unbalanced quote swallows the next
row), unreadable money, weights and dimensions, and product ids used twice (refused, or
renamed with a warning). Nothing is dropped or changed without a word.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from agents.csv_values import (
    ValueProblem,
    parse_dimensions_cm,
    parse_money,
    parse_weight_g,
    weight_in_text,
)
from agents.formats import Format, detect, normalise
from agents.limits import product_id_problem, size_problem, total_size_problem

MAX_PROBLEMS = 20
"""Problems listed in one error; the count of the rest is given."""
_CORE = ("product_id", "title_hint", "notes", "cost_price", "photos")
_UNIT_WORDS = {"oz": "oz", "ounces": "oz", "lb": "lb", "lbs": "lb", "pounds": "lb", "kg": "kg",
               "kilograms": "kg", "g": "g", "gr": "g", "grams": "g"}  # fmt: skip


class ImportError_(ValueError):
    """A file that cannot be imported as it is, with every problem found (by line)."""

    def __init__(self, path: Path, problems: list[str], expected: str = "") -> None:
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        lines = [f"{path}: {len(problems)} problem(s), nothing uploaded:"]
        lines += [f"  {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more")
        if expected:
            lines.append(expected)
        super().__init__("\n".join(lines))


@dataclass(kw_only=True)
class Row:
    """One product's fields, as read, with the line it starts on."""

    line: int
    fields: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    """Each field's column as the file spells it (a problem names the seller's column)."""


@dataclass(kw_only=True)
class Imported:
    """What a file holds: one entry per product, and warnings a person should read."""

    format: Format
    rows: list[Row]
    warnings: list[str]


RowCheck = Callable[[Row], list[str]]
"""More problems of one row (its photos' files: agents.source_photos), without the line."""


def read_table(
    path: Path, *, duplicates: str = "refuse", row_check: RowCheck | None = None
) -> Imported:
    """Read and check a whole product file; ImportError_ lists everything wrong with it (and
    what row_check finds in each row), in line order."""
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    first = text.split("\n", 1)[0]
    # Comma unless the header holds more tabs or semicolons (Excel's export where the decimal
    # mark is a comma): the header's commonest of the three.
    delimiter = max(",\t;", key=first.count)
    problems: list[str] = []
    records = _records(text, delimiter, problems)
    if not records:
        raise ImportError_(path, ["the file is empty (no header row)"])
    header_line, header = records[0]
    fmt = detect(header)
    names = [normalise(h) for h in header]
    mapped = {i: fmt.columns[n] for i, n in enumerate(names) if n in fmt.columns}
    headers = {name: header[i].strip() for i, name in reversed(mapped.items())}
    present = set(mapped.values())
    expected = _expected(fmt)
    missing = [alts for alts in fmt.required if not present & set(alts)]
    if missing:
        named = [" or ".join(_spellings(fmt, alts)) for alts in missing]
        problems.append(f"line {header_line}: missing column(s): {'; '.join(named)}")
        raise ImportError_(path, _by_line(problems), expected)
    unknown = [h.strip() for i, h in enumerate(header) if i not in mapped and h.strip()]
    unknown = [h for h in unknown if normalise(h) not in fmt.ignored]
    warnings: list[str] = []
    if unknown:
        warnings.append(
            f"{path.name}: read as {fmt.title}; columns kept as attributes: {', '.join(unknown)}"
        )
    rows: list[Row] = []
    for line, values in records[1:]:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(
                f"line {line}: {len(values)} fields where the header has {len(header)} "
                "(an unbalanced quote, or a missing or extra delimiter?)"
            )
            continue
        row = Row(line=line, fields={}, headers=headers)
        for index, value in enumerate(values):
            value = value.strip()
            if not value:
                continue
            if index in mapped:
                name = mapped[index]
                if name in ("image_urls", "option") and name in row.fields:
                    row.fields[name] += f";{value}"
                else:
                    row.fields.setdefault(name, value)
            elif normalise(header[index]) not in fmt.ignored:
                row.extra[header[index].strip()] = value
        rows.append(row)
    rows = _grouped(rows) if fmt.group_rows else rows
    for row in rows:
        _check(row, fmt, problems)
        if row_check is not None:
            problems += [f"line {row.line}: {p}" for p in row_check(row)]
    rows = _unique(rows, duplicates, problems, warnings)
    if problems:
        # Found in passes (the parser's, each row's, the ids'): told in the file's order.
        raise ImportError_(path, _by_line(problems))
    return Imported(format=fmt, rows=rows, warnings=warnings)


def _by_line(problems: list[str]) -> list[str]:
    """Problems in the order of the lines they name ("line N: ..."; stable within a line)."""

    def line(problem: str) -> int:
        found = re.match(r"line (\d+):", problem)
        return int(found.group(1)) if found else 0

    return sorted(problems, key=line)


def _records(text: str, delimiter: str, problems: list[str]) -> list[tuple[int, list[str]]]:
    """(line a record starts on, its fields); a record csv cannot parse is a problem."""
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    out: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            why = "a field too large" if "field limit" in str(exc) else "an unbalanced quote?"
            problems.append(f"line {start}: unreadable row ({exc}): {why}")
            start = reader.line_num + 1
            continue
        out.append((start, values))
        start = reader.line_num + 1
    return out


def _grouped(rows: list[Row]) -> list[Row]:
    """Shopify: rows of one handle without a title (variants, images) join the first one."""
    by_id: dict[str, Row] = {}
    out: list[Row] = []
    for row in rows:
        pid = row.fields.get("product_id", "")
        first = by_id.get(pid)
        if first is not None and "title_hint" not in row.fields:
            for name in ("image_urls", "option"):
                if name in row.fields:
                    joined = (
                        f"{first.fields[name]};{row.fields[name]}"
                        if name in first.fields
                        else row.fields[name]
                    )
                    first.fields[name] = joined
            continue
        by_id.setdefault(pid, row)
        out.append(row)
    return out


def _check(row: Row, fmt: Format, problems: list[str]) -> None:
    """Normalise one row's values in place; what cannot be read is a problem of its line."""
    f = row.fields
    where = f"line {row.line}"
    for alts in fmt.required:
        if not any(f.get(name) for name in alts):
            named = " or ".join(_spellings(fmt, alts))
            problems.append(f"{where}: {named} is empty")
    if not any(f.get(name) for name in ("title_hint", "notes", "photos", "image_urls")):
        problems.append(f"{where}: nothing to list from: no title, notes or photos")
    if "product_id" not in f:
        f["product_id"] = f.get("sku") or f.get("asin") or f.get("item_number", "")
    if f["product_id"] and (problem := product_id_problem(f["product_id"])):
        problems.append(f"{where}: {problem}")
    for name, value in (f | row.extra).items():
        if problem := size_problem(name[:40], value):
            problems.append(f"{where}: {problem}")
    if problem := total_size_problem("the row's fields", [*f.values(), *row.extra.values()]):
        problems.append(f"{where}: {problem}")
    if "notes" in f:
        f["notes"] = _plain_text(f["notes"])
    for name in ("cost_price", "list_price"):
        if name in f:
            try:
                amount, currency = parse_money(f[name])
            except ValueProblem as exc:
                problems.append(f"{where}: {row.headers.get(name, name)}: {exc}")
                continue
            f[name] = str(amount)
            if currency not in (None, "USD"):
                f[f"{name}_currency"] = currency
    for name, codes in fmt.codes.items():
        if f.get(name) in codes:
            f[name] = codes[f[name]]
    try:
        grams = _weight(f)
        if grams is not None:
            f["weight_g"] = str(grams)
        sides = _dimensions(f)
        if sides:
            f["dimensions_cm"] = " x ".join(str(s) for s in sides)
    except ValueProblem as exc:
        problems.append(f"{where}: {exc}")


def _weight(f: dict[str, str]) -> Decimal | None:
    unit = _UNIT_WORDS.get(f.pop("weight_unit", "").strip().lower())
    if "weight_major_lb" in f or "weight_minor_oz" in f:  # eBay: pounds and ounces
        pounds = parse_weight_g(f.pop("weight_major_lb", "0"), "lb")
        ounces = parse_weight_g(f.pop("weight_minor_oz", "0"), "oz")
        return pounds + ounces
    if "weight_g" in f:
        return parse_weight_g(f["weight_g"], "g")
    if "weight" in f:
        return parse_weight_g(f.pop("weight"), unit)
    dims = f.get("dimensions", "")
    return weight_in_text(dims) if dims else None


def _dimensions(f: dict[str, str]) -> list[Decimal]:
    if "dimensions_cm" in f:
        return parse_dimensions_cm(f["dimensions_cm"], "cm")
    if "dimensions" in f:
        return parse_dimensions_cm(f.pop("dimensions"))
    sides = [f.pop(k) for k in ("length", "width", "depth") if k in f]
    if sides:
        return parse_dimensions_cm(" x ".join(sides), "in")  # eBay's package sizes: inches
    return []


def _unique(
    rows: list[Row], duplicates: str, problems: list[str], warnings: list[str]
) -> list[Row]:
    """Each product id once: a repeat is a problem, or (rename) gets -2, -3... and a warning."""
    seen: dict[str, int] = {}
    taken = {row.fields.get("product_id", "") for row in rows}
    for row in rows:
        pid = row.fields.get("product_id", "")
        if not pid:
            continue
        if pid not in seen:
            seen[pid] = row.line
            continue
        if duplicates != "rename":
            problems.append(
                f"line {row.line}: product id {pid!r} is already on line {seen[pid]} "
                "(use --duplicates rename to keep both)"
            )
            continue
        number = 2
        while f"{pid}-{number}" in taken:
            number += 1
        new = f"{pid}-{number}"
        if problem := product_id_problem(new):
            problems.append(f"line {row.line}: renamed: {problem}")
            continue
        taken.add(new)
        row.fields["product_id"] = new
        warnings.append(f"line {row.line}: product id {pid!r} repeats line {seen[pid]}: "
                        f"renamed {new!r}")  # fmt: skip
    return rows


def _plain_text(text: str) -> str:
    """HTML descriptions (Shopify's Body (HTML), eBay's) as plain text."""
    if "<" not in text:
        return text
    text = re.sub(r"<(br|/p|/li|/div|/h\d)\s*/?>", "\n", text, flags=re.I)
    text = html.unescape(re.sub(r"<[^<>]*>", "", text))
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _spellings(fmt: Format, fields: tuple[str, ...]) -> list[str]:
    """The headers a format accepts for fields, as a person would type them."""
    return [h for h in fmt.columns if fmt.columns[h] in fields]


def _expected(fmt: Format) -> str:
    needed = "; ".join(" or ".join(_spellings(fmt, alts)) for alts in fmt.required)
    optional = sorted({h for h, name in fmt.columns.items() if name in _CORE} - set(
        h for alts in fmt.required for h in _spellings(fmt, alts)))  # fmt: skip
    return (
        f"expected columns for {fmt.title}: {needed} (required); optional: "
        f"{', '.join(optional)} and any others (see flipsync upload --help)"
    )
