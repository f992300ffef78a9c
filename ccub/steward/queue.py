"""The review queue (`ccub review`): the records the last `ccub validate` held for review, and the
people's decisions on them added to the steward folder.

The queue is read from `DATA/reports/report.json`, whose held records carry the digests a
decision is keyed by (report version 3). Decisions are added while holding the output folder's
lock, so they never interleave with a validate run; the next `ccub validate` applies them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccub.config import Limits
from ccub.steward.records import Decision, StewardError, decision_from, now
from ccub.steward.store import Steward

ID_CHARS = 8  # a short id: the first hex digits of the SHA-256 of the record's key


class ReviewError(ValueError):
    """The queue cannot be read or a decision cannot be recorded; the message says how to fix it."""


@dataclass(frozen=True)
class Held:
    """A record held for review by the last validate run."""

    id: str
    key: str
    contributor: str | None
    culture: str | None
    caption: str | None
    checks: tuple[str, ...]  # the checks that hold it (severity "review")
    image_sha256: str | None
    caption_sha256: str | None

    @property
    def decidable(self) -> bool:
        return bool(self.image_sha256) and self.caption_sha256 is not None


def short_id(key: str) -> str:
    """A record's short id, the same in review.html and `ccub review` (stable while its key is)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:ID_CHARS]


def held_records(report: dict[str, Any]) -> list[Held]:
    """The records of a report.json document held for review, in key order."""
    issues = report.get("issues") or []
    held = []
    for record in report.get("records") or []:
        if record.get("status") != "review":
            continue
        found = [issues[i] for i in record.get("issues") or [] if isinstance(i, int) and 0 <= i < len(issues)]
        checks = sorted({i["check"] for i in found if i.get("severity") == "review"}) or sorted(
            {i["check"] for i in found})
        held.append(Held(id=short_id(record["key"]), key=record["key"], contributor=record.get("contributor"),
                         culture=record.get("culture"), caption=record.get("caption"), checks=tuple(checks),
                         image_sha256=record.get("image_sha256"), caption_sha256=record.get("caption_sha256")))
    return sorted(held, key=lambda h: h.key)


def load_queue(data: Path) -> list[Held]:
    """The held records of `data`'s last validate run (DATA/reports/report.json)."""
    from ccub.recordfile import RecordError
    from ccub.report.record import REPORT_FILE, ValidationReport

    path = Path(data) / "reports" / REPORT_FILE
    if not path.exists():
        raise ReviewError(f"{path}: not found; run `ccub validate SUBMISSIONS --out {data}` first "
                          "(DATA is the validate --out folder)")
    try:
        return held_records(ValidationReport.read(path).as_dict())
    except RecordError as exc:
        raise ReviewError(str(exc)) from exc


def find(queue: list[Held], wanted: str) -> Held:
    """The held record named by its key or its short id (a prefix of at least 4 digits will do)."""
    for held in queue:
        if held.key == wanted:
            return held
    text = wanted.strip().lower()
    matches = [h for h in queue if len(text) >= 4 and h.id.startswith(text)] if text else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ReviewError(f"{wanted!r} names {len(matches)} held records ({', '.join(h.key for h in matches[:5])}); "
                          "give more digits of the id, or the key")
    from ccub.vocab import did_you_mean

    raise ReviewError(f"{wanted!r} is not a record held for review{did_you_mean(wanted, [h.key for h in queue])}; "
                      "`ccub review DATA` lists them (key and id)")


def decide(data: Path, limits: Limits, choices: list[tuple[str, str]], reviewer: str, reason: str = "",
           wait: bool = False) -> tuple[list[Decision], int]:
    """Record `choices` ((key or id, "accept"/"reject"), ...) by `reviewer` in DATA/steward/:
    (decisions added, decisions already there). Nothing is recorded unless every choice is valid."""
    queue = load_queue(data)
    chosen: dict[str, tuple[Held, str]] = {}
    for wanted, verdict in choices:
        held = find(queue, wanted)
        if held.key in chosen and chosen[held.key][1] != verdict:
            raise ReviewError(f"{held.key} is both accepted and rejected; give one decision per record")
        if not held.decidable:
            raise ReviewError(f"{held.key}: the report does not say which image and caption were held (a report of "
                              "an older ccub, or an image that could not be read); rerun `ccub validate` first")
        chosen[held.key] = (held, verdict)
    at = now()
    decisions = []
    for held, verdict in chosen.values():
        row = {"image_sha256": held.image_sha256, "caption_sha256": held.caption_sha256, "decision": verdict,
               "reviewer": reviewer, "at": at, "reason": reason, "record": held.key}
        try:
            decisions.append(decision_from(row))  # the same checks as a file's rows (length, control characters)
        except StewardError as exc:
            raise ReviewError(f"{held.key}: {exc}") from exc
    return _add(data, limits, wait, lambda steward: _add_new(steward, decisions))


def import_file(data: Path, limits: Limits, path: Path, wait: bool = False
                ) -> tuple[list[Decision], int, list[str], int]:
    """Add a saved decisions file (JSON lines or CSV) to DATA/steward/: (decisions added, rows already
    recorded, problems of refused rows, added decisions that match no record held in the last report)."""
    try:
        queue = load_queue(data)
    except ReviewError:
        queue = []  # without a report the file is still recorded; only the matching is not said
    new, already, problems = _add(data, limits, wait, lambda steward: steward.add_from(path, limits))
    held = {(h.image_sha256, h.caption_sha256) for h in queue}
    unmatched = sum(d.content not in held for d in new) if queue else 0
    return new, already, problems, unmatched


def _add_new(steward: Steward, decisions: list[Decision]) -> tuple[list[Decision], int]:
    known = set(steward.decisions)
    new = [d for d in decisions if d not in known]
    if new:
        steward.add_decisions(new)
    return new, len(decisions) - len(new)


def _add(data: Path, limits: Limits, wait: bool, add: Any) -> Any:
    from ccub.outdir import OutputBusy, OutputError, exclusive

    try:
        with exclusive(Path(data), wait, "ccub review"):
            return add(Steward.load(Path(data), limits))
    except (StewardError, OutputBusy, OutputError) as exc:
        raise ReviewError(str(exc)) from exc

