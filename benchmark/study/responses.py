"""Reading what participants sent back: survey JSON and CSV files, and crowd-sourcing results.

Every file is untrusted. It is read only if it is a regular file inside the folder and under
`limits.max_metadata_mb`; a JSON file is then bounded (nesting depth, text length) and its
every field's type checked against the survey's format (`shapes`), a CSV file's every cell
bounded and parsed as its column's type. Then it is checked against the study's key: the
study id, the items, the questions, and that each ranking is a full ranking of the item's
slots. A file that fails is rejected whole, with a message naming it, the row or field and the
fix; the other files are still read. Slots are translated to model names here, so nothing
after this module sees the shuffled slots.

A participant found in several files: answers that agree add up (crowd batches, the same file
sent twice); files that answer the same item differently are a conflict, settled by the
`resubmission` policy and reported per participant.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.study import shapes
from benchmark.study.shapes import quoted
from ccub.config import Limits
from ccub.rows import csv_rows, parse_json

if TYPE_CHECKING:
    from benchmark.study.bundle import StudyKey
from ccub.safeio import Root, UnsafeFile

RESPONSE_FORMAT = "ccub-study-response"
IDENTIFIES = ("yes", "no", "unsaid")
# What counts when one participant's files answer the same item differently.
RESUBMISSION = {"latest": "the file finished last is counted",
                "first": "the file finished first is counted",
                "drop": "the participant is left out"}
# The survey's file (survey.py documents it); fields it does not name are ignored.
RESPONSE_SHAPE = {
    "format": str, "version": int, "study_id": str, "participant": str, "consent": bool,
    "affiliation?": {"identifies?": str, "description?": str},
    "started?": str, "finished?": str, "simulated?": bool, "items_shown?": [str],
    "answers": [{"item": str, "question": str, "ranking": ([str], str)}],
}
UNEDITED = "ask for the file the survey saved, unedited"


@dataclass(frozen=True)
class Ranking:
    participant: str
    item: str
    question: str
    models: tuple[str, ...]  # best first


@dataclass
class Participant:
    id: str
    identifies: str  # yes, no, unsaid
    source: str  # the file it came from
    simulated: bool = False
    finished: datetime | None = None  # when the survey was finished, if the file says


@dataclass
class Conflict:
    """One participant whose files answer the same items differently, and what the policy kept."""

    participant: str
    policy: str
    kept: list[Participant]  # empty under "drop"
    set_aside: list[Participant]


@dataclass
class Responses:
    """What one study's files hold, participants already de-duplicated."""

    rankings: list[Ranking] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    files: int = 0
    resubmission: str = "latest"


class ResponseError(ValueError):
    """One file that cannot be counted; the message names the place and the fix."""


Submission = tuple[Participant, list[Ranking]]
_NEVER = datetime.min.replace(tzinfo=UTC)


def read_responses(folder: Path, studies: list[StudyKey], limits: Limits | None = None,
                   resubmission: str = "latest") -> tuple[dict[str, Responses], list[str]]:
    """Every .json and .csv file under `folder` (recursively), each routed to the study whose id it
    carries and checked against its key. Returns the responses per study id, and one message per
    rejected file (a file no study claims included)."""
    if resubmission not in RESUBMISSION:
        raise ValueError(f"resubmission {resubmission!r}: use one of {', '.join(RESUBMISSION)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; put the files participants sent back in one folder")
    limits = limits or Limits()
    keys = {study.study_id: _Key(study) for study in studies}
    outs = {sid: Responses(resubmission=resubmission) for sid in keys}
    submissions: dict[str, dict[str, list[Submission]]] = {sid: {} for sid in keys}
    rejected = []
    root = Root(folder)
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".json", ".csv") and p.is_file()):
        try:
            sid, found = _read_file(root, path, keys, limits)
        except ResponseError as exc:
            rejected.append(f"{path}: {exc}")
            continue
        outs[sid].files += 1
        for participant, rankings in found:
            submissions[sid].setdefault(participant.id, []).append((participant, rankings))
    for sid, people in submissions.items():
        for pid, theirs in people.items():
            counted, conflict = _settle(pid, theirs, resubmission)
            if conflict is not None:
                outs[sid].conflicts.append(conflict)
            if counted is not None:
                outs[sid].participants[pid] = counted[0]
                outs[sid].rankings.extend(counted[1])
    return outs, rejected


