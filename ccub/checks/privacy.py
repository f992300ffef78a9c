"""Privacy: personal data in image metadata (removed on export) and in captions."""

from __future__ import annotations

from collections.abc import Iterable

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.records import Finding, Record
from ccub.text import EMAIL, HANDLE, URL, phone_numbers

_METADATA = {
    "location": "privacy.location",
    "device_serial": "privacy.device_serial",
    "owner_name": "privacy.owner_name",
}
_REMOVED = "removed from the exported copy"
_MAX_LISTED = 12  # distinct items named in one privacy.metadata_removed message


def _mask(text: str) -> str:
    return text[:3] + "…" if len(text) > 4 else "…"


def _removed_message(labels: list[str] | None) -> str:
    """What the export left out, e.g. "APP1 Exif, COM comment x2": names, never content."""
    if labels is None:
        return "the whole container but the pixels (it could not be parsed; re-encoded)"
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    items = [label if n == 1 else f"{label} x{n}" for label, n in counts.items()]
    more = len(items) - _MAX_LISTED
    return ", ".join(items[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


class PrivacyChecks(CheckFamily):
    name = "privacy"
    specs = (
        CheckSpec("privacy.location", "warning", "GPS coordinates or a place name in the "
                  "metadata (EXIF, XMP, IPTC, comments, PNG text, private chunks); removed on "
                  "export.",
                  "Strip location data before sharing the original elsewhere."),
        CheckSpec("privacy.device_serial", "warning", "A camera or lens serial number in the "
                  "metadata; removed on export.", "Nothing to do for this dataset."),
        CheckSpec("privacy.owner_name", "warning", "An owner, artist or author name in the "
                  "metadata; removed on export.", "Give attribution in the creator field instead."),
        CheckSpec("privacy.metadata_removed", "info", "Metadata and other non-pixel data the "
                  "exported copy leaves out, block by block (EXIF, XMP, comments, thumbnails, "
                  "text and private chunks, data after the image).",
                  "Nothing to do; keep your original if you need its metadata."),
        CheckSpec("privacy.metadata_left", "error", "Metadata survived export (a safeguard that "
                  "should never fire); the image is not exported.",
                  "Report this file to the ccub maintainers."),
        CheckSpec("privacy.caption_email", "review", "The caption contains an e-mail address.",
                  "Remove personal contact details from the caption."),
        CheckSpec("privacy.caption_phone", "review", "The caption contains a phone number.",
                  "Remove personal contact details from the caption."),
        CheckSpec("privacy.caption_url", "warning", "The caption contains a URL.",
                  "Describe the picture; put sources in the creator or source field."),
        CheckSpec("privacy.caption_handle", "warning", "The caption contains a social-media "
                  "handle.", "Remove the handle; credit people in the creator field."),
    )

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        facts = ctx.facts.get(record.image) if record.image else None
        if facts is not None:
            for kind, where in facts.privacy.items():
                yield Finding(_METADATA[kind], f"found in {', '.join(sorted(set(where)))}",
                              record=record.key, file=record.image, fixed=_REMOVED)
            if facts.staged and (facts.removed is None or facts.removed):
                yield Finding("privacy.metadata_removed", _removed_message(facts.removed),
                              record=record.key, file=record.image, fixed=_REMOVED)
            if facts.error == "privacy.metadata_left":
                yield Finding("privacy.metadata_left", facts.error_detail, record=record.key,
                              file=record.image)
        caption = record.caption
        if not caption or len(caption) > ctx.cfg.limits.max_caption_chars:
            return
        where = {"record": record.key, "file": record.image, "field": "caption"}
        # Messages show only a masked prefix: the report itself must not spread the data.
        for match in EMAIL.findall(caption):
            yield Finding("privacy.caption_email", f"e-mail address '{_mask(match)}'", **where)
        for match in phone_numbers(caption):
            yield Finding("privacy.caption_phone", f"phone number '{_mask(match)}'", **where)
        for match in URL.findall(caption):
            yield Finding("privacy.caption_url", f"URL '{match[:40]}'", **where)
        for match in HANDLE.findall(caption):
            yield Finding("privacy.caption_handle", f"handle '{match}'", **where)
