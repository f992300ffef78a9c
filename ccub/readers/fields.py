"""Column names people use, mapped onto record fields; shared by every reader."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from ccub.config import Limits
from ccub.records import Finding, Record
from ccub.rows import ENCODING, LIMIT, MALFORMED, RawRow, csv_rows, json_kind, json_too_deep, jsonl_rows
from ccub.safeio import UnsafeFile
from ccub.sheets import Sheet, SheetError, read_sheets
from ccub.vocab import Vocabulary

if TYPE_CHECKING:
    from ccub.readers import Tree

# Record field -> accepted column names, most specific first.
ALIASES: dict[str, tuple[str, ...]] = {
    "caption": ("text", "caption", "description"),
    "culture": ("culture", "country", "country_code"),
    "category": ("category", "category_code"),
    "license": ("license", "licence", "license_spdx"),
    "creator": ("creator", "author", "attribution", "photographer"),
    "contributor": ("contributor", "contributor_id", "submitted_by"),
    "consent": ("consent", "people_consent", "model_release"),
    "language": ("language", "lang", "caption_language"),
    "caption_source": ("caption_source",),
    "blip_text": ("blip_text", "generic_caption"),
    "negatives": ("negative_imgpath", "negatives"),
    "created_at": ("created_at", "date"),
    "split": ("split",),
}
FILE_COLUMNS = ("file_name", "path", "image", "file")
URL_COLUMNS = ("url", "image_url")
SPLIT_NAMES = {"train": "train", "test": "test", "validation": "validation",
               "valid": "validation", "val": "validation"}
_KNOWN = {name for names in ALIASES.values() for name in names} | set(FILE_COLUMNS) | set(URL_COLUMNS)


@dataclass
class Row:
    line: int  # the line (CSV, TSV, JSONL) or row number (workbook, as the spreadsheet shows it; Parquet)
    values: dict[str, Any]
    sheet: str | None = None  # the workbook sheet


def table_label(rel: str, sheet: str | None) -> str:
    """A table's name in findings and sources: the file, or `book.xlsx#Korea` for a sheet (as in
    a spreadsheet link; a sheet's name cannot hold `/`, `:` or brackets)."""
    return rel if sheet is None else f"{rel}#{sheet}"


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return text or None


