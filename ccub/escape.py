"""Contributor text written into files people open: spreadsheets (CSV) and Markdown.

JSON outputs keep exact values; these writers make sure a spreadsheet never runs a cell as a
formula and a Markdown viewer never renders a cell as HTML, a link or a table break.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any

# Spreadsheets evaluate a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Inline Markdown and HTML syntax; line-start syntax (#, -, 1.) cannot occur because
# newlines are folded into spaces.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|&~")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def spreadsheet_cell(value: Any) -> Any:
    """`value`, with text that a spreadsheet would run as a formula prefixed by an apostrophe.

    Numbers, and text that is a plain number such as "-0.5", are kept as they are.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def unescape_cell(cell: str) -> str:
    """The text `spreadsheet_cell` was given, from the cell it wrote: the apostrophe it added is
    dropped. Ambiguous only for text that itself began with an apostrophe and then a formula
    character ("'=x" is read as "=x"); readers that know the names written map them exactly."""
    if cell.startswith("'") and spreadsheet_cell(cell[1:]) == cell:
        return cell[1:]
    return cell


def csv_text(rows: Iterable[dict[str, Any]], columns: list[str], delimiter: str = ",") -> str:
    """CSV with a header; every cell passed through `spreadsheet_cell`; other keys ignored.

    Lines end in CRLF (RFC 4180, what spreadsheets write): the csv module quotes a cell only for
    the characters of its line terminator, and a bare CR in an unquoted cell ends the row for
    every reader."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", delimiter=delimiter,
                            lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: spreadsheet_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def markdown_text(value: Any, max_chars: int | None = None) -> str:
    """`value` as inline Markdown text: on one line, every character Markdown or HTML would
    interpret backslash-escaped, cut to `max_chars` characters."""
    text = "" if value is None else str(value)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + "…"
    text = " ".join(text.split())
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
