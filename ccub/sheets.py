"""Rows of untrusted workbooks (.xlsx, every sheet) and Parquet files, read through pandas.

The companion of `ccub.rows` (CSV, TSV, JSON lines): the caller opens the file and checks it
against `limits.max_metadata_mb` first; then

- an .xlsx is a zip: the sizes its parts declare they unpack to must sum to at most
  `limits.max_unpacked_mb`, checked on the zip directory before any XML is parsed (zipfile
  stops a part at its declared size and refuses it on a CRC mismatch, so the declaration
  binds);
- a Parquet file declares its uncompressed size and its row count in its footer: the size
  must be under `limits.max_unpacked_mb`, and the cells, counted at 8 bytes each, too, before
  any data is read; text columns are read dictionary-encoded, so one long text repeated on
  every row is held once;
- formulas are never evaluated: openpyxl reads the value the spreadsheet program saved with
  the formula (pandas opens workbooks with `data_only`); a formula saved without its value is
  an empty cell;
- every cell becomes text predictably (`cell_text`: dates ISO 8601, whole numbers without
  ".0", booleans `true`/`false`); a cell over `limits.max_field_chars` or a nested value (a
  Parquet list or struct) makes its row a problem, and the next rows are still read;
- a sheet whose first rows name no known column has no rows and a problem of its own.

pandas is imported only here, and only when such a file is read; openpyxl and pyarrow are the
`spreadsheets` extra.
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import math
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ccub.config import Limits
from ccub.rows import LIMIT, MALFORMED, RawRow

SUFFIXES = (".xlsx", ".parquet")
EXTRA = "spreadsheets"
INSTALL = f"pip install 'ccub[{EXTRA}]'"
HEADER_SEARCH = 20  # non-empty rows searched for the header (title rows may come first)
_READER = {".xlsx": ("openpyxl", "an .xlsx workbook"), ".parquet": ("pyarrow", "a Parquet file")}


class SheetError(ValueError):
    """The file cannot be read at all (not a workbook, over a limit, a reader missing); phrased
    to follow the file's name."""

    def __init__(self, message: str, kind: str = MALFORMED):
        super().__init__(message)
        self.kind = kind  # LIMIT, MALFORMED, or "missing" (the extra is not installed)


@dataclass
class Sheet:
    name: str | None  # the sheet's name; None for Parquet (one table)
    header: list[str] = field(default_factory=list)  # lower-cased, stripped; "" for a column without a name
    header_line: int = 0  # the header's row number (Excel's numbering); 0 for Parquet
    rows: list[RawRow] = field(default_factory=list)  # value: column -> text or None
    problem: str | None = None  # why a sheet with cells gives no rows; phrased to follow "sheet 'X'"


def is_sheet_file(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _module(name: str, suffix: str) -> Any:
    package, what = _READER[suffix]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise SheetError(f"reading {what} needs {package}, which is not installed: {INSTALL}",
                         "missing") from exc


def cell_text(value: Any) -> str | None:
    """A cell as text; None for an empty cell. Raises TypeError for a nested value."""
    pd = _pd()
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, dt.datetime):  # also pandas' Timestamp
        if value.tzinfo is None and value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    raise TypeError(type(value).__name__)


def _pd() -> Any:
    import pandas

    return pandas


def _rows(frame: Any, start: int) -> list[tuple[int, list[Any]]]:
    """(row number, cells) of each row of a frame read without a header; `start`: the first's number."""
    return [(start + n, list(cells)) for n, cells in enumerate(frame.itertuples(index=False, name=None))]


def _texts(line: int, cells: list[Any], header: list[str], limits: Limits) -> RawRow | None:
    """The row as column -> text, or its problem; None for an empty row."""
    texts: list[str | None] = []
    for n, cell in enumerate(cells):
        column = header[n] if n < len(header) and header[n] else f"{n + 1}"
        try:
            text = cell_text(cell)
        except TypeError as exc:
            return RawRow(line, None, f"has a {exc} in column {column!r}, not text", MALFORMED, column)
        if text is not None and len(text) > limits.max_field_chars:
            return RawRow(line, None, f"has a cell of {len(text):,} characters in column {column!r}, over "
                          f"limits.max_field_chars ({limits.max_field_chars:,})", LIMIT, column)
        texts.append(text)
    if not any(t is not None and t.strip() for t in texts):
        return None
    # Columns without a name in the header are not read (notes beside the table).
    return RawRow(line, {name: text for name, text in zip(header, texts, strict=False) if name})


