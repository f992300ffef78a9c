"""A SCoFT training set on disk: a Hugging Face ``imagefolder`` with SCoFT's extra columns.

    <root>/metadata.jsonl                 (or one per split:)
    <root>/<split>/metadata.jsonl         rows: file_name, text, blip_text, negative_imgpath, ...
    <root>/<split>/images/...             file_name is relative to the metadata file's folder
    <root>/negatives/...                  negative_imgpath is relative to <root> (SCoFT's convention)

`ccub validate` writes this layout to ``data/clean/<culture>/``; `ccub prepare` fills in
``blip_text`` and ``negative_imgpath``; `ccub finetune` reads it through `scoft_examples`.
Every path read from a row is checked to stay inside the root: rows are as hostile as any
other submitted text.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ccub.files import atomic_write_text

METADATA = "metadata.jsonl"
# SCoFT's columns, in the reference code's names.
GENERIC, NEGATIVES = "blip_text", "negative_imgpath"


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file, the row and the fix."""


@dataclass
class MetadataFile:
    path: Path
    rows: list[dict[str, Any]]

    @property
    def split(self) -> str:
        return self.path.parent.name


@dataclass
class Dataset:
    root: Path
    files: list[MetadataFile] = field(default_factory=list)

    def rows(self):
        """(metadata file, row) for every row, in file order."""
        for mf in self.files:
            for row in mf.rows:
                yield mf, row

    def image_path(self, mf: MetadataFile, row: dict[str, Any]) -> Path:
        return inside(self.root, mf.path.parent, row["file_name"], f"{mf.path}: file_name")

    def image_key(self, mf: MetadataFile, row: dict[str, Any]) -> str:
        """The image's path relative to the root, in POSIX form: a stable id for seeds and logs."""
        return self.image_path(mf, row).relative_to(self.root).as_posix()

    def negative_path(self, relative: str, where: str) -> Path:
        return inside(self.root, self.root, relative, where)


def inside(root: Path, base: Path, relative: Any, where: str) -> Path:
    """`base / relative`, refused unless it is a relative POSIX path that stays inside `root`."""
    if not isinstance(relative, str) or not relative.strip():
        raise DatasetError(f"{where}: expected a relative file path, found {relative!r}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or "\\" in relative or ":" in pure.parts[0]:
        raise DatasetError(f"{where}: {relative!r} is not a relative path; write it relative to the dataset")
    path = Path(os.path.normpath(base / Path(*pure.parts)))
    if not path.is_relative_to(root):
        raise DatasetError(f"{where}: {relative!r} points outside the dataset folder {root}")
    return path


def find_metadata(root: Path) -> list[Path]:
    """metadata.jsonl at the root or in its split folders (the two imagefolder layouts)."""
    found = [root / METADATA] if (root / METADATA).is_file() else []
    found += sorted(p / METADATA for p in root.iterdir() if p.is_dir() and (p / METADATA).is_file())
    return found


def read_dataset(root: Path) -> Dataset:
    """Read every metadata file under `root`; DatasetError on anything a trainer could trip over."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder; `ccub validate SUBMISSIONS` writes one per culture "
                           f"to data/clean/<culture>/")
    paths = find_metadata(root)
    if not paths:
        raise DatasetError(f"{root}: no {METADATA} here or in its split folders (train/, test/); is it an "
                           f"imagefolder dataset? `ccub validate` writes them to data/clean/<culture>/")
    dataset = Dataset(root, [MetadataFile(p, _read_rows(p)) for p in paths])
    for mf, row in dataset.rows():
        dataset.image_path(mf, row)  # refuses rows pointing outside the root
    return dataset


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc}); fix or remove the line") from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{where}: expected a JSON object per line")
            for key in ("file_name", "text"):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise DatasetError(f"{where}: field '{key}' is missing or empty; every row needs the image's "
                                       f"file_name and its caption in 'text'")
            rows.append(row)
    return rows


def write_metadata(dataset: Dataset) -> None:
    """Rewrite every metadata file atomically, with the same keys in the same order on every row.

    `datasets` refuses splits whose columns differ, so keys are unified across the whole dataset.
    """
    keys = list(dict.fromkeys(k for _, row in dataset.rows() for k in row))
    for mf in dataset.files:
        text = "".join(json.dumps({k: row.get(k) for k in keys}, ensure_ascii=False) + "\n" for row in mf.rows)
        atomic_write_text(mf.path, text)


# --------------------------------------------------------------------------- SCoFT's view


def generic_caption(row: dict[str, Any]) -> str | None:
    value = row.get(GENERIC)
    return value.strip() if isinstance(value, str) and value.strip() else None


def listed_negatives(row: dict[str, Any]) -> list[str]:
    value = row.get(NEGATIVES)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass
class ScoftExample:
    """One training image with what every SCoFT loss needs."""

    image: Path
    text: str
    generic: str
    negatives: list[Path]
    split: str
    license: str | None = None  # the image's licence (an SPDX id), when the dataset says it
    source_sha256: str | None = None  # the submitted file's digest (`ccub validate` writes it), for lineage
    contributor: str | None = None


def row_source(row: dict[str, Any]) -> str | None:
    """The row's source_sha256 when it is one (64 lowercase hex digits), else None."""
    value = row.get("source_sha256")
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    return None


def row_contributor(row: dict[str, Any]) -> str | None:
    value = row.get("contributor")
    return value.strip() or None if isinstance(value, str) else None


def missing_for_scoft(dataset: Dataset) -> dict[str, int]:
    """How many rows lack a generic caption, and how many have no negative image on disk."""
    counts = {GENERIC: 0, NEGATIVES: 0}
    for mf, row in dataset.rows():
        counts[GENERIC] += generic_caption(row) is None
        present = [p for p in listed_negatives(row)
                   if dataset.negative_path(p, f"{mf.path}: {NEGATIVES}").is_file()]
        counts[NEGATIVES] += not present
    return counts


def scoft_examples(dataset: Dataset, split: str = "train") -> list[ScoftExample]:
    """The rows of `split` as training examples; DatasetError names every row SCoFT cannot use.

    Images without negatives are allowed (the contrastive term masks them out); a listed
    negative that does not exist is an error, since it means the dataset was damaged.
    """
    examples, problems = [], []
    for mf, row in dataset.rows():
        if mf.split != split and mf.path.parent != dataset.root:
            continue
        where = f"{mf.path} (file_name {row['file_name']})"
        image = dataset.image_path(mf, row)
        if not image.is_file():
            problems.append(f"{where}: image {image} does not exist")
            continue
        generic = generic_caption(row)
        if generic is None:
            problems.append(f"{where}: no '{GENERIC}'; run `ccub prepare` on {dataset.root}")
            continue
        negatives = [dataset.negative_path(p, f"{where}: {NEGATIVES}") for p in listed_negatives(row)]
        absent = [posixpath.normpath(p) for p, n in zip(listed_negatives(row), negatives, strict=True)
                  if not n.is_file()]
        if absent:
            problems.append(f"{where}: negative image(s) {', '.join(absent)} do not exist; run `ccub prepare` "
                            f"on {dataset.root} to regenerate them")
            continue
        license_id = row.get("license")
        examples.append(ScoftExample(image, row["text"], generic, negatives, mf.split,
                                     license_id.strip() or None if isinstance(license_id, str) else None,
                                     row_source(row), row_contributor(row)))
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DatasetError(f"{dataset.root}: {len(problems)} row(s) cannot be used for SCoFT:\n  {shown}")
    if not examples:
        raise DatasetError(f"{dataset.root}: no rows in split '{split}'")
    return examples
