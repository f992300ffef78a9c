"""Rows of untrusted tables (CSV, TSV, JSON lines), read with bounded memory.

Metadata files, fetch manifests and study responses all come from strangers. Each row is
numbered by the line it starts on (a quoted CSV cell may span lines) and comes with the
problem that makes it unusable, if any: a line over `max_line_bytes` (skipped unread), a
cell or text over `max_field_chars`, JSON nested deeper than `max_json_depth` (refused
before parsing, since the parser recurses once per level), bytes that are not UTF-8, or
text that does not parse. One bad row never stops the reading of the next.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ccub.config import Limits

LIMIT, MALFORMED, ENCODING = "limit", "malformed", "encoding"
_BOM = b"\xef\xbb\xbf"
_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class RawRow:
    line: int  # the line the row starts on, counted from 1
    value: Any  # CSV: the list of cells; JSON lines: the parsed value; None with a problem
    problem: str | None = None  # what is wrong, phrased to follow "line N ..."
    kind: str = ""  # LIMIT, MALFORMED or ENCODING when there is a problem
    column: str | None = None  # the column the problem is in, when one cell is (workbooks, Parquet)


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def bounded_lines(fh: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes with the line ending) of each line; None for a line over `max_bytes`,
    which is skipped without being held in memory. A leading UTF-8 BOM is dropped."""
    number = 0
    while raw := fh.readline(max_bytes + 1):
        number += 1
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            rest = raw
            while rest and not rest.endswith(b"\n"):  # drain the rest of the over-long line
                rest = fh.readline(1 << 20)
            yield number, None
        else:
            yield number, raw


def json_too_deep(raw: bytes, limit: int) -> bool:
    """True when a JSON text nests arrays/objects deeper than `limit`."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the common case, decided without a scan
    depth = 0
    for match in _BRACKETS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _texts(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, text) for every string, key or value, in a parsed JSON value; `where` is a path
    such as `answers[3].ranking` (list positions counted from 1, as people count rows)."""
    if isinstance(value, str):
        yield path or "the value", value
    elif isinstance(value, dict):
        for key, inner in value.items():
            inside = f"{path}.{key}" if path else str(key)
            yield f"a key of {path or 'the object'}", key
            yield from _texts(inner, inside)
    elif isinstance(value, list):
        for n, inner in enumerate(value, start=1):
            yield from _texts(inner, f"{path}[{n}]")


def text_problem(value: Any, max_chars: int) -> tuple[str, str] | None:
    """(problem, kind) for a parsed JSON value holding a text longer than `max_chars`, or an
    unpaired surrogate (JSON may write "\\ud800"; no UTF-8 file can hold it)."""
    for where, text in _texts(value):
        if len(text) > max_chars:
            return (f"has a text of {len(text):,} characters at {where}, over "
                    f"limits.max_field_chars ({max_chars:,})"), LIMIT
        if _SURROGATE.search(text):
            return (f"has an unpaired surrogate (\\ud800-\\udfff) at {where}, which is not "
                    "text"), ENCODING
    return None


def _finite(text: str) -> float:
    # NaN, Infinity and 1e999 would be written back as invalid JSON.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def parse_json(raw: bytes, limits: Limits) -> tuple[Any, str | None, str]:
    """(value, problem, kind) for one JSON text: bounded in depth and text length, finite
    numbers only, UTF-8 only (a leading BOM is allowed)."""
    if json_too_deep(raw, limits.max_json_depth):
        return None, f"nests JSON deeper than limits.max_json_depth ({limits.max_json_depth})", LIMIT
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, (f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                      f"{exc.start + 1})"), ENCODING
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_finite)
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg} at column {exc.colno})", MALFORMED
    except (ValueError, RecursionError) as exc:  # NaN, a 5,000-digit integer
        return None, f"is not valid JSON ({str(exc)[:120]})", MALFORMED
    if found := text_problem(value, limits.max_field_chars):
        return None, *found
    return value, None, ""


def _too_long(limits: Limits) -> str:
    return f"is longer than limits.max_line_bytes ({limits.max_line_bytes:,} bytes)"


def jsonl_rows(fh: BinaryIO, limits: Limits) -> Iterator[RawRow]:
    """The value on each non-blank line of a JSON-lines file."""
    for line, raw in bounded_lines(fh, limits.max_line_bytes):
        if raw is None:
            yield RawRow(line, None, _too_long(limits), LIMIT)
        elif raw.strip():
            value, problem, kind = parse_json(raw, limits)
            yield RawRow(line, value, problem, kind)


@contextlib.contextmanager
def field_size_limit(chars: int) -> Iterator[None]:
    """csv's field limit, which is process-wide, set for one read."""
    previous = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _has_surrogates(cells: list[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for cell in cells for ch in cell)


def csv_rows(fh: BinaryIO, limits: Limits, delimiter: str = ",") -> Iterator[RawRow]:
    """The cells of each non-blank record of a CSV/TSV file (the header is the first)."""
    too_long: set[int] = set()

    def lines() -> Iterator[str]:
        for number, raw in bounded_lines(fh, limits.max_line_bytes):
            if raw is None:
                too_long.add(number)
                raw = b"\n"  # keeps the line count; the record holding it is refused
            # surrogateescape keeps bad bytes visible per record instead of failing the file.
            yield raw.decode("utf-8", errors="surrogateescape")

    reader = csv.reader(lines(), delimiter=delimiter)
    header: list[str] | None = None
    # csv's own limit only backs up the line limit (it names no column); cells are measured below.
    with field_size_limit(max(limits.max_line_bytes, limits.max_field_chars)):
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RawRow(start, None, f"cannot be read as CSV ({exc})",
                             LIMIT if "field limit" in str(exc) else MALFORMED)
                continue
            long = next((n for n, cell in enumerate(cells) if len(cell) > limits.max_field_chars),
                        None)
            if any(start <= n <= reader.line_num for n in too_long):
                yield RawRow(start, None, _too_long(limits), LIMIT)
            elif long is not None:
                column = repr(header[long]) if header and long < len(header) else long + 1
                yield RawRow(start, None, f"has a cell of {len(cells[long]):,} characters in column "
                             f"{column}, over limits.max_field_chars ({limits.max_field_chars:,})",
                             LIMIT)
            elif _has_surrogates(cells):
                yield RawRow(start, None, "is not valid UTF-8", ENCODING)
            elif any(cell.strip() for cell in cells):
                header = cells if header is None else header
                yield RawRow(start, cells)
