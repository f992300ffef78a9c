"""Column names people use, mapped onto record fields; shared by every reader."""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from ccub.config import Limits
from ccub.records import Finding, Record
from ccub.safeio import UnsafeFile
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
    line: int
    values: dict[str, Any]


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


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


def _decode(raw: bytes, rel: str, line: int, findings: list[Finding]) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        findings.append(Finding(
            "metadata.encoding",
            f"line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
            f"{exc.start + 1}); the row was skipped",
            file=rel, line=line))
        return None


def bounded_lines(fh: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes with the line ending) of each line; None for a line over `max_bytes`,
    which is skipped without being held in memory."""
    number = 0
    while raw := fh.readline(max_bytes + 1):
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # drain the rest of the over-long line
            yield number, None
        else:
            yield number, raw


_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(raw: bytes, limit: int) -> bool:
    """True when a JSON text nests arrays/objects deeper than `limit` (checked before parsing,
    which would otherwise recurse once per level)."""
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


def _longest_text(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((max(len(str(k)), _longest_text(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return max((_longest_text(v) for v in value), default=0)
    return 0


def _limit(rel: str, line: int, message: str) -> Finding:
    return Finding("metadata.limit", f"line {line} {message}; the row was skipped", file=rel,
                   line=line)


def read_jsonl(fh: BinaryIO, rel: str, findings: list[Finding], limits: Limits) -> Iterator[Row]:
    """Rows of a JSON-lines file; bad lines become findings and the rest is still read."""
    for line_no, raw in bounded_lines(fh, limits.max_line_bytes):
        if raw is None:
            findings.append(_limit(rel, line_no, f"is longer than limits.max_line_bytes "
                                                 f"({limits.max_line_bytes:,} bytes)"))
            continue
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        if json_too_deep(raw, limits.max_json_depth):
            findings.append(_limit(rel, line_no, f"nests JSON deeper than limits.max_json_depth "
                                                 f"({limits.max_json_depth})"))
            continue
        text = _decode(raw, rel, line_no, findings)
        if text is None:
            continue
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) \
                else "nested too deeply"
            findings.append(Finding("metadata.malformed", f"line {line_no} is not valid JSON "
                                    f"({detail})", file=rel, line=line_no))
            continue
        if not isinstance(value, dict):
            findings.append(Finding("metadata.malformed", f"line {line_no} is a JSON "
                                    f"{json_kind(value)}, not an object", file=rel, line=line_no))
            continue
        if _longest_text(value) > limits.max_field_chars:
            findings.append(_limit(rel, line_no, f"has a value longer than "
                                                 f"limits.max_field_chars ({limits.max_field_chars:,} "
                                                 "characters)"))
            continue
        yield Row(line_no, value)


@contextlib.contextmanager
def field_size_limit(chars: int) -> Iterator[None]:
    """csv's field limit, which is process-wide, set for one read."""
    previous = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_csv(fh: BinaryIO, rel: str, findings: list[Finding], limits: Limits,
             delimiter: str) -> Iterator[Row]:
    """Rows of a CSV/TSV file with a header; a row that cannot be read is a finding on its
    first line and the next rows are still read."""
    too_long: set[int] = set()

    def lines() -> Iterator[str]:
        for number, raw in bounded_lines(fh, limits.max_line_bytes):
            if raw is None:
                too_long.add(number)
                raw = b"\n"  # keeps the line count; the row holding it is skipped
            elif number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            # surrogateescape keeps bad bytes visible per row instead of failing the file.
            yield raw.decode("utf-8", errors="surrogateescape")

    reader = csv.reader(lines(), delimiter=delimiter)
    header: list[str] | None = None
    with field_size_limit(limits.max_field_chars):
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                check = "metadata.limit" if "field limit" in str(exc) else "metadata.malformed"
                detail = (f"has a cell longer than limits.max_field_chars "
                          f"({limits.max_field_chars:,} characters)") if check == "metadata.limit" \
                    else f"cannot be parsed ({exc})"
                findings.append(Finding(check, f"row starting on line {start} {detail}; the row "
                                        "was skipped", file=rel, line=start))
                continue
            if any(start <= n <= reader.line_num for n in too_long):
                findings.append(_limit(rel, start, f"is longer than limits.max_line_bytes "
                                                   f"({limits.max_line_bytes:,} bytes)"))
                continue
            if not cells:
                continue
            if any(_has_surrogates(c) for c in cells):
                findings.append(Finding(
                    "metadata.encoding",
                    f"row starting on line {start} is not valid UTF-8; the row was skipped",
                    file=rel, line=start))
                continue
            if header is None:
                header = cells
                continue
            if len(cells) > len(header):
                findings.append(Finding(
                    "metadata.malformed",
                    f"line {start} has more fields than the header ({len(header)})",
                    file=rel, line=start))
                continue
            yield Row(start, dict(zip(header, cells + [None] * (len(header) - len(cells)),
                                      strict=True)))


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


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
