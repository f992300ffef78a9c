"""The records that flow through validation: one per submitted image-caption pair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Ordered from worst to mildest; a record's status is its worst finding's severity.
SEVERITIES = ("error", "review", "warning", "info")


@dataclass
class Record:
    key: str  # unique within a run: the image's path under the root, or "<manifest>:<line>"
    origin: str  # where the row was read: "korea/metadata.jsonl:4", "india/FOOD/x.jpg.txt"
    image: str | None = None  # posix path relative to the submissions root
    url: str | None = None
    caption: str | None = None
    culture: str | None = None
    category: str | None = None
    license: str | None = None
    creator: str | None = None
    contributor: str | None = None
    consent: str | None = None
    language: str | None = None
    caption_source: str | None = None
    split: str = "train"
    blip_text: str | None = None
    negatives: list[str] = field(default_factory=list)
    created_at: str | None = None
    # field name -> how its value was obtained ("row", "submission.toml (a/b)", "flag",
    # "path component 'korea'", "file-name prefix 'ARCH_'").
    sources: dict[str, str] = field(default_factory=dict)
    # Columns the reader did not map, carried through to the clean metadata.
    extra: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, value: Any, source: str) -> None:
        setattr(self, name, value)
        self.sources[name] = source


@dataclass
class Finding:
    """One problem found by a check: what, where, and what was done about it."""

    check: str
    message: str
    record: str | None = None  # Record.key; None for problems of a file or the dataset
    file: str | None = None
    field: str | None = None
    line: int | None = None
    fixed: str | None = None  # the automatic fix applied, when there was one
