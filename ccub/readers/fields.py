"""Column names people use, mapped onto record fields; shared by every reader."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccub.records import Finding, Record
from ccub.vocab import Vocabulary

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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def apply_row(record: Record, row: dict[str, Any], vocab: Vocabulary, where: str) -> None:
    """Fill the record from a metadata row; columns nobody maps go to `extra`."""
    lower = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for name, columns in ALIASES.items():
        for column in columns:
            if column in lower and lower[column] not in (None, "", []):
                value = lower[column]
                if name == "negatives":
                    value = _negatives(value)
                elif name == "culture":
                    value = vocab.culture(_text(value)) or _text(value)
                elif name == "category":
                    value = vocab.category(_text(value)) or _text(value)
                elif name == "split":
                    value = SPLIT_NAMES.get(str(value).strip().lower(), _text(value))
                elif name != "caption":
                    value = _text(value)
                record.set(name, value, f"{where} column '{column}'")
                break
    record.extra.update({k: v for k, v in lower.items() if k not in _KNOWN})


def _negatives(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        # A JSON list written into a CSV cell; anything else is a ';'-separated list.
        with contextlib.suppress(json.JSONDecodeError):
            parsed = json.loads(text)
            return [str(v) for v in parsed] if isinstance(parsed, list) else [text]
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


def read_jsonl(path: Path, rel: str, findings: list[Finding]) -> Iterator[Row]:
    """Rows of a JSON-lines file; bad lines become findings and the rest is still read."""
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            text = _decode(raw, rel, line_no, findings)
            if text is None:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                findings.append(Finding(
                    "metadata.malformed",
                    f"line {line_no} is not valid JSON ({exc.msg} at column {exc.colno})",
                    file=rel, line=line_no))
                continue
            if not isinstance(value, dict):
                findings.append(Finding(
                    "metadata.malformed",
                    f"line {line_no} is a JSON {type(value).__name__}, not an object",
                    file=rel, line=line_no))
                continue
            yield Row(line_no, value)


def read_csv(path: Path, rel: str, findings: list[Finding]) -> Iterator[Row]:
    """Rows of a CSV/TSV file with a header; undecodable rows become findings."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # surrogateescape keeps bad bytes visible per row instead of failing the whole file.
    text = data.decode("utf-8", errors="surrogateescape")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            line = reader.line_num
            if any(isinstance(v, str) and _has_surrogates(v) for v in row.values()):
                findings.append(Finding(
                    "metadata.encoding",
                    f"row ending on line {line} is not valid UTF-8; the row was skipped",
                    file=rel, line=line))
                continue
            if None in row:
                findings.append(Finding(
                    "metadata.malformed",
                    f"line {line} has more fields than the header ({len(reader.fieldnames or [])})",
                    file=rel, line=line))
                continue
            yield Row(line, dict(row))
    except csv.Error as exc:
        findings.append(Finding("metadata.malformed", f"line {reader.line_num}: {exc}; "
                                "the rest of the file was not read", file=rel,
                                line=reader.line_num))


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def read_table(path: Path, rel: str, findings: list[Finding]) -> Iterator[Row]:
    if path.suffix.lower() == ".jsonl":
        return read_jsonl(path, rel, findings)
    return read_csv(path, rel, findings)


def header_of(path: Path) -> set[str]:
    """Lower-cased column names of a CSV/TSV/JSONL file, from its first row."""
    try:
        with path.open("rb") as fh:
            first = fh.readline(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff")
    except OSError:
        return set()
    if path.suffix.lower() == ".jsonl":
        try:
            value = json.loads(first)
        except json.JSONDecodeError:
            return set()
        return {str(k).lower() for k in value} if isinstance(value, dict) else set()
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return {c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])}


def first_value(row: dict[str, Any], columns: tuple[str, ...]) -> str | None:
    """The first non-empty value among `columns` (matched case-insensitively)."""
    lower = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for column in columns:
        if _text(lower.get(column)):
            return _text(lower[column])
    return None