def _settle(pid: str, submissions: list[Submission], policy: str) -> tuple[Submission | None, Conflict | None]:
    """One participant's files, taken in the order the policy prefers, latest or earliest finished
    first (a file without a time counts as the earliest; ties go by file name, a later name counting
    as later): each adds its answers unless it contradicts an answer already counted, and is then
    set aside. Under "drop" a contradiction leaves the participant out."""
    ordered = sorted(submissions, key=lambda s: (s[0].finished is not None, s[0].finished or _NEVER, s[0].source),
                     reverse=policy == "latest")
    answers: dict[tuple[str, str], tuple[str, ...]] = {}
    kept, set_aside = [], []
    for participant, rankings in ordered:
        theirs = {(r.item, r.question): r.models for r in rankings}
        if any(answers.get(k, v) != v for k, v in theirs.items()):
            set_aside.append(participant)
            continue
        answers.update(theirs)
        kept.append(participant)
    if not set_aside:
        return (kept[0], _rankings(pid, answers)), None
    if policy == "drop":
        return None, Conflict(pid, policy, [], [p for p, _ in ordered])
    return (kept[0], _rankings(pid, answers)), Conflict(pid, policy, kept, set_aside)


def _rankings(pid: str, answers: dict[tuple[str, str], tuple[str, ...]]) -> list[Ranking]:
    return [Ranking(pid, item, question, models) for (item, question), models in answers.items()]


def _read_file(root: Root, path: Path, keys: dict[str, _Key], limits: Limits) -> tuple[str, list[Submission]]:
    try:
        data, _ = root.read(path.relative_to(root.path).as_posix(), int(limits.max_metadata_mb * 1e6))
    except UnsafeFile as exc:
        raise ResponseError(f"{exc}{' (limits.max_metadata_mb)' if exc.check == 'file.too_large' else ''}") from exc
    if path.suffix.lower() == ".json":
        return _from_json(data, path, keys, limits)
    return _from_csv(data, path, keys, limits)


# --------------------------------------------------------------------------- checks shared by every format


class _Key:
    """The study's key: item -> slot -> model, and the questions asked."""

    def __init__(self, study: StudyKey):
        self.study_id = study.study_id
        self.slots = {item["id"]: item["slots"] for item in study.items}
        self.questions = list(study.questions)

    def ranking(self, participant: str, item: str, question: str, value: str | list[str], where: str) -> Ranking:
        if item not in self.slots:
            raise ResponseError(f"{where}: item {quoted(item)} is not in this study; was the file made for another "
                                f"study?")
        if question not in self.questions:
            raise ResponseError(f"{where}: question {quoted(question)} is not one of {self.questions}")
        slots = [s.strip().upper() for s in (value.split(">") if isinstance(value, str) else value)]
        expected = sorted(self.slots[item])
        if sorted(slots) != expected:
            raise ResponseError(f"{where}: ranking {quoted('>'.join(slots))} of item {item} must order "
                                f"each of {', '.join(expected)} exactly once (a full ranking, best first)")
        return Ranking(participant, item, question, tuple(self.slots[item][s] for s in slots))


def _key_for(keys: dict[str, _Key], found: str, where: str) -> _Key:
    if found in keys:
        return keys[found]
    if found == "" and len(keys) == 1:  # crowd results may not carry the id; one study claims them
        return next(iter(keys.values()))
    raise ResponseError(f"{where}: study_id {quoted(found)} is not the id of the study analysed "
                        f"({', '.join(keys)}); the file belongs to another study, or the bundle was rebuilt with "
                        f"other runs or seed")


def _complete(rankings: list[Ranking], participant: str) -> None:
    seen: set[tuple[str, str]] = set()
    for r in rankings:
        if (r.item, r.question) in seen:
            raise ResponseError(f"participant {quoted(participant)} ranks item {r.item} twice on {r.question}; "
                                f"keep one")
        seen.add((r.item, r.question))


def _identifies(value: str, where: str) -> str:
    text = value.strip().lower()
    if text == "":
        return "unsaid"
    if text not in IDENTIFIES:
        raise ResponseError(f"{where}: identifies is {quoted(value)}; use one of {', '.join(IDENTIFIES)}")
    return text


def _finished(value: str, where: str) -> datetime | None:
    """An ISO 8601 time (the survey writes UTC, like 2025-05-01T09:20:00.000Z), or None when empty;
    a time without a zone is read as UTC, so every time compares with every other."""
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ResponseError(f"{where}: {quoted(value)} is not an ISO 8601 time like 2025-05-01T09:20:00Z; it "
                            f"orders a participant's resubmissions") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- survey JSON


def _parse_json(data: bytes, limits: Limits) -> Any:
    value, problem, _ = parse_json(data, limits)
    if problem:
        raise ResponseError(f"the file {problem}; {UNEDITED}")
    return value


