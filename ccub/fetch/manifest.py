"""Reading and checking a CCUB URL manifest (CSV, TSV, JSONL, an .xlsx workbook or Parquet); the
manifest is only ever read.

Manifests come from strangers: a CSV, TSV or JSONL file is read a bounded line at a time, a
workbook or Parquet file within the bounds of `ccub.sheets`, and a line, a cell or a JSON value
over the `[limits]` caps is a problem on its row while the other rows are still read. Every
sheet of a workbook is read; a sheet without a country column takes its culture from its name.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from ccub.config import Limits
from ccub.fetch.client import public_url
from ccub.rows import ENCODING, LIMIT, MALFORMED, RawRow, csv_rows, json_kind, jsonl_rows
from ccub.sheets import SUFFIXES as SHEET_SUFFIXES
from ccub.sheets import SheetError, read_sheets
from ccub.vocab import Vocabulary

# Required CCUB column -> the column names accepted for it (case-insensitive), the CCUB name first.
REQUIRED: dict[str, tuple[str, ...]] = {
    "url": ("url", "image_url"),
    "caption": ("caption", "text", "description"),
    "country_code": ("country_code", "culture", "country"),
    "category_code": ("category_code", "category"),
}
# Optional columns, renamed to the keys `ccub validate` reads in metadata.jsonl; others travel as they are.
OPTIONAL: dict[str, tuple[str, ...]] = {
    "created_at": ("created_at", "date"),
    "license": ("license", "licence", "license_spdx"),
    "creator": ("creator", "author", "attribution", "photographer"),
    "contributor": ("contributor", "contributor_id", "submitted_by"),
    "source_page": ("source_page", "source", "page_url", "source_url"),
}
SUFFIXES = (".csv", ".tsv", ".jsonl", *SHEET_SUFFIXES)
# Columns that must hold text (a JSONL value of another type is a problem); null is an absent optional.
TEXT_COLUMNS = {n for names in (*REQUIRED.values(), *OPTIONAL.values()) for n in names}
REQUIRED_NAMES = {n for names in REQUIRED.values() for n in names}


class ManifestError(ValueError):
    """A manifest that cannot be read at all (missing file, unknown format, missing columns)."""


def where(line: int, sheet: str | None = None, unit: str = "line") -> str:
    """A row's place as people find it: `line 4`, `sheet 'Korea', row 4`, `row 4` (Parquet)."""
    return f"sheet {sheet!r}, row {line}" if sheet is not None else f"{unit} {line}"


@dataclass
class Problem:
    line: int  # the line (CSV, TSV, JSONL) or row number (a sheet's, as the spreadsheet shows it; Parquet's)
    field: str
    message: str
    fix: str
    sheet: str | None = None  # the workbook sheet
    unit: str = "line"  # "row" in a workbook or Parquet file

    @property
    def where(self) -> str:
        return where(self.line, self.sheet, self.unit)

    def __str__(self) -> str:
        return f"{self.where}, {self.field}: {self.message} (fix: {self.fix})"


@dataclass
class Row:
    line: int
    url: str
    caption: str
    country_code: str
    category_code: str
    culture: str | None  # vocabulary slug, None when the code is unknown
    category: str | None  # CCUB category code, None when unknown
    extra: dict[str, Any] = field(default_factory=dict)  # metadata keys for the other columns
    problems: list[Problem] = field(default_factory=list)
    duplicate_of: str | None = None  # where the first row with the same URL is (`line 3`)
    sheet: str | None = None  # the workbook sheet
    unit: str = "line"  # "row" in a workbook or Parquet file

    @property
    def where(self) -> str:
        return where(self.line, self.sheet, self.unit)

    @property
    def key(self) -> tuple[str | None, int]:
        """Unique in its manifest (line numbers repeat across the sheets of a workbook)."""
        return self.sheet, self.line


def _open(path: Path, limits: Limits) -> BinaryIO:
    """The manifest opened for reading; ManifestError when it is not a regular file under max_metadata_mb.

    O_NONBLOCK: a FIFO is refused at once instead of waited on (it changes nothing for a regular file).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from exc
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif st.st_size > limits.max_metadata_mb * 1e6:
        problem = (f"is {st.st_size:,} bytes, over the {limits.max_metadata_mb:g} MB cap ([limits] "
                   "max_metadata_mb); split it into smaller manifests")
    if problem:
        os.close(fd)
        raise ManifestError(f"{path}: {problem}")
    return os.fdopen(fd, "rb")


_FIX = {LIMIT: "shorten its cells or split the row",
        MALFORMED: "write one JSON object per line, or quote cells that hold the delimiter or quotes",
        ENCODING: "save the manifest as UTF-8"}
_SHEET_FIX = {LIMIT: "shorten its cells or split the row", MALFORMED: "write every cell as text"}


@dataclass
class _Part:
    """One table of a manifest: a whole CSV, TSV or JSONL file, a workbook's sheet, a Parquet file."""

    header: list[str]  # lower-cased column names
    rows: list[tuple[int, dict[str, Any], list[Problem]]]  # (line, values, problems); an unreadable row is empty
    sheet: str | None = None
    unit: str = "line"
    header_line: int = 1
    problem: Problem | None = None  # the whole sheet cannot be used


