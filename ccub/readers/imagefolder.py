"""Hugging Face `imagefolder` layout: metadata.jsonl/metadata.csv beside the images."""

from __future__ import annotations

import posixpath

from ccub.readers import METADATA_NAMES, Tree
from ccub.readers.fields import FILE_COLUMNS, SPLIT_NAMES, apply_row, first_value, read_table
from ccub.records import Finding, Record
from ccub.vocab import Vocabulary


def _split_of(folder: str) -> tuple[str, str] | None:
    for part in reversed(folder.split("/")):
        if part.lower() in SPLIT_NAMES:
            return SPLIT_NAMES[part.lower()], part
    return None


def _metadata_files(tree: Tree, findings: list[Finding]) -> list[str]:
    metas = [f for f in tree.files if posixpath.basename(f) in METADATA_NAMES]
    by_dir: dict[str, list[str]] = {}
    for meta in metas:
        by_dir.setdefault(posixpath.dirname(meta), []).append(meta)
    chosen = []
    for folder, names in sorted(by_dir.items()):
        jsonl = [n for n in names if n.endswith(".jsonl")]
        if jsonl and len(names) > 1:
            findings.append(Finding(
                "metadata.malformed", "both metadata.jsonl and metadata.csv are here; "
                "metadata.csv was ignored (keep one of them)",
                file=posixpath.join(folder, "metadata.csv")))
        chosen.append(jsonl[0] if jsonl else names[0])
    return chosen


def _negatives(tree: Tree, record: Record, dataset_root: str, findings: list[Finding]) -> None:
    kept = []
    for value in record.negatives:
        rel, problem = tree.resolve(dataset_root, value)
        if rel is not None and (bad := tree.problem(rel, value)):
            problem = bad[1] + (f" (paths are relative to '{dataset_root or '.'}')"
                                if bad[0] == "file.missing" else "")
        if problem:
            findings.append(Finding("negatives.invalid", f"negative image {problem}; it was "
                                    "dropped", record=record.key, field="negative_imgpath"))
        else:
            kept.append(rel)
    record.negatives = kept


def read(tree: Tree, vocab: Vocabulary, findings: list[Finding], claimed: set[str]
         ) -> list[Record]:
    records: list[Record] = []
    metas = _metadata_files(tree, findings)
    for meta in metas:
        folder = posixpath.dirname(meta)
        split = _split_of(folder)
        dataset_root = posixpath.dirname(folder) if split and folder.split("/")[-1] == split[1] \
            else folder
        lines: dict[str, int] = {}
        for row in read_table(tree, meta, findings):
            where = f"{meta}:{row.line}"
            value = first_value(row.values, FILE_COLUMNS)
            if value is None:
                findings.append(Finding("metadata.malformed", f"line {row.line} has no "
                                        "file_name (as text)", file=meta, line=row.line,
                                        field="file_name"))
                continue
            rel, problem = tree.resolve(folder, value)
            if rel in lines or (rel is not None and rel in claimed):
                first = f"line {lines[rel]}" if rel in lines else "another metadata file"
                findings.append(Finding("metadata.duplicate_row", f"file_name '{value}' is "
                                        f"already listed on {first}; this row was skipped",
                                        file=meta, line=row.line, field="file_name"))
                continue
            record = Record(key=rel or where, origin=where, image=rel)
            apply_row(record, row.values, vocab, meta, findings, row.line)
            if "split" not in record.sources and split:
                record.set("split", split[0], f"folder '{split[1]}'")
            if problem:
                findings.append(Finding("file.outside_root", problem, record=record.key,
                                        file=meta, line=row.line, field="file_name"))
                record.image = None
                # A symlink inside the folder has its row: not also "no metadata".
                claimed.add(posixpath.normpath(posixpath.join(folder, value.replace("\\", "/"))))
            elif bad := tree.problem(rel, value):
                findings.append(Finding(bad[0], bad[1], record=record.key, file=meta,
                                        line=row.line, field="file_name"))
            _negatives(tree, record, dataset_root, findings)
            if rel:
                lines[rel] = row.line
                claimed.add(rel)
            claimed.update(record.negatives)
            records.append(record)
    _orphans(tree, metas, findings, claimed)
    return records


def _orphans(tree: Tree, metas: list[str], findings: list[Finding], claimed: set[str]) -> None:
    folders = sorted({posixpath.dirname(m) for m in metas}, key=len, reverse=True)
    for image in tree.images():
        if image in claimed:
            continue
        owner = next((f for f in folders if not f or image.startswith(f + "/")), None)
        if owner is not None:
            meta = next(m for m in metas if posixpath.dirname(m) == owner)
            findings.append(Finding("file.no_metadata", f"image has no row in '{meta}'; add "
                                    "one with its caption or remove the file", file=image))
            claimed.add(image)
