"""Reading what participants sent back: survey JSON and CSV files, and crowd-sourcing results.

Every file is checked against the study's key before anything is counted: the study id, the
items, the questions, and that each ranking is a full ranking of the item's slots. A file
that fails is rejected whole, with a message naming it, the line or answer, the field and the
fix; the other files are still read. Slots are translated to model names here, so nothing
after this module sees the shuffled slots.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESPONSE_FORMAT = "ccub-study-response"
IDENTIFIES = ("yes", "no", "unsaid")
MAX_BYTES = 20_000_000  # a response of 1,000 items x 4 questions is well under 1 MB


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
    finished: str = ""


@dataclass
class Responses:
    """What one study's files hold, participants already de-duplicated."""

    rankings: list[Ranking] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: int = 0


class ResponseError(ValueError):
    """One file that cannot be counted; the message names the place and the fix."""


def read_responses(folder: Path, studies: list[dict]) -> tuple[dict[str, Responses], list[str]]:
    """Every .json and .csv file under `folder` (recursively), each routed to the study whose id it
    carries and checked against its key. Returns the responses per study id, and one message per
    rejected file (a file no study claims included)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; put the files participants sent back in one folder")
    keys = {study["study_id"]: _Key(study) for study in studies}
    outs = {sid: Responses() for sid in keys}
    found_by_study: dict[str, dict[str, tuple[Participant, list[Ranking]]]] = {sid: {} for sid in keys}
    rejected = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".json", ".csv") and p.is_file()):
        try:
            sid, found = _read_file(path, keys)
        except ResponseError as exc:
            rejected.append(f"{path}: {exc}")
            continue
        outs[sid].files += 1
        for participant, rankings in found:
            people = found_by_study[sid]
            people[participant.id] = _merge(people.get(participant.id), participant, rankings, outs[sid].notes)
    for sid, people in found_by_study.items():
        for participant, rankings in people.values():
            outs[sid].participants[participant.id] = participant
            outs[sid].rankings.extend(rankings)
    return outs, rejected


def _merge(previous: tuple[Participant, list[Ranking]] | None, participant: Participant, rankings: list[Ranking],
           notes: list[str]) -> tuple[Participant, list[Ranking]]:
    """A participant in several files: disjoint answers add up (crowd batches); overlapping ones are a
    resubmission, and the one finished later is counted."""
    if previous is None:
        return participant, rankings
    old, old_rankings = previous
    if not {(r.item, r.question) for r in old_rankings} & {(r.item, r.question) for r in rankings}:
        return old, old_rankings + rankings
    later, earlier = (participant, old) if participant.finished > old.finished else (old, participant)
    notes.append(f"participant {participant.id} sent {earlier.source} and {later.source}, which answer the same "
                 f"items; only the later one ({later.source}) is counted")
    return (participant, rankings) if later is participant else previous


def _read_file(path: Path, keys: dict[str, _Key]) -> tuple[str, list[tuple[Participant, list[Ranking]]]]:
    if path.stat().st_size > MAX_BYTES:
        raise ResponseError(f"{path.stat().st_size:,} bytes is over the {MAX_BYTES:,} byte limit of a response file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ResponseError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    if path.suffix.lower() == ".json":
        return _from_json(text, path, keys)
    return _from_csv(text, path, keys)


# --------------------------------------------------------------------------- checks shared by every format


class _Key:
    """The study's key: item -> slot -> model, and the questions asked."""

    def __init__(self, study: dict):
        self.study_id = study["study_id"]
        self.slots = {item["id"]: item["slots"] for item in study["items"]}
        self.questions = list(study["questions"])

    def ranking(self, participant: str, item: str, question: str, value: Any, where: str) -> Ranking:
        if item not in self.slots:
            raise ResponseError(f"{where}: item {item!r} is not in this study; was the file made for another study?")
        if question not in self.questions:
            raise ResponseError(f"{where}: question {question!r} is not one of {self.questions}")
        slots = value.split(">") if isinstance(value, str) else value
        if not isinstance(slots, list) or not all(isinstance(s, str) for s in slots):
            raise ResponseError(f"{where}: ranking must list slots best first, like \"C>A>D>B\"")
        slots = [s.strip().upper() for s in slots]
        expected = sorted(self.slots[item])
        if sorted(slots) != expected:
            raise ResponseError(f"{where}: ranking {'>'.join(slots) or '(empty)'} of item {item} must order each of "
                                f"{', '.join(expected)} exactly once (a full ranking, best first)")
        return Ranking(participant, item, question, tuple(self.slots[item][s] for s in slots))



def _key_for(keys: dict[str, _Key], found: Any, where: str) -> _Key:
    if found in keys:
        return keys[found]
    if found in (None, "") and len(keys) == 1:  # crowd results may not carry the id; one study claims them
        return next(iter(keys.values()))
    raise ResponseError(f"{where}: study_id {found!r} is not the id of the study analysed ({', '.join(keys)}); the "
                        f"file belongs to another study, or the bundle was rebuilt with other runs or seed")


def _complete(rankings: list[Ranking], participant: str) -> None:
    seen: set[tuple[str, str]] = set()
    for r in rankings:
        if (r.item, r.question) in seen:
            raise ResponseError(f"participant {participant} ranks item {r.item} twice on {r.question}; keep one row")
        seen.add((r.item, r.question))


