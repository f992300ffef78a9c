"""Workbooks and Parquet tables of any content: every cell becomes text or a problem on its row,
and reading never raises anything but a SheetError about the whole file."""

from __future__ import annotations

import datetime
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccub.config import Limits
from ccub.rows import LIMIT, MALFORMED
from ccub.sheets import SheetError, read_sheets

openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (the spreadsheets extra) is absent")

KNOWN = {"url", "caption", "country_code", "category_code", "created_at"}
LIMITS = Limits(max_field_chars=200)
# What openpyxl can store in a cell: text without the XML-illegal control characters, numbers,
# booleans, dates and empty cells.
TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=300)
CELL = st.one_of(st.none(), TEXT, st.integers(-2**53, 2**53), st.floats(allow_nan=False, allow_infinity=False),
                 st.booleans(), st.dates(min_value=datetime.date(1900, 3, 1)))


def workbook(sheets: dict[str, list[list]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


HEADERS = st.lists(st.sampled_from(sorted(KNOWN) + ["notes", "", "URL "]), min_size=1, max_size=6)
NAMES = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sheets=st.dictionaries(NAMES, st.tuples(HEADERS, st.lists(st.lists(CELL, max_size=7), max_size=8)),
                              min_size=1, max_size=3))
def test_any_workbook_gives_text_cells_or_row_problems(sheets):
    data = workbook({name: [header, *rows] for name, (header, rows) in sheets.items()})
    try:
        found = read_sheets(data, ".xlsx", KNOWN, LIMITS)
    except SheetError as exc:  # only about the whole file, with a kind the callers map to a finding
        assert exc.kind in (LIMIT, MALFORMED) and str(exc)
        return
    assert {s.name for s in found} <= set(sheets)
    for sheet in found:
        for row in sheet.rows:
            if row.problem is not None:
                assert row.line >= 1 and isinstance(row.problem, str)
                continue
            assert isinstance(row.value, dict)
            for column, text in row.value.items():
                assert text is None or (isinstance(text, str) and len(text) <= LIMITS.max_field_chars), column


@settings(max_examples=30, deadline=None)
@given(columns=st.dictionaries(st.sampled_from(sorted(KNOWN)), st.lists(st.one_of(st.none(), TEXT), min_size=3,
                                                                       max_size=3), min_size=1))
def test_any_parquet_table_gives_text_cells_or_row_problems(columns):
    pa = pytest.importorskip("pyarrow", reason="pyarrow (the spreadsheets extra) is absent")
    pq = pytest.importorskip("pyarrow.parquet")
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    [sheet] = read_sheets(buffer.getvalue(), ".parquet", KNOWN, LIMITS)
    assert len(sheet.rows) <= 3  # a row with no value at all is blank, and skipped
    for row in sheet.rows:
        if row.problem is not None:  # a cell over max_field_chars
            assert any(v and len(v) > LIMITS.max_field_chars for values in columns.values() for v in values)
            continue
        assert set(row.value) <= set(columns)
        for column, text in row.value.items():
            # A cell's text is what the table holds (or nothing for an empty cell), never anything else.
            assert text is None or any(text in (v, v.strip()) for v in columns[column] if v is not None)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not a zip", b"\x00" * 100])
def test_a_broken_workbook_is_one_error_about_the_file(data):
    with pytest.raises(SheetError, match="is not an .xlsx workbook") as caught:
        read_sheets(data, ".xlsx", KNOWN, LIMITS)
    assert caught.value.kind == MALFORMED
