"""Reading and checking a CCUB URL manifest (CSV, TSV or JSONL); the manifest is only ever read.

Manifests come from strangers: the file is read a bounded line at a time, and a line, a cell or a
JSON value over the `[limits]` caps is a problem on its row while the other rows are still read.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from ccub.config import Limits
from ccub.fetch.client import public_url
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
SUFFIXES = (".csv", ".tsv", ".jsonl")
# Columns that must hold text (a JSONL value of another type is a problem); null is an absent optional.
TEXT_COLUMNS = {n for names in (*REQUIRED.values(), *OPTIONAL.values()) for n in names}
REQUIRED_NAMES = {n for names in REQUIRED.values() for n in names}
# What nesting depth needs looking at: quotes, escapes (inside strings) and brackets.
JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
JSON_TYPES = ((type(None), "null"), (bool, "boolean"), ((int, float), "number"), (str, "string"),
              (list, "array"), (dict, "object"))


class ManifestError(ValueError):
    """A manifest that cannot be read at all (missing file, unknown format, missing columns)."""


@dataclass
class Problem:
    line: int
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message} (fix: {self.fix})"


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
    duplicate_of: int | None = None  # line of the first row with the same URL


class Lines:
    """A file's lines as text, read with bounded memory.

    A line over `max_bytes` (line end included) is read to its end in bounded pieces and given as an
    empty line, so every later line keeps its number; its number is added to `too_long`.
    """

    def __init__(self, fh: BinaryIO, max_bytes: int):
        self.fh, self.max_bytes, self.number, self.too_long = fh, max_bytes, 0, []

    def __iter__(self) -> Iterator[str]:
        while line := self.fh.readline(self.max_bytes + 1):
            self.number += 1
            if len(line) > self.max_bytes:
                self.too_long.append(self.number)
                while line and not line.endswith(b"\n"):
                    line = self.fh.readline(self.max_bytes)
                yield "\n"
            else:
                yield line.decode("utf-8-sig" if self.number == 1 else "utf-8", errors="replace")

    def long_since(self, first: int) -> int | None:
        """The last line over the cap from line `first` on (lines are read in order), None when none."""
        return self.too_long[-1] if self.too_long and self.too_long[-1] >= first else None


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
    elif st.st_size > limits.max_metadata_mb * 1024 * 1024:
        problem = (f"is {st.st_size:,} bytes, over the {limits.max_metadata_mb:g} MB cap ([limits] "
                   "max_metadata_mb); split it into smaller manifests")
    if problem:
        os.close(fd)
        raise ManifestError(f"{path}: {problem}")
    return os.fdopen(fd, "rb")


def _too_long(line: int, long_line: int, limits: Limits) -> Problem:
    where = "" if long_line == line else f" (line {long_line})"
    return Problem(line, "-", f"a line longer than {limits.max_line_bytes:,} bytes{where} ([limits] "
                   "max_line_bytes); not read", "shorten its cells or split the row")


def _csv_records(lines: Lines, delimiter: str, limits: Limits
                 ) -> Iterator[tuple[int, list[str] | None, Problem | None]]:
    """(first line, cells, None) per record, or (first line, None, problem) for one that cannot be read.

    A record spanning several lines (a quoted newline) is numbered by its first line.
    """
    reader = csv.reader(lines, delimiter=delimiter)
    first = 1
    while True:
        try:
            cells, problem = next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:  # the rest of that line is skipped; the next record starts on the next line
            cells = None
            problem = Problem(first, "-", f"a cell longer than {limits.max_field_chars:,} characters ([limits] "
                              "max_field_chars)" if "field limit" in str(exc) else f"not readable as CSV ({exc})",
                              "shorten the cell, or quote cells that hold the delimiter or quotes")
        if (long_line := lines.long_since(first)) is not None:
            cells, problem = None, _too_long(first, long_line, limits)
        if problem or any(cell.strip() for cell in cells):  # blank lines are not rows
            yield first, cells, problem
        first = reader.line_num + 1


def _csv(lines: Lines, delimiter: str, limits: Limits) -> tuple[list[str], list[tuple[int, dict, list]]]:
    records = _csv_records(lines, delimiter, limits)
    header: list[str] = []
    for _line, cells, problem in records:
        if problem:
            raise ManifestError(f"the header cannot be read: {problem.message}")
        header = [cell.strip().lower() for cell in cells]
        break
    rows: list[tuple[int, dict, list]] = []
    for line, cells, problem in records:
        if problem:
            rows.append((line, {}, [problem]))
            continue
        extra = len(cells) - len(header)
        rows.append((line, dict(zip(header, cells, strict=False)), [] if extra <= 0 else [
            Problem(line, "-", f"{extra} more cell(s) than the header has columns",
                    "quote cells that contain the delimiter")]))
    return header, rows


def _json_too_deep(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit`: checked before parsing, since json's
    parser recurses once per level."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string = 0, False
    for token in JSON_TOKEN.findall(text):
        if token == '"':
            in_string = not in_string
        elif not in_string and token[0] != "\\":
            depth += 1 if token in "[{" else -1
            if depth > limit:
                return True
    return False


def _json_type(value: Any) -> str:
    return next(name for kind, name in JSON_TYPES if isinstance(value, kind))


def _finite(text: str) -> float:
    """A JSON number; NaN, Infinity and 1e999 are refused: they would make metadata.jsonl invalid JSON."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def _jsonl_row(line: int, text: str, limits: Limits) -> tuple[dict, list[Problem]]:
    """The object on one JSONL line and its problems; non-text CCUB columns and oversized strings are problems."""
    fix = "write one JSON object per line"
    if _json_too_deep(text, limits.max_json_depth):
        return {}, [Problem(line, "-", f"JSON nested deeper than {limits.max_json_depth} levels ([limits] "
                            "max_json_depth)", fix)]
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_finite)
    except json.JSONDecodeError as exc:
        return {}, [Problem(line, "-", f"not valid JSON ({exc.msg} at column {exc.colno})", fix)]
    except (ValueError, RecursionError) as exc:  # an integer too long to convert, NaN, a too deep value
        return {}, [Problem(line, "-", f"not valid JSON ({str(exc)[:200]})", fix)]
    if not isinstance(value, dict):
        return {}, [Problem(line, "-", f"a JSON {_json_type(value)}, not an object", fix)]
    row = {str(k).strip().lower(): v for k, v in value.items()}
    problems = []
    for key, v in row.items():
        if key in TEXT_COLUMNS and not isinstance(v, str) and (v is not None or key in REQUIRED_NAMES):
            problems.append(Problem(line, key, f"a JSON {_json_type(v)}, not text", f"write {key} as a JSON string"))
        elif isinstance(v, str) and len(v) > limits.max_field_chars:
            problems.append(Problem(line, key, f"longer than {limits.max_field_chars:,} characters ([limits] "
                                    "max_field_chars)", "shorten it"))
    return row, problems


