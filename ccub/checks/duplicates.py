"""Exact duplicates: the same bytes, or the same decoded pixels after orientation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.imaging.analyze import full_pixel_digest
from ccub.records import Finding, Record


class ExactDuplicateChecks(CheckFamily):
    name = "duplicates"
    specs = (
        CheckSpec("duplicate.same_file", "error", "Byte-identical to another record's image; "
                  "one copy is kept.", "Remove the extra copy."),
        CheckSpec("duplicate.same_pixels", "error", "Same decoded pixels as another record's "
                  "image (e.g. a copy with metadata stripped); one copy is kept.",
                  "Remove the extra copy."),
        CheckSpec("duplicate.label_conflict", "error", "The same image is filed under two "
                  "cultures; every copy is rejected until a person decides.",
                  "Keep the image under the one culture it shows."),
    )

    def check_dataset(self, records: list[Record], ctx: Context) -> Iterable[Finding]:
        by_bytes: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            facts = ctx.facts.get(record.image) if record.image else None
            if facts is not None and facts.ok and facts.sha256:
                by_bytes[facts.sha256].append(record)
        # One representative per distinct file, then group those by pixels.
        by_pixels: dict[str, list[Record]] = defaultdict(list)
        for group in by_bytes.values():
            yield from self._group(group, "duplicate.same_file", ctx)
            head = group[0]
            by_pixels[ctx.facts[head.image].pixel_key].append(head)
        for group in by_pixels.values():
            for confirmed in _confirm(group, ctx):
                yield from self._group(confirmed, "duplicate.same_pixels", ctx)

    def _group(self, group: list[Record], check: str, ctx: Context) -> Iterable[Finding]:
        if len(group) < 2:
            return
        cultures = sorted({r.culture or "?" for r in group})
        if len(cultures) > 1:
            for record in group:
                others = ", ".join(r.image for r in group if r is not record)
                yield Finding("duplicate.label_conflict", f"same image as {others}; cultures "
                              f"{', '.join(cultures)}", record=record.key, file=record.image,
                              field="culture")
            return
        keep = min(group, key=lambda r: _preference(r, ctx))
        # Sort so the kept record comes first for the next grouping level.
        group.sort(key=lambda r: r is not keep)
        for record in group[1:]:
            yield Finding(check, f"duplicate of {keep.image} (kept)", record=record.key,
                          file=record.image)


def _confirm(group: list[Record], ctx: Context) -> list[list[Record]]:
    """Split a group keyed on reduced-scale JPEG decodes by full-resolution pixels."""
    if len(group) < 2 or all(ctx.facts[r.image].decode_scale == 1 for r in group):
        return [group]
    exact: dict[str, list[Record]] = defaultdict(list)
    for record in group:
        exact[full_pixel_digest(ctx.root / record.image)].append(record)
    return list(exact.values())


def _preference(record: Record, ctx: Context) -> tuple:
    """Keep the copy with no other errors (nor review items), the most pixels, earliest, richest
    caption."""
    facts, status = ctx.facts[record.image], ctx.status.get(record.key)
    return (status == "error", status == "review", -(facts.width * facts.height),
            record.created_at or "~", -len(record.caption or ""), record.key)