def _sheet(name: str | None, frame: Any, known: set[str], limits: Limits, first: int) -> Sheet:
    """A sheet from a frame read without a header; `first`: the number of its first row."""
    sheet = Sheet(name)
    rows = _rows(frame, first)
    if name is None:  # Parquet: the columns are named in the file
        sheet.header = [str(c).strip().lower() for c in frame.columns]
    else:
        searched = 0
        for index, (line, cells) in enumerate(rows):
            try:
                texts = [cell_text(c) for c in cells]
            except TypeError:
                texts = []
            if not any(t and t.strip() for t in texts):
                continue
            candidate = [(t or "").strip().lower() for t in texts]
            if set(candidate) & known:
                sheet.header, sheet.header_line, rows = candidate, line, rows[index + 1:]
                break
            searched += 1
            if searched >= HEADER_SEARCH:
                break
        if not sheet.header:  # an empty sheet has no rows and no problem: nothing in it is lost
            if searched:
                sheet.problem = (f"has no recognisable header row (none of its first {searched} non-empty "
                                 "row(s) names a column such as url, caption, country_code)")
            return sheet
    for line, cells in rows:
        row = _texts(line, cells, sheet.header, limits)
        if row is not None:
            sheet.rows.append(row)
    return sheet


def _xlsx(data: bytes, known: set[str], limits: Limits) -> list[Sheet]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SheetError(f"is not an .xlsx workbook ({exc})") from exc
    cap = limits.max_unpacked_mb * 1e6
    if unpacked > cap:
        raise SheetError(f"unpacks to {unpacked:,} bytes, over limits.max_unpacked_mb ({limits.max_unpacked_mb:g} "
                         "MB); it was not read (a zip bomb, or a workbook to split into smaller ones)", LIMIT)
    # openpyxl parses with defusedxml when it can import it; without it, a sheet's XML could expand
    # entities (billion laughs), so the workbook is not read at all.
    _module("openpyxl", ".xlsx")
    _module("defusedxml", ".xlsx")
    if not importlib.import_module("openpyxl.xml").DEFUSEDXML:
        raise SheetError(f"reading an .xlsx workbook needs openpyxl to parse with defusedxml: {INSTALL}", "missing")
    pd = _pd()
    try:
        frames = pd.read_excel(io.BytesIO(data), sheet_name=None, header=None, dtype=object, engine="openpyxl")
    except Exception as exc:  # openpyxl and pandas raise many kinds on a broken workbook
        raise SheetError(f"cannot be read as an .xlsx workbook ({type(exc).__name__}: {str(exc)[:200]})") from exc
    return [_sheet(str(name), frame, known, limits, 1) for name, frame in frames.items()]


def _parquet(data: bytes, limits: Limits) -> list[Sheet]:
    pq = _module("pyarrow.parquet", ".parquet")
    pa = _module("pyarrow", ".parquet")
    try:
        meta = pq.ParquetFile(pa.BufferReader(data)).metadata
        schema = meta.schema.to_arrow_schema()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise SheetError(f"cannot be read as Parquet ({type(exc).__name__}: {str(exc)[:200]})") from exc
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    cells = meta.num_rows * max(meta.num_columns, 1) * 8
    cap = limits.max_unpacked_mb * 1e6
    if max(unpacked, cells) > cap:
        raise SheetError(f"declares {meta.num_rows:,} rows of {meta.num_columns} column(s), {max(unpacked, cells):,} "
                         f"bytes unpacked, over limits.max_unpacked_mb ({limits.max_unpacked_mb:g} MB); it was not "
                         "read (split it into smaller files)", LIMIT)
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    pd = _pd()
    try:
        frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow", read_dictionary=text)
    except Exception as exc:
        raise SheetError(f"cannot be read as Parquet ({type(exc).__name__}: {str(exc)[:200]})") from exc
    frame = frame.astype(object)
    return [_sheet(None, frame, set(), limits, 1)]


def read_sheets(data: bytes, suffix: str, known: set[str], limits: Limits) -> list[Sheet]:
    """The sheets of an .xlsx workbook (in order) or the one table of a Parquet file.

    `known`: lower-cased column names that make a row a workbook sheet's header. Raises
    SheetError when the file cannot be read at all.
    """
    suffix = suffix.lower()
    if suffix == ".xlsx":
        return _xlsx(data, known, limits)
    if suffix == ".parquet":
        return _parquet(data, limits)
    raise SheetError(f"is not a workbook or Parquet file (use {', '.join(SUFFIXES)})")
