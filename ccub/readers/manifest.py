"""Manifests in the style of the public CCUB release: one row per image, codes and a URL."""

from __future__ import annotations

import posixpath

from ccub.readers import Tree, is_manifest
from ccub.readers.fields import FILE_COLUMNS, URL_COLUMNS, apply_row, first_value, read_table
from ccub.records import Finding, Record
from ccub.vocab import Vocabulary


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://", "ftp://"))


def read(tree: Tree, vocab: Vocabulary, findings: list[Finding], claimed: set[str]
         ) -> list[Record]:
    records: list[Record] = []
    for manifest in (f for f in tree.files if is_manifest(tree, f)):
        folder = posixpath.dirname(manifest)
        for row in read_table(tree, manifest, findings):
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
                findings.append(Finding("metadata.malformed", f"line {row.line} has neither a "
                                        "url nor a path", file=manifest, line=row.line,
                                        record=record.key, field="url"))
            elif bad := tree.problem(rel, local):
                findings.append(Finding(bad[0], bad[1], record=record.key, file=manifest,
                                        line=row.line, field="path"))
            if rel:
                claimed.add(rel)
            records.append(record)
    return records