def _from_json(raw: bytes, path: Path, keys: dict[str, _Key], limits: Limits) -> tuple[str, list[Submission]]:
    data = _parse_json(raw, limits)
    if not isinstance(data, dict) or data.get("format") != RESPONSE_FORMAT:
        raise ResponseError(f"field format must be {RESPONSE_FORMAT!r}: this is not a file saved by survey.html")
    try:
        shapes.check_shape(data, RESPONSE_SHAPE)
    except shapes.ShapeError as exc:
        raise ResponseError(f"{exc}; {UNEDITED}") from exc
    if data["version"] != 1:
        raise ResponseError(f"field version is {data['version']}; this ccub reads version 1")
    key = _key_for(keys, data["study_id"], "field study_id")
    participant = data["participant"]
    if not participant.strip():
        raise ResponseError("field participant is empty")
    if data["consent"] is not True:
        raise ResponseError("field consent is not true: the participant did not consent, so the answers are not used")
    if not data["answers"]:
        raise ResponseError("field answers is empty: the participant ranked nothing")
    rankings = [key.ranking(participant, a["item"], a["question"], a["ranking"], f"answers[{n}]")
                for n, a in enumerate(data["answers"], start=1)]
    _complete(rankings, participant)
    unanswered = sorted(set(data.get("items_shown") or []) - {r.item for r in rankings})
    if unanswered:
        raise ResponseError(f"items {', '.join(map(quoted, unanswered[:10]))} were shown but not ranked: the survey "
                            f"was not finished")
    affiliation = data.get("affiliation") or {}
    who = Participant(participant, _identifies(affiliation.get("identifies") or "", "field affiliation.identifies"),
                      str(path), bool(data.get("simulated")), _finished(data.get("finished") or "", "field finished"))
    return key.study_id, [(who, rankings)]


# --------------------------------------------------------------------------- CSV: survey export and crowd results

_COLUMNS = {
    "participant": ("participant", "workerid", "worker_id", "participant_id"),
    "item": ("item", "input.item_id", "item_id"),
    "identifies": ("identifies", "answer.identifies"),
}


def _csv_table(data: bytes, limits: Limits) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line, column -> cell)]): every row as wide as the header, every cell within
    `limits.max_field_chars`; a row is numbered by the line it starts on."""
    table = []
    for row in csv_rows(io.BytesIO(data), limits):
        if row.problem:
            raise ResponseError(f"line {row.line} {row.problem}; save the file as CSV again (quote cells that "
                                f"hold commas, quotes or line breaks)")
        table.append((row.line, row.value))
    if not table:
        raise ResponseError("the file is empty")
    header = table[0][1]
    for line, cells in table:
        if len(cells) != len(header):
            raise ResponseError(f"line {line} has {len(cells)} cells but the header has {len(header)}; quote "
                                f"cells that hold commas")
    return header, [(line, dict(zip(header, cells, strict=True))) for line, cells in table[1:]]


def _from_csv(raw: bytes, path: Path, keys: dict[str, _Key], limits: Limits) -> tuple[str, list[Submission]]:
    fieldnames, rows = _csv_table(raw, limits)
    header = {h.strip().lower(): h for h in fieldnames}
    id_column = header.get("study_id") or header.get("input.study_id")
    ids = {row[id_column].strip() for _, row in rows} if id_column else {""}
    if len(ids) > 1:
        raise ResponseError(f"rows of {len(ids)} studies ({', '.join(map(quoted, sorted(ids)[:5]))}) in one file; "
                            f"split it by study_id")
    key = _key_for(keys, next(iter(ids), ""), f"column {id_column or 'study_id'}")
    column = {name: next((header[a] for a in aliases if a in header), None) for name, aliases in _COLUMNS.items()}
    for name in ("participant", "item"):
        if column[name] is None:
            raise ResponseError(f"no {name} column (one of {', '.join(_COLUMNS[name])}); the header is "
                                f"{', '.join(map(quoted, fieldnames[:20]))}")
    long = "question" in header and "ranking" in header  # survey export: one row per answer
    wide = {q: header.get(q) or header.get(f"answer.{q}") for q in key.questions}  # crowd: one row per item
    if not long and not any(wide.values()):
        raise ResponseError(f"no answers: expected question and ranking columns (survey export) or one column per "
                            f"question ({', '.join(key.questions)}, or Answer.<question>)")
    people: dict[str, Submission] = {}
    for number, row in rows:
        where = f"line {number}"
        participant = row[column["participant"]].strip()
        if not participant:
            raise ResponseError(f"{where}: empty {column['participant']}")
        if "consent" in header and row[header["consent"]].strip().lower() != "true":
            raise ResponseError(f"{where}: consent is not true; answers without consent are not used")
        identifies = _identifies(row[column["identifies"]] if column["identifies"] else "",
                                 f"{where}, {column['identifies']}")
        finished = _finished(row[header["finished"]] if "finished" in header else "", f"{where}, finished")
        entry = people.setdefault(participant, (Participant(participant, identifies, str(path), False, finished), []))
        item = row[column["item"]].strip()
        if long:
            entry[1].append(key.ranking(participant, item, row[header["question"]].strip(), row[header["ranking"]],
                                        where))
            continue
        for question, name in wide.items():
            if name is not None and row[name].strip():
                entry[1].append(key.ranking(participant, item, question, row[name], f"{where}, {name}"))
    if not people:
        raise ResponseError("no rows: the file has a header only")
    for participant, rankings in people.values():
        _complete(rankings, participant.id)
    return key.study_id, list(people.values())