def _jsonl(lines: Lines, limits: Limits) -> tuple[list[str], list[tuple[int, dict, list]]]:
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict, list]] = []
    for text in lines:
        if lines.long_since(lines.number) is not None:
            rows.append((lines.number, {}, [_too_long(lines.number, lines.number, limits)]))
        elif text.strip():
            row, problems = _jsonl_row(lines.number, text, limits)
            columns.update(dict.fromkeys(row))
            rows.append((lines.number, row, problems))
    return list(columns), rows


def _raw_rows(path: Path, limits: Limits) -> tuple[list[str], list[tuple[int, dict[str, Any], list[Problem]]]]:
    """Header columns (lower-cased) and (line, row, problems) per row; a row that cannot be read is empty."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ManifestError(f"{path}: unknown manifest format; use .csv, .tsv or .jsonl")
    with _open(path, limits) as fh:
        lines = Lines(fh, limits.max_line_bytes)
        if suffix == ".jsonl":
            return _jsonl(lines, limits)
        previous = csv.field_size_limit(limits.max_field_chars)  # process-wide: restored at once
        try:
            return _csv(lines, "\t" if suffix == ".tsv" else ",", limits)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from exc
        finally:
            csv.field_size_limit(previous)


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


def _check(line: int, values: dict[str, Any], problems: list[Problem], vocab: Vocabulary) -> Row:
    """A row from its values; `problems` (found while reading it) are kept, and one per column at most."""
    picked = {name: _pick(values, names) for name, names in REQUIRED.items()}
    url, caption = picked["url"][1], picked["caption"][1]
    country, category = picked["country_code"][1], picked["category_code"][1]
    row = Row(line, url, caption, country, category, vocab.culture(country), vocab.category(category),
              problems=list(problems))
    if problems and not values:  # the line could not be read: its problem says why
        return row
    col = {name: picked[name][0] or name for name in REQUIRED}
    reported = {p.field for p in problems}

    def add(name: str, message: str, fix: str) -> None:
        if col[name] not in reported:
            row.problems.append(Problem(line, col[name], message, fix))

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
    its first row is fetched.
    """
    path = Path(path)
    header, raw_rows = _raw_rows(path, limits or Limits())
    missing = [name for name, names in REQUIRED.items() if not set(names) & set(header)]
    if missing:
        problems = [p for _line, _values, found in raw_rows for p in found]
        problems.append(Problem(1, ", ".join(missing), f"missing column(s) {', '.join(missing)} "
                                f"(found: {', '.join(header) or 'none'})",
                                "add the CCUB columns url, caption, country_code, category_code"))
        return [], problems
    seen: dict[str, int] = {}
    rows: list[Row] = []
    problems = []
    for line, values, found in raw_rows:
        row = _check(line, values, found, vocab)
        problems.extend(row.problems)
        if row.url and not row.problems:
            if row.url in seen:
                row.duplicate_of = seen[row.url]
                column = _pick(values, REQUIRED["url"])[0] or "url"
                problems.append(Problem(line, column, f"duplicate URL (first on line {seen[row.url]}); "
                                        "fetched once", "remove the repeated row"))
            else:
                seen[row.url] = line
        rows.append(row)
    if not raw_rows:
        problems.append(Problem(1, "-", "the manifest has no rows", "add one row per image"))
    return rows, problems
