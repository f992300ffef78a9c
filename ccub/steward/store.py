"""The steward folder: reading, looking up and appending decisions and withdrawals.

The folder's own files are ccub's record: a line that does not parse stops the run naming the
file and line (the record must not be half applied). A file brought in from outside (a browser
download, a spreadsheet) is read row by row: a bad row is a problem on that row, the rest is
used.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from ccub.config import Limits
from ccub.files import atomic_write_text
from ccub.rows import csv_rows, jsonl_rows
from ccub.steward.records import (
    DECISIONS_FILE,
    STEWARD_DIR,
    WITHDRAWALS_FILE,
    Decision,
    StewardError,
    Withdrawal,
    decision_from,
    withdrawal_from,
)

T = TypeVar("T")


def _open_regular(path: Path, limits: Limits) -> bytes:
    """The bytes of `path`, a regular file (decided on the descriptor read) under the size cap."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise StewardError(f"{path}: cannot be opened ({exc.strerror}); give a decisions file "
                           "(JSON lines or CSV) that is a regular file") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise StewardError(f"{path}: not a regular file; give a decisions file (JSON lines or CSV)")
    with os.fdopen(fd, "rb") as fh:
        cap = int(limits.max_metadata_mb * 1024 * 1024)
        if info.st_size > cap:
            raise StewardError(f"{path}: {info.st_size / 2**20:.0f} MB, over [limits] max_metadata_mb "
                               f"= {limits.max_metadata_mb:g}")
        return fh.read(cap + 1)


def read_rows(path: Path, limits: Limits, parse: Callable[[Any], T]) -> tuple[list[T], list[str]]:
    """(records, problems) of a JSON-lines or CSV file; each problem names the file and line."""
    data = _open_regular(path, limits)
    found: list[T] = []
    problems: list[str] = []
    if path.suffix.lower() == ".csv":
        rows = list(csv_rows(io.BytesIO(data), limits))
        header = rows[0].value if rows and rows[0].value else []
        values = [(r.line, dict(zip(header, r.value, strict=False)) if r.value is not None else None, r.problem)
                  for r in rows[1:]]
    else:
        values = [(r.line, r.value, r.problem) for r in jsonl_rows(io.BytesIO(data), limits)]
    for line, value, problem in values:
        if problem:
            problems.append(f"{path}:{line}: {problem}")
            continue
        try:
            found.append(parse(value))
        except StewardError as exc:
            problems.append(f"{path}:{line}: {exc}")
    return found, problems


def _jsonl(records: Iterable[Any]) -> str:
    return "".join(json.dumps(asdict(r), ensure_ascii=False, sort_keys=True) + "\n" for r in records)


class Steward:
    """Decisions and withdrawals of one dataset (`DATA/steward/`)."""

    def __init__(self, folder: Path, decisions: list[Decision], withdrawals: list[Withdrawal]):
        self.folder = folder
        self.decisions = decisions
        self.withdrawals = withdrawals
        self._by_content = {d.content: d for d in decisions}  # the latest decision wins
        self._by_record = {d.record: d for d in decisions if d.record}
        self.withdrawn_contributors = {w.value for w in withdrawals if w.kind == "contributor"}
        self.withdrawn_images = {w.value for w in withdrawals if w.kind == "image"} | {
            i for w in withdrawals for i in w.items}

    @classmethod
    def load(cls, data: Path, limits: Limits) -> Steward:
        """The steward folder of `data` (the `ccub validate --out` folder); empty when absent."""
        folder = Path(data) / STEWARD_DIR
        loaded: dict[str, list[Any]] = {}
        for name, parse in ((DECISIONS_FILE, decision_from), (WITHDRAWALS_FILE, withdrawal_from)):
            path = folder / name
            if not path.exists():
                loaded[name] = []
                continue
            records, problems = read_rows(path, limits, parse)
            if problems:
                raise StewardError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1
                                                       else "") + "; this is ccub's record of the steward's "
                                   "decisions: restore it from a backup or fix that line")
            loaded[name] = records
        return cls(folder, loaded[DECISIONS_FILE], loaded[WITHDRAWALS_FILE])

    def decision_for(self, image_sha256: str, caption_sha256: str) -> Decision | None:
        return self._by_content.get((image_sha256, caption_sha256))

    def earlier_decision(self, record_key: str) -> Decision | None:
        """The decision made on this record's key, whatever its content was then."""
        return self._by_record.get(record_key)

    def is_withdrawn(self, image_sha256: str | None, contributor: str | None) -> bool:
        return bool((image_sha256 and image_sha256 in self.withdrawn_images)
                    or (contributor and contributor in self.withdrawn_contributors))

    def add_decisions(self, decisions: list[Decision]) -> None:
        """Append `decisions` to the folder's file (rewritten whole, atomically)."""
        self.decisions = [*self.decisions, *decisions]
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / DECISIONS_FILE, _jsonl(self.decisions))
        self.__init__(self.folder, self.decisions, self.withdrawals)

    def add_from(self, path: Path, limits: Limits) -> tuple[list[Decision], int, list[str]]:
        """Add the decisions of a file brought in from outside (JSON lines or CSV, e.g. saved by
        review.html): (decisions added, rows already recorded, problems of the refused rows). A
        bad row is refused on its own; a file that cannot be read at all raises StewardError."""
        found, problems = read_rows(Path(path), limits, decision_from)
        known = set(self.decisions)
        new: list[Decision] = []
        for d in found:
            if d not in known:
                known.add(d)
                new.append(d)
        if new:
            self.add_decisions(new)
        return new, len(found) - len(new), problems

    def add_withdrawal(self, withdrawal: Withdrawal) -> None:
        self.add_withdrawals([withdrawal])

    def add_withdrawals(self, withdrawals: list[Withdrawal]) -> None:
        """Append `withdrawals` to the folder's file (rewritten whole, atomically)."""
        self.withdrawals = [*self.withdrawals, *withdrawals]
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / WITHDRAWALS_FILE, _jsonl(self.withdrawals))
        self.__init__(self.folder, self.decisions, self.withdrawals)


def decisions_csv(decisions: Iterable[Decision]) -> str:
    """Decisions as CSV (for spreadsheets); `read_rows` reads it back."""
    from ccub.escape import csv_text

    columns = list(Decision.__dataclass_fields__)
    return csv_text([asdict(d) for d in decisions], columns)
