"""Stewardship: withdrawn consent and people's review decisions, read from the steward folder.

These are not checks of the data but decisions about it; they are findings so that every
contributor sees them in the report like any other, with the reviewer's reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.records import Finding, Record
from ccub.steward import caption_digest


def content_of(record: Record, ctx: Context) -> tuple[str, str] | None:
    """(image SHA-256, caption SHA-256) of a record whose image was read, else None."""
    facts = ctx.facts.get(record.image or "")
    if facts is None or not facts.sha256:
        return None
    return facts.sha256, caption_digest(record.caption)


class StewardChecks(CheckFamily):
    name = "steward"
    specs = (
        CheckSpec("consent.withdrawn", "error", "Consent for this image was withdrawn; it is never "
                  "exported again, also when it is submitted again.", "Nothing to do: the steward "
                  "recorded the withdrawal (`ccub withdraw`)."),
        CheckSpec("review.rejected", "error", "A reviewer rejected this record.",
                  "Read the reviewer's reason; a changed photo or caption is reviewed again."),
        CheckSpec("review.accepted", "info", "A reviewer accepted this record, held by the checks "
                  "named beside it.", "Nothing to do."),
        CheckSpec("review.changed", "review", "The record was decided by a reviewer, but its image "
                  "or caption changed since: it is held for review again.", "Review it again."),
    )

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        steward = ctx.steward
        if steward is None:
            return
        where = {"record": record.key, "file": record.image}
        content = content_of(record, ctx)
        if steward.is_withdrawn(content[0] if content else None, record.contributor):
            # The reason stays private: the report says only that it happened.
            yield Finding("consent.withdrawn", "consent withdrawn; excluded", **where)
            return
        decision = steward.decision_for(*content) if content else None
        if decision is not None and decision.decision == "reject":
            reason = f": {decision.reason}" if decision.reason else ""
            yield Finding("review.rejected", f"rejected by {decision.reviewer} on {decision.at[:10]}{reason}",
                          **where)
        elif decision is None:
            earlier = steward.earlier_decision(record.key)
            if earlier is not None:
                yield Finding("review.changed", f"{earlier.decision}ed by {earlier.reviewer} on "
                              f"{earlier.at[:10]}; the image or caption changed since", **where)