def _unreadable(row: RawRow, sheet: str | None = None, unit: str = "line") -> tuple[int, dict, list[Problem]]:
    fix = (_FIX if unit == "line" else _SHEET_FIX)[row.kind]
    message = row.problem.removeprefix("is ").removeprefix("has ")
    return row.line, {}, [Problem(row.line, row.column or "-", message, fix, sheet, unit)]


def _csv(fh: BinaryIO, delimiter: str, limits: Limits) -> _Part:
    records = csv_rows(fh, limits, delimiter)
    header: list[str] = []
    for record in records:
        if record.problem:
            raise ManifestError(f"the header {record.problem}")
        header = [cell.strip().lower() for cell in record.value]
        break
    rows: list[tuple[int, dict, list]] = []
    for record in records:
        if record.problem:
            rows.append(_unreadable(record))
            continue
        extra = len(record.value) - len(header)
        rows.append((record.line, dict(zip(header, record.value, strict=False)), [] if extra <= 0 else [
            Problem(record.line, "-", f"{extra} more cell(s) than the header has columns",
                    "quote cells that contain the delimiter")]))
    return _Part(header, rows)


def _jsonl_row(line: int, value: Any) -> tuple[dict, list[Problem]]:
    """The object on one JSONL line and its problems; non-text CCUB columns are problems."""
    if not isinstance(value, dict):
        return {}, [Problem(line, "-", f"a JSON {json_kind(value)}, not an object", _FIX[MALFORMED])]
    row = {str(k).strip().lower(): v for k, v in value.items()}
    problems = [Problem(line, key, f"a JSON {json_kind(v)}, not text", f"write {key} as a JSON string")
                for key, v in row.items()
                if key in TEXT_COLUMNS and not isinstance(v, str) and (v is not None or key in REQUIRED_NAMES)]
    return row, problems


def _jsonl(fh: BinaryIO, limits: Limits) -> _Part:
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict, list]] = []
    for record in jsonl_rows(fh, limits):
        if record.problem:
            rows.append(_unreadable(record))
        else:
            row, problems = _jsonl_row(record.line, record.value)
            columns.update(dict.fromkeys(row))
            rows.append((record.line, row, problems))
    return _Part(list(columns), rows)


def _sheets(path: Path, fh: BinaryIO, limits: Limits) -> list[_Part]:
    """Every sheet of a workbook, or the table of a Parquet file (rows numbered from 1)."""
    try:
        sheets = read_sheets(fh.read(), path.suffix, TEXT_COLUMNS, limits)
    except SheetError as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    parts = []
    for sheet in sheets:
        if not sheet.header and not sheet.problem:
            continue  # an empty sheet
        part = _Part(sheet.header, [], sheet.name, "row", max(sheet.header_line, 1))
        if sheet.problem:
            part.problem = Problem(part.header_line, "-", sheet.problem.removeprefix("has "),
                                   "name the columns (url, caption, country_code, category_code) in the "
                                   "sheet's first row, or remove the sheet", sheet.name, "row")
        part.rows = [_unreadable(r, sheet.name, "row") if r.problem else (r.line, r.value, [])
                     for r in sheet.rows]
        parts.append(part)
    return parts


