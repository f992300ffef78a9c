"""Manifests in the style of the public CCUB release: one row per image, codes and a URL.

CSV, TSV and JSONL files, and .xlsx workbooks (every sheet) and Parquet files read through
`ccub.sheets`; a sheet without a culture column takes its culture from its name (`Korea`, `KOR`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from ccub.readers import Tree, is_manifest, manifest_columns
from ccub.readers.fields import (
    ALIASES,
    FILE_COLUMNS,
    URL_COLUMNS,
    Row,
    apply_row,
    first_value,
    read_sheet_file,
    read_table,
    sheet_rows,
    table_label,
)
from ccub.records import Finding, Record
from ccub.sheets import is_sheet_file
from ccub.vocab import Vocabulary


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://", "ftp://"))


def _manifests(tree: Tree, findings: list[Finding]) -> Iterator[tuple[str, Iterator[Row], set[str]]]:
    """(file, its rows, the sheets that name no culture column) of every manifest in the tree."""
    for rel in tree.files:
        if is_sheet_file(rel):
            sheets = read_sheet_file(tree, rel, findings)
            if any(manifest_columns(set(sheet.header)) for sheet in sheets):
                unnamed = {s.name for s in sheets if s.name is not None and not set(ALIASES["culture"]) & set(s.header)}
                yield rel, sheet_rows(rel, sheets, findings), unnamed
        elif is_manifest(tree, rel):
            yield rel, read_table(tree, rel, findings), set()


def read(tree: Tree, vocab: Vocabulary, findings: list[Finding], claimed: set[str]
         ) -> list[Record]:
    records: list[Record] = []
    for path, rows, unnamed in _manifests(tree, findings):
        folder = posixpath.dirname(path)
        for row in rows:
            manifest = table_label(path, row.sheet)
            where = f"{manifest}:{row.line}"
            url = first_value(row.values, URL_COLUMNS)
            local = first_value(row.values, FILE_COLUMNS)
            if local is None and url and not _is_url(url):
                local, url = url, None
            rel, problem = tree.resolve(folder, local) if local else (None, None)
            if rel is not None and rel in claimed:
                findings.append(Finding("metadata.duplicate_row", f"'{local}' is already "
                                        "listed elsewhere; this row was skipped",
                                        file=manifest, line=row.line, field="path"))
                continue
            record = Record(key=rel or where, origin=where, image=rel, url=url)
            apply_row(record, row.values, vocab, manifest, findings, row.line)
            if row.sheet in unnamed and not record.culture and (slug := vocab.culture(row.sheet)):
                record.set("culture", slug, f"{manifest} sheet name")
            if problem:
                findings.append(Finding("file.outside_root", problem, record=record.key,
                                        file=manifest, line=row.line, field="path"))
                # A symlink inside the folder has its row: not also a folder-tree record.
                claimed.add(posixpath.normpath(posixpath.join(folder, local.replace("\\", "/"))))
            elif rel is None and url:
                findings.append(Finding("file.not_downloaded", f"only a URL is given ({url})",
                                        record=record.key, file=manifest, line=row.line,
                                        field="url"))
            elif rel is None:
                unit = "row" if is_sheet_file(path) else "line"
                findings.append(Finding("metadata.malformed", f"{unit} {row.line} has neither a "
                                        "url nor a path", file=manifest, line=row.line,
                                        record=record.key, field="url"))
            elif bad := tree.problem(rel, local):
                findings.append(Finding(bad[0], bad[1], record=record.key, file=manifest,
                                        line=row.line, field="path"))
            if rel:
                claimed.add(rel)
            records.append(record)
    return records
