"""`DATA/reports/report.json`: what `ccub validate` found, as `ccub card` (and any tool) reads it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ccub.recordfile import RecordFile

REPORT_FILE = "report.json"


@dataclass
class ValidationReport(RecordFile):
    SCHEMA: ClassVar[str] = "ccub.validate.report"
    # 2: notes are {text, kind}; 3: records held for review carry image_sha256 and caption_sha256
    # (what a review decision is keyed by; null for the others)
    VERSION: ClassVar[int] = 3
    OLDEST: ClassVar[int | None] = 2  # a version 2 file reads as it is: held records lack the digests
    FIX: ClassVar[str] = "rerun `ccub validate` on the submissions"

    ccub_version: str
    created_at: str
    input: dict[str, Any]  # root, layouts, records, images_analysed
    output: dict[str, Any]  # dir, include_review, metadata_sha256
    config: dict[str, Any]  # the effective configuration, with its source
    summary: dict[str, Any]  # status per culture, accepted by category, counts, exit code
    notes: list[dict[str, str]]  # {text, kind}
    duplicate_groups: list[dict[str, Any]]
    timings_s: dict[str, float]
    records: list[dict[str, Any]]
    issues: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The document as written, for the renderers and the cards."""
        return {"schema": self.SCHEMA, "schema_version": self.VERSION, **asdict(self)}


def random_weights(notes: list[dict[str, str]]) -> bool:
    """Whether some result of the run rests on random weights: a note of kind "danger" (semantic
    duplicates found with a random CLIP, `ccub validate --clip tiny`)."""
    return any(note.get("kind") == "danger" for note in notes)
