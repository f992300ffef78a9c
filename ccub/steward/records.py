"""The two kinds of steward records and how one line of their files is checked.

Every field is checked on load: a decision or withdrawal file may come from a browser
download or a spreadsheet, and is treated as hostile like any submitted file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STEWARD_DIR = "steward"
DECISIONS_FILE = "decisions.jsonl"
WITHDRAWALS_FILE = "withdrawals.jsonl"
DECISIONS = ("accept", "reject")
WITHDRAWAL_KINDS = ("contributor", "image")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_TEXT = 2000  # a reason, reviewer or contributor id longer than this is refused


class StewardError(ValueError):
    """A steward file or value that cannot be used; the message names the file, line and fix."""


def caption_digest(caption: str | None) -> str:
    """SHA-256 of the caption as the contributor wrote it, NFC-normalised (the same words typed
    on another keyboard keep their decision); "" for no caption."""
    text = unicodedata.normalize("NFC", caption or "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else ""


@dataclass(frozen=True)
class Decision:
    """A person's decision on a record held for review, valid while its content is unchanged."""

    image_sha256: str
    caption_sha256: str
    decision: str  # "accept" or "reject"
    reviewer: str
    at: str  # ISO 8601 time of the decision
    reason: str = ""
    record: str = ""  # the record's key when it was decided (to say "changed since")

    @property
    def content(self) -> tuple[str, str]:
        return self.image_sha256, self.caption_sha256


@dataclass(frozen=True)
class Withdrawal:
    """Consent withdrawn: every image of a contributor, or one image by its digest."""

    kind: str  # "contributor" or "image"
    value: str  # the contributor id, or the image's SHA-256
    at: str
    reason: str = ""  # private: never written into a report, card or log
    items: list[str] = field(default_factory=list)  # image digests known withdrawn when recorded


def _text(row: dict[str, Any], name: str, required: bool = True) -> str:
    value = row.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise StewardError(f"field {name}: {type(value).__name__}, expected text")
    if required and not value.strip():
        raise StewardError(f"field {name}: missing")
    if len(value) > MAX_TEXT:
        raise StewardError(f"field {name}: {len(value)} characters, at most {MAX_TEXT}")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in value):
        raise StewardError(f"field {name}: holds control characters")
    return value.strip()


def _digest(row: dict[str, Any], name: str, empty_ok: bool = False) -> str:
    value = _text(row, name, required=not empty_ok).lower()
    if value and not _SHA256.fullmatch(value):
        raise StewardError(f"field {name}: {value[:80]!r} is not a SHA-256 (64 hex digits)")
    return value


def _time(row: dict[str, Any], name: str) -> str:
    value = _text(row, name)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise StewardError(f"field {name}: {value[:40]!r} is not an ISO 8601 time") from None
    return value


def decision_from(row: Any) -> Decision:
    if not isinstance(row, dict):
        raise StewardError(f"a {type(row).__name__}, expected an object")
    unknown = sorted(set(row) - {f for f in Decision.__dataclass_fields__})
    if unknown:
        raise StewardError(f"unknown field(s) {', '.join(map(str, unknown))[:200]}")
    decision = _text(row, "decision").lower()
    if decision not in DECISIONS:
        raise StewardError(f"field decision: {decision[:40]!r}, expected accept or reject")
    return Decision(image_sha256=_digest(row, "image_sha256"), caption_sha256=_digest(row, "caption_sha256", True),
                    decision=decision, reviewer=_text(row, "reviewer"), at=_time(row, "at"),
                    reason=_text(row, "reason", required=False), record=_text(row, "record", required=False))


def withdrawal_from(row: Any) -> Withdrawal:
    if not isinstance(row, dict):
        raise StewardError(f"a {type(row).__name__}, expected an object")
    unknown = sorted(set(row) - {f for f in Withdrawal.__dataclass_fields__})
    if unknown:
        raise StewardError(f"unknown field(s) {', '.join(map(str, unknown))[:200]}")
    kind = _text(row, "kind")
    if kind not in WITHDRAWAL_KINDS:
        raise StewardError(f"field kind: {kind[:40]!r}, expected contributor or image")
    value = _digest(row, "value") if kind == "image" else _text(row, "value")
    items = row.get("items", [])
    if not isinstance(items, list) or not all(isinstance(i, str) and _SHA256.fullmatch(i) for i in items):
        raise StewardError("field items: expected a list of SHA-256 digests")
    return Withdrawal(kind=kind, value=value, at=_time(row, "at"), reason=_text(row, "reason", required=False),
                      items=list(items))


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