def _identifies(value: Any, where: str) -> str:
    if value is None or value == "":
        return "unsaid"
    text = str(value).strip().lower()
    if text not in IDENTIFIES:
        raise ResponseError(f"{where}: identifies is {value!r}; use one of {', '.join(IDENTIFIES)}")
    return text


# --------------------------------------------------------------------------- survey JSON


def _from_json(text: str, path: Path, keys: dict[str, _Key]) -> tuple[str, list[tuple[Participant, list[Ranking]]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResponseError(f"not valid JSON (line {exc.lineno}: {exc.msg}); ask for the file the survey saved, "
                            f"unedited") from exc
    except RecursionError as exc:
        raise ResponseError("JSON nested too deeply to be a file saved by survey.html") from exc
    if not isinstance(data, dict) or data.get("format") != RESPONSE_FORMAT:
        raise ResponseError(f"field format must be {RESPONSE_FORMAT!r}: this is not a file saved by survey.html")
    if data.get("version") != 1:
        raise ResponseError(f"field version is {data.get('version')!r}; this ccub reads version 1")
    if not isinstance(data.get("study_id"), str):
        raise ResponseError("field study_id is missing")
    key = _key_for(keys, data["study_id"], "field study_id")
    participant = data.get("participant")
    if not isinstance(participant, str) or not participant:
        raise ResponseError("field participant is missing")
    if data.get("consent") is not True:
        raise ResponseError("field consent is not true: the participant did not consent, so the answers are not used")
    affiliation = data.get("affiliation") or {}
    answers = data.get("answers")
    if not isinstance(answers, list) or not answers:
        raise ResponseError("field answers is empty: the participant ranked nothing")
    rankings = []
    for n, answer in enumerate(answers, start=1):
        if not isinstance(answer, dict):
            raise ResponseError(f"answers[{n}] is not an object")
        rankings.append(key.ranking(participant, str(answer.get("item")), str(answer.get("question")),
                                    answer.get("ranking"), f"answers[{n}]"))
    _complete(rankings, participant)
    shown = data.get("items_shown") or []
    unanswered = sorted({str(i) for i in shown} - {r.item for r in rankings})
    if unanswered:
        raise ResponseError(f"items {', '.join(unanswered)} were shown but not ranked: the survey was not finished")
    who = Participant(participant, _identifies(affiliation.get("identifies"), "field affiliation.identifies"),
                      str(path), bool(data.get("simulated")), str(data.get("finished") or ""))
    return key.study_id, [(who, rankings)]


# --------------------------------------------------------------------------- CSV: survey export and crowd results

_COLUMNS = {
    "participant": ("participant", "workerid", "worker_id", "participant_id"),
    "item": ("item", "input.item_id", "item_id"),
    "identifies": ("identifies", "answer.identifies"),
}


def _from_csv(text: str, path: Path, keys: dict[str, _Key]) -> tuple[str, list[tuple[Participant, list[Ranking]]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = {h.strip().lower(): h for h in reader.fieldnames or []}
    rows = list(reader)
    id_column = header.get("study_id") or header.get("input.study_id")
    ids = {(row.get(id_column) or "").strip() for row in rows} if id_column else {""}
    if len(ids) > 1:
        raise ResponseError(f"rows of {len(ids)} studies ({', '.join(sorted(ids))}) in one file; split it by study_id")
    key = _key_for(keys, next(iter(ids), ""), f"column {id_column or 'study_id'}")
    column = {name: next((header[a] for a in aliases if a in header), None) for name, aliases in _COLUMNS.items()}
    for name in ("participant", "item"):
        if column[name] is None:
            raise ResponseError(f"no {name} column (one of {', '.join(_COLUMNS[name])}); the header is "
                                f"{', '.join(reader.fieldnames or [])}")
    long = "question" in header and "ranking" in header  # survey export: one row per answer
    wide = {q: header.get(q) or header.get(f"answer.{q}") for q in key.questions}  # crowd: one row per item
    if not long and not any(wide.values()):
        raise ResponseError(f"no answers: expected question and ranking columns (survey export) or one column per "
                            f"question ({', '.join(key.questions)}, or Answer.<question>)")
    people: dict[str, tuple[Participant, list[Ranking]]] = {}
    for line, row in enumerate(rows, start=2):
        where = f"row {line}"
        participant = (row.get(column["participant"]) or "").strip()
        if not participant:
            raise ResponseError(f"{where}: empty {column['participant']}")
        if "consent" in header and (row.get(header["consent"]) or "").strip().lower() != "true":
            raise ResponseError(f"{where}: consent is not true; answers without consent are not used")
        identifies = _identifies(row.get(column["identifies"]) if column["identifies"] else None,
                                 f"{where}, {column['identifies']}")
        finished = (row.get(header["finished"]) or "") if "finished" in header else ""
        entry = people.setdefault(participant, (Participant(participant, identifies, str(path), False, finished), []))
        item = (row.get(column["item"]) or "").strip()
        if long:
            entry[1].append(key.ranking(participant, item, (row.get(header["question"]) or "").strip(),
                                        row.get(header["ranking"]) or "", where))
            continue
        for question, name in wide.items():
            if name is not None and (row.get(name) or "").strip():
                entry[1].append(key.ranking(participant, item, question, row[name], f"{where}, {name}"))
    if not people:
        raise ResponseError("no rows: the file has a header only")
    for participant, rankings in people.values():
        _complete(rankings, participant.id)
    return key.study_id, list(people.values())
