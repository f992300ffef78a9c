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
        for row in read_table(tree.root / table, table, findings):
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
    for candidate in (str(path) + ".txt", str(path.with_suffix(".txt"))):
        if (tree.root / candidate).is_file():
            return candidate
    return None


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
            apply_row(record, row, vocab, record.origin.rsplit(":", 1)[0])
        elif sidecar := _sidecar(tree, image):
            record.origin = sidecar
            try:
                record.set("caption", (tree.root / sidecar).read_bytes().decode("utf-8"),
                           f"sidecar {sidecar}")
            except UnicodeDecodeError as exc:
                findings.append(Finding("metadata.encoding", f"caption file is not valid UTF-8 "
                                        f"(byte {exc.start + 1}); save it as UTF-8",
                                        record=record.key, file=sidecar, field="caption"))
        problem = tree.escapes(image)
        if problem:
            findings.append(Finding("file.outside_root", problem, record=record.key, file=image))
            record.image = None
        records.append(record)
    return records
