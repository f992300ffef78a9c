"""Folder trees `<culture>/<category>/<image>` with sidecar `.txt` captions or captions.csv."""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath

from ccub.readers import Tree
from ccub.readers.fields import FILE_COLUMNS, apply_row, first_value, read_table
from ccub.records import Finding, Record
from ccub.vocab import Vocabulary

CAPTIONS_CSV = "captions.csv"


def _caption_rows(tree: Tree, findings: list[Finding]) -> dict[str, tuple[str, dict]]:
    """Image path -> (origin, row) from every captions.csv (paths relative to the csv)."""
    rows: dict[str, tuple[str, dict]] = {}
    for table in (f for f in tree.files if posixpath.basename(f) == CAPTIONS_CSV):
        folder = posixpath.dirname(table)
        for row in read_table(tree, table, findings):
            value = first_value(row.values, FILE_COLUMNS)
            rel, problem = tree.resolve(folder, value) if value else (None, "no file_name")
            if problem or rel is None:
                findings.append(Finding("metadata.malformed", f"line {row.line}: {problem}",
                                        file=table, line=row.line, field="file_name"))
                continue
            rows[rel] = (f"{table}:{row.line}", row.values)
    return rows


def _sidecar(tree: Tree, image: str) -> str | None:
    path = PurePosixPath(image)
    listed = set(tree.files) | set(tree.special)
    return next((c for c in (str(path) + ".txt", str(path.with_suffix(".txt"))) if c in listed),
                None)


def _read_sidecar(tree: Tree, record: Record, sidecar: str, findings: list[Finding]) -> None:
    # A caption file is read like any other: a symlink out of the root, a FIFO or a huge
    # file is a finding on the record, never its caption.
    if sidecar in tree.special:
        findings.append(Finding("file.not_regular", f"caption file is {tree.special[sidecar]}, "
                                "not a regular file; it was not read", record=record.key,
                                file=sidecar, field="caption"))
        return
    data = tree.read_bytes(sidecar, findings, record=record.key, field="caption")
    if data is None:
        return
    try:
        record.set("caption", data.decode("utf-8"), f"sidecar {sidecar}")
    except UnicodeDecodeError as exc:
        findings.append(Finding("metadata.encoding", f"caption file is not valid UTF-8 "
                                f"(byte {exc.start + 1}); save it as UTF-8",
                                record=record.key, file=sidecar, field="caption"))


def read(tree: Tree, vocab: Vocabulary, findings: list[Finding], claimed: set[str]
         ) -> list[Record]:
    tables = _caption_rows(tree, findings)
    records = []
    for image in tree.images():
        if image in claimed:
            continue
        claimed.add(image)
        record = Record(key=image, origin=image, image=image)
        if image in tables:
            record.origin, row = tables[image]
            table, line = record.origin.rsplit(":", 1)
            apply_row(record, row, vocab, table, findings, int(line))
        elif sidecar := _sidecar(tree, image):
            record.origin = sidecar
            claimed.add(sidecar)
            _read_sidecar(tree, record, sidecar, findings)
        problem = tree.escapes(image)
        if problem:
            findings.append(Finding("file.outside_root", problem, record=record.key, file=image))
            record.image = None
        records.append(record)
    return records
