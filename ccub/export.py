"""Write the clean dataset: one Hugging Face `imagefolder` per culture.

    clean/<culture>/<split>/metadata.jsonl
    clean/<culture>/<split>/images/<file>
    clean/<culture>/negatives/<file>        (negative_imgpath is relative to clean/<culture>/)

Images come from the staging folder, already free of metadata. Each staged copy was checked
by `ccub.imaging.verify.verify_image` when it was made (in the decode worker, where the
source is at hand); a file that fails is not staged and its record is rejected with
privacy.metadata_left. `verify_clean` checks each file again as it is published.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from PIL import Image

from ccub.imaging.decode import ACCEPTED
from ccub.imaging.verify import SUFFIX_FORMAT, pillow_problems, verify_image
from ccub.records import Record

if TYPE_CHECKING:
    from ccub.imaging.analyze import ImageFacts

# Row keys in the order they are written; SCoFT's trainer reads text/blip_text/negative_imgpath.
ROW_FIELDS = ("culture", "category", "license", "creator", "contributor", "consent", "language",
              "caption_source", "created_at")


class ExportError(RuntimeError):
    """An exported file still carries metadata: refuse to publish rather than leak it."""


@dataclass
class Exported:
    record: Record
    row: dict[str, Any]
    path: str  # relative to the output folder


def verify_clean(path: Path, facts: ImageFacts | None = None) -> None:
    """Raise unless the file at `path` is clean.

    Alone: the full `verify_image`. With `facts` (the pipeline), whose staged copy passed
    `verify_image` (pixel check included) in the worker just before it was written: the
    file must still be that copy (same size) and Pillow must find no metadata in it; the
    walkers are not run twice over the same bytes on this serial path.
    """
    try:
        fmt = SUFFIX_FORMAT.get(path.suffix.lower())
        if fmt is None:
            with Image.open(path, formats=list(ACCEPTED)) as im:
                fmt = im.format or ""
        if facts is None:
            problems = verify_image(path.read_bytes(), fmt)
        elif path.stat().st_size != facts.staged_size:
            problems = ["not the copy verified when it was staged"]
        else:
            problems = pillow_problems(path, fmt)
    except Exception as exc:  # noqa: BLE001
        problems = [f"cannot be read back ({type(exc).__name__})"]
    if problems:
        raise ExportError(f"{path}: metadata left after export: {', '.join(problems)}")


class Exporter:
    def __init__(self, out: Path, max_chars: int):
        self.out = out
        self.max_chars = max_chars
        self.names: dict[str, set[str]] = {}  # folder -> file names taken
        self.moved: dict[str, Path] = {}  # staged file -> where it went
        self.negatives: dict[tuple[str, str], str] = {}

    def _place(self, facts: ImageFacts, folder: str) -> str:
        staged = Path(facts.staged or "")
        stem = PurePosixPath(facts.path).stem
        taken = self.names.setdefault(folder, set())
        name = stem + staged.suffix
        if name in taken:
            name = f"{stem}-{(facts.sha256 or '')[:8]}{staged.suffix}"
        n = 2
        while name in taken:
            name = f"{stem}-{(facts.sha256 or '')[:8]}-{n}{staged.suffix}"
            n += 1
        taken.add(name)
        target = self.out / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if str(staged) in self.moved:  # an image that is also another record's negative
            shutil.copyfile(self.moved[str(staged)], target)
        else:
            os.replace(staged, target)
            self.moved[str(staged)] = target
        verify_clean(target, facts)
        return posixpath.join(folder, name)

    def add(self, record: Record, caption: str, license_id: str | None,
            facts: dict[str, ImageFacts]) -> Exported:
        culture_dir = posixpath.join("clean", record.culture or "unknown")
        split_dir = posixpath.join(culture_dir, record.split)
        image = self._place(facts[record.image], posixpath.join(split_dir, "images"))
        row: dict[str, Any] = {"file_name": posixpath.relpath(image, split_dir), "text": caption}
        for name in ROW_FIELDS:
            row[name] = license_id if name == "license" else getattr(record, name)
        if record.blip_text:
            row["blip_text"] = record.blip_text
        negatives = [posixpath.relpath(self._negative(facts[n], culture_dir), culture_dir)
                     for n in record.negatives]
        if negatives or "negatives" in record.sources:
            row["negative_imgpath"] = negatives
        for key, value in record.extra.items():
            # Unmapped columns travel as text (one type per column, as `datasets` requires),
            # bounded like captions.
            text = value if isinstance(value, str) or value is None else json.dumps(value)
            if key not in row and (text is None or len(text) <= self.max_chars):
                row[key] = text
        row["source_file"] = record.image
        # The submitted file's digest: what review decisions, withdrawals and the records of the
        # models trained on this row are keyed by (the exported copy's bytes differ).
        row["source_sha256"] = facts[record.image].sha256
        row["export"] = facts[record.image].export
        return Exported(record, row, image)

    def _negative(self, facts: ImageFacts, culture_dir: str) -> str:
        # A negative shared by several records is written once.
        key = (culture_dir, facts.path)
        if key not in self.negatives:
            self.negatives[key] = self._place(facts, posixpath.join(culture_dir, "negatives"))
        return self.negatives[key]


def write_metadata(out: Path, exported: list[Exported]) -> dict[str, str]:
    """metadata.jsonl per culture and split, same keys on every row; returns sha256 by path."""
    by_folder: dict[str, list[dict[str, Any]]] = {}
    for item in exported:
        folder = posixpath.dirname(posixpath.dirname(item.path))
        by_folder.setdefault(folder, []).append(item.row)
    # `datasets` refuses a culture whose splits' metadata differ in columns or types, so every
    # split of a culture gets the same keys, and a text column that is empty throughout one
    # split but filled in another is written as "" there rather than null.
    by_culture: dict[str, list[dict[str, Any]]] = {}
    for folder, rows in by_folder.items():
        by_culture.setdefault(posixpath.dirname(folder), []).extend(rows)
    digests = {}
    for folder, rows in sorted(by_folder.items()):
        culture_rows = by_culture[posixpath.dirname(folder)]
        keys = list(dict.fromkeys(k for row in culture_rows for k in row))
        blank = {k: "" for k in keys if all(row.get(k) is None for row in rows)
                 and any(isinstance(row.get(k), str) for row in culture_rows)}
        path = out / folder / "metadata.jsonl"
        data = "".join(json.dumps({k: blank.get(k) if row.get(k) is None else row[k] for k in keys},
                                  ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
        path.write_bytes(data)
        digests[posixpath.join(folder, "metadata.jsonl")] = hashlib.sha256(data).hexdigest()
    return digests
