"""Reading and checking a CCUB URL manifest (CSV, TSV or JSONL); the manifest is only ever read."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def _raw_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]], list[Problem]]:
    """Header columns (lower-cased), (line, row) pairs and rows that could not be parsed."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ManifestError(f"{path}: unknown manifest format; use .csv, .tsv or .jsonl")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from exc
    text = data.decode("utf-8-sig", errors="replace")
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[Problem] = []
    if suffix == ".jsonl":
        columns: dict[str, None] = {}
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(line_no, "-", f"not valid JSON ({exc.msg} at column {exc.colno})",
                                        "write one JSON object per line"))
                continue
            if not isinstance(value, dict):
                problems.append(Problem(line_no, "-", f"a JSON {type(value).__name__}, not an object",
                                        "write one JSON object per line"))
                continue
            row = {str(k).strip().lower(): v for k, v in value.items()}
            columns.update(dict.fromkeys(row))
            rows.append((line_no, row))
        return list(columns), rows, problems
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    header = [str(c).strip().lower() for c in reader.fieldnames or []]
    start = reader.line_num + 1
    for raw in reader:
        row = {str(k).strip().lower(): v for k, v in raw.items() if k is not None}
        if None in raw:
            problems.append(Problem(start, "-", f"{len(raw[None])} more cell(s) than the header has columns",
                                    "quote cells that contain the delimiter"))
        rows.append((start, row))
        start = reader.line_num + 1
    return header, rows, problems


def _pick(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, str]:
    """(column used, its text) for the first of `names` present in the row."""
    for name in names:
        if name in row:
            value = row[name]
            return name, "" if value is None else str(value).strip()
    return None, ""


def read_manifest(path: Path, vocab: Vocabulary) -> tuple[list[Row], list[Problem]]:
    """The manifest's rows and every problem found in it; ManifestError when it cannot be used at all.

    Rows with problems are still returned (their `problems` say why they cannot be fetched);
    a duplicate URL is reported and only its first row is fetched.
    """
    path = Path(path)
    header, raw_rows, problems = _raw_rows(path)
    missing = [name for name, names in REQUIRED.items() if not set(names) & set(header)]
    if missing:
        problems.append(Problem(1, ", ".join(missing), f"missing column(s) {', '.join(missing)} "
                                f"(found: {', '.join(header) or 'none'})",
                                "add the CCUB columns url, caption, country_code, category_code"))
        return [], problems
    used = {n for names in REQUIRED.values() for n in names}
    seen: dict[str, int] = {}
    rows: list[Row] = []
    for line, values in raw_rows:
        picked = {name: _pick(values, names) for name, names in REQUIRED.items()}
        url, caption = picked["url"][1], picked["caption"][1]
        country, category = picked["country_code"][1], picked["category_code"][1]
        row = Row(line, url, caption, country, category, vocab.culture(country), vocab.category(category))
        col = {name: picked[name][0] or name for name in REQUIRED}
        parts = urlsplit(url) if url else None
        if not url:
            row.problems.append(Problem(line, col["url"], "empty URL", "give the image's http(s) address"))
        elif parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            row.problems.append(Problem(line, col["url"], f"not an http(s) URL: {url[:200]!r}",
                                        "give the image's http(s) address"))
        if not caption:
            row.problems.append(Problem(line, col["caption"], "empty caption",
                                        "describe the image in a sentence"))
        if row.culture is None:
            row.problems.append(Problem(line, col["country_code"], f"unknown country code {country!r}"
                                        if country else "empty country code",
                                        "use an ISO 3166 alpha-3 code such as KOR (`ccub checks --vocabulary`), "
                                        "or add the culture to ccub.toml"))
        if row.category is None:
            row.problems.append(Problem(line, col["category_code"], f"unknown category code {category!r}"
                                        if category else "empty category code",
                                        "use a CCUB code such as ARCH, CLOTH, FOOD (`ccub checks --vocabulary`)"))
        if url and not row.problems:
            if url in seen:
                row.duplicate_of = seen[url]
                problems.append(Problem(line, col["url"], f"duplicate URL (first on line {seen[url]}); "
                                        "fetched once", "remove the repeated row"))
            else:
                seen[url] = line
        for name, names in OPTIONAL.items():
            column, value = _pick(values, names)
            if column and value:
                row.extra[name] = value
        taken = used | {n for names in OPTIONAL.values() for n in names}
        row.extra.update({k: v for k, v in values.items() if k not in taken and v not in (None, "")})
        problems.extend(row.problems)
        rows.append(row)
    if not raw_rows:
        problems.append(Problem(1, "-", "the manifest has no rows", "add one row per image"))
    return rows, problems