def _typed(name: str, value: Any, vocab: Vocabulary) -> tuple[Any, str | None]:
    """(value for the record field `name`, problem) for a cell read from metadata."""
    if name == "negatives":
        if isinstance(value, str) or (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            return _negatives(value), None
        return None, f"is a JSON {json_kind(value)}; give a list of paths"
    if name == "caption":
        # A number is no caption: the row's author put something else in the column.
        return (value, None) if isinstance(value, str) else \
            (None, f"is a JSON {json_kind(value)}, not text")
    text = _text(value)
    if text is None:
        return None, f"is a JSON {json_kind(value)}, not text"
    if name == "culture":
        return vocab.culture(text) or text, None
    if name == "category":
        return vocab.category(text) or text, None
    if name == "split":
        return SPLIT_NAMES.get(text.lower(), text), None
    return text, None


def apply_row(record: Record, row: dict[str, Any], vocab: Vocabulary, where: str,
              findings: list[Finding], line: int | None = None) -> None:
    """Fill the record from a metadata row; columns nobody maps go to `extra`; a value of the
    wrong type is a finding on the record and is not used."""
    lower = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for name, columns in ALIASES.items():
        for column in columns:
            if column in lower and lower[column] not in (None, "", []):
                value, problem = _typed(name, lower[column], vocab)
                if problem:
                    findings.append(Finding("metadata.field_type", f"{column} {problem}",
                                            record=record.key, file=where, field=column,
                                            line=line))
                else:
                    record.set(name, value, f"{where} column '{column}'")
                break
    record.extra.update({k: v for k, v in lower.items() if k not in _KNOWN})


def _negatives(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if v.strip()]
    text = value.strip()
    if text.startswith("["):
        # A JSON list written into a CSV cell; anything else is a ';'-separated list.
        with contextlib.suppress(json.JSONDecodeError, RecursionError):
            parsed = json.loads(text)
            if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
                return parsed
            return [text]
    return [part.strip() for part in text.split(";") if part.strip()]


_CHECKS = {LIMIT: "metadata.limit", MALFORMED: "metadata.malformed", ENCODING: "metadata.encoding"}


def _problem(rel: str, row: RawRow) -> Finding:
    return Finding(_CHECKS[row.kind], f"line {row.line} {row.problem}; the row was skipped",
                   file=rel, line=row.line)


def read_jsonl(fh: BinaryIO, rel: str, findings: list[Finding], limits: Limits) -> Iterator[Row]:
    """Rows of a JSON-lines file; bad lines become findings and the rest is still read."""
    for row in jsonl_rows(fh, limits):
        if row.problem:
            findings.append(_problem(rel, row))
        elif not isinstance(row.value, dict):
            findings.append(Finding("metadata.malformed", f"line {row.line} is a JSON "
                                    f"{json_kind(row.value)}, not an object", file=rel,
                                    line=row.line))
        else:
            yield Row(row.line, row.value)


def read_csv(fh: BinaryIO, rel: str, findings: list[Finding], limits: Limits,
             delimiter: str) -> Iterator[Row]:
    """Rows of a CSV/TSV file with a header; a row that cannot be read is a finding on its
    first line and the next rows are still read."""
    header: list[str] | None = None
    for row in csv_rows(fh, limits, delimiter):
        if row.problem:
            findings.append(_problem(rel, row))
        elif header is None:
            header = row.value
        elif len(row.value) > len(header):
            findings.append(Finding("metadata.malformed", f"line {row.line} has more fields "
                                    f"than the header ({len(header)})", file=rel, line=row.line))
        else:
            cells = row.value + [None] * (len(header) - len(row.value))
            yield Row(row.line, dict(zip(header, cells, strict=True)))


def read_table(tree: Tree, rel: str, findings: list[Finding]) -> Iterator[Row]:
    """Rows of a metadata file or manifest under the root, read safely and within the limits."""
    limits = tree.limits
    try:
        with tree.source.open(rel) as (fh, identity):
            if identity.size > limits.max_metadata_mb * 1e6:
                findings.append(Finding("metadata.limit", f"{identity.size / 1e6:,.0f} MB is over "
                                        f"limits.max_metadata_mb ({limits.max_metadata_mb:g}); "
                                        "the file was not read", file=rel))
                return
            suffix = PurePosixPath(rel).suffix.lower()
            if suffix == ".jsonl":
                yield from read_jsonl(fh, rel, findings, limits)
            else:
                yield from read_csv(fh, rel, findings, limits, "\t" if suffix == ".tsv" else ",")
    except UnsafeFile as exc:
        findings.append(Finding(exc.check, str(exc), file=rel))


def read_sheet_file(tree: Tree, rel: str, findings: list[Finding]) -> list[Sheet]:
    """The sheets of a workbook (or the table of a Parquet file) under the root, read safely and
    within the limits; a file that cannot be read is a finding and gives no sheets."""
    limits = tree.limits
    try:
        with tree.source.open(rel) as (fh, identity):
            if identity.size > limits.max_metadata_mb * 1e6:
                findings.append(Finding("metadata.limit", f"{identity.size / 1e6:,.0f} MB is over "
                                        f"limits.max_metadata_mb ({limits.max_metadata_mb:g}); "
                                        "the file was not read", file=rel))
                return []
            data = fh.read()
    except UnsafeFile as exc:
        findings.append(Finding(exc.check, str(exc), file=rel))
        return []
    try:
        return read_sheets(data, PurePosixPath(rel).suffix, _KNOWN, limits)
    except SheetError as exc:
        check = {LIMIT: "metadata.limit", "missing": "file.unreadable"}.get(exc.kind, "metadata.malformed")
        findings.append(Finding(check, f"{exc}; the file was not read", file=rel))
        return []


def sheet_rows(rel: str, sheets: list[Sheet], findings: list[Finding]) -> Iterator[Row]:
    """The rows of every sheet; a sheet without a header and a row that cannot be read are
    findings naming the sheet (`book.xlsx#Korea`) and the row, and the rest is still read."""
    for sheet in sheets:
        label = table_label(rel, sheet.name)
        if sheet.problem:
            findings.append(Finding("metadata.malformed", f"sheet {sheet.name!r} {sheet.problem}; it "
                                    "was not read", file=label))
        for raw in sheet.rows:
            if raw.problem:
                findings.append(Finding(_CHECKS[raw.kind], f"row {raw.line} {raw.problem}; the row was "
                                        "skipped", file=label, line=raw.line, field=raw.column))
            else:
                yield Row(raw.line, raw.value, sheet.name)


def header_of(tree: Tree, rel: str) -> set[str]:
    """Lower-cased column names of a CSV/TSV/JSONL file, from its first row (empty when the
    file cannot be read safely: it is then not taken for a manifest)."""
    try:
        with tree.source.open(rel) as (fh, _):
            first = fh.readline(1 << 16)
    except UnsafeFile:
        return set()
    first = first.decode("utf-8", errors="replace").lstrip("\ufeff")
    if rel.lower().endswith(".jsonl"):
        if json_too_deep(first.encode(), tree.limits.max_json_depth):
            return set()
        try:
            value = json.loads(first)
        except (json.JSONDecodeError, RecursionError):
            return set()
        return {str(k).lower() for k in value} if isinstance(value, dict) else set()
    delimiter = "\t" if rel.lower().endswith(".tsv") else ","
    try:
        return {c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])}
    except csv.Error:
        return set()


def first_value(row: dict[str, Any], columns: tuple[str, ...]) -> str | None:
    """The first non-empty text value among `columns` (matched case-insensitively)."""
    lower = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for column in columns:
        if _text(lower.get(column)):
            return _text(lower[column])
    return None