def _raw_rows(path: Path, limits: Limits) -> list[_Part]:
    """The manifest's tables: one for a CSV, TSV, JSONL or Parquet file, one per sheet of a workbook."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ManifestError(f"{path}: unknown manifest format; use {', '.join(SUFFIXES)}")
    with _open(path, limits) as fh:
        if suffix in SHEET_SUFFIXES:
            return _sheets(path, fh, limits)
        if suffix == ".jsonl":
            return [_jsonl(fh, limits)]
        try:
            return [_csv(fh, "\t" if suffix == ".tsv" else ",", limits)]
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from exc


def _pick(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, str]:
    """(column used, its text) for the first of `names` present in the row; "" for a value that is not
    text (a JSONL number or list: reported by `_jsonl_row`)."""
    for name in names:
        if name in row:
            value = row[name]
            return name, value.strip() if isinstance(value, str) else ""
    return None, ""


def _url_problem(url: str) -> str | None:
    if not url:
        return "empty URL"
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # an unclosed [IPv6 bracket; .port: a port that is not a number from 0 to 65535
        ok = False
    shown = public_url(url)[:200]
    return None if ok else f"not an http(s) URL: {shown!r}" if shown else "not a readable URL"


def _check(line: int, values: dict[str, Any], problems: list[Problem], vocab: Vocabulary,
           sheet: str | None = None, unit: str = "line") -> Row:
    """A row from its values; `problems` (found while reading it) are kept, and one per column at most."""
    picked = {name: _pick(values, names) for name, names in REQUIRED.items()}
    url, caption = picked["url"][1], picked["caption"][1]
    country, category = picked["country_code"][1], picked["category_code"][1]
    row = Row(line, url, caption, country, category, vocab.culture(country), vocab.category(category),
              problems=list(problems), sheet=sheet, unit=unit)
    if problems and not values:  # the line could not be read: its problem says why
        return row
    col = {name: picked[name][0] or name for name in REQUIRED}
    reported = {p.field for p in problems}

    def add(name: str, message: str, fix: str) -> None:
        if col[name] not in reported:
            row.problems.append(Problem(line, col[name], message, fix, sheet, unit))

    if message := _url_problem(url):
        add("url", message, "give the image's http(s) address")
    if not caption:
        add("caption", "empty caption", "describe the image in a sentence")
    if row.culture is None:
        add("country_code", f"unknown country code {country!r}" if country else "empty country code",
            "use an ISO 3166 alpha-3 code such as KOR (`ccub checks --vocabulary`), or add the culture to ccub.toml")
    if row.category is None:
        add("category_code", f"unknown category code {category!r}" if category else "empty category code",
            "use a CCUB code such as ARCH, CLOTH, FOOD (`ccub checks --vocabulary`)")
    for name, names in OPTIONAL.items():
        column, value = _pick(values, names)
        if column and value:
            row.extra[name] = value
    row.extra.update({k: v for k, v in values.items() if k not in TEXT_COLUMNS and v not in (None, "")})
    return row


def read_manifest(path: Path, vocab: Vocabulary, limits: Limits | None = None) -> tuple[list[Row], list[Problem]]:
    """The manifest's rows and every problem found in it; ManifestError when it cannot be used at all.

    Rows with problems are still returned (their `problems` say why they cannot be fetched), also
    those that could not be read (an over-long line, bad JSON); a duplicate URL is reported and only
    its first row is fetched. In a workbook, a sheet without a country column whose name is a
    culture (`Korea`, `KOR`) gives its rows that culture; a sheet that cannot be used (no header,
    missing columns) is a problem on that sheet and the other sheets are still read.
    """
    path = Path(path)
    parts = _raw_rows(path, limits or Limits())
    seen: dict[str, str] = {}
    rows: list[Row] = []
    problems: list[Problem] = []
    for part in parts:
        if part.problem:
            problems.append(part.problem)
            continue
        header = part.header
        named = (part.sheet is not None and not set(REQUIRED["country_code"]) & set(header)
                 and vocab.culture(part.sheet) is not None)
        if named:
            header = [*header, "country_code"]
        missing = [name for name, names in REQUIRED.items() if not set(names) & set(header)]
        if missing:
            problems.extend(p for _line, _values, found in part.rows for p in found)
            note = (f"; the sheet's name {part.sheet!r} is not a culture either"
                    if part.sheet is not None and "country_code" in missing else "")
            problems.append(Problem(part.header_line, ", ".join(missing), f"missing column(s) {', '.join(missing)} "
                                    f"(found: {', '.join(h for h in header if h) or 'none'}){note}",
                                    "add the CCUB columns url, caption, country_code, category_code",
                                    part.sheet, part.unit))
            continue
        for line, values, found in part.rows:
            if named and values:
                values = {**values, "country_code": part.sheet}
            row = _check(line, values, found, vocab, part.sheet, part.unit)
            problems.extend(row.problems)
            if row.url and not row.problems:
                if row.url in seen:
                    row.duplicate_of = seen[row.url]
                    column = _pick(values, REQUIRED["url"])[0] or "url"
                    problems.append(Problem(line, column, f"duplicate URL (first on {seen[row.url]}); "
                                            "fetched once", "remove the repeated row", part.sheet, part.unit))
                else:
                    seen[row.url] = row.where
            rows.append(row)
    if not any(part.rows for part in parts):
        problems.append(Problem(1, "-", "the manifest has no rows", "add one row per image"))
    return rows, problems
