"""Versioned releases of the clean set, what changed between two of them, and the lineage of a dataset.

`ccub release VERSION` freezes DATA/clean (and DATA/index) into DATA/releases/VERSION/:

    releases/VERSION/clean/...        the culture folders as they were, with cards carrying VERSION
                     index/...        the hash index `ccub validate --against` reads
                     reports/         the validate report (and card facts) the release was made from
                     SHA256SUMS       `<sha256>  <path>` of every file of the culture folders, sorted
                     release.json     `ReleaseRecord`: version, digest, counts, changelog

The release is built in a hidden folder beside the others and renamed into place, so a release
folder is either complete or absent; a version that exists is never written again.

**Digest.** The SHA-256 of the release's SHA256SUMS text: every regular file under the culture
folders (metadata.jsonl files, images, negatives), one line `<sha256>  <culture>/<path>` each, in
byte order of the paths. The cards (README.md, croissant.json, plots) are not part of it: they are
generated, and carry the date they were. The same digest of DATA/clean says whether the current
clean set is a release.

**Rows** are keyed by `source_sha256` (the submitted file's digest), so a photo keeps its identity
across validations whatever its exported name; rows from before exports carried it are keyed by
their exported image's digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from ccub.config import ConfigError, build_dataclass
from ccub.recordfile import RecordError, RecordFile

RELEASES_DIR = "releases"
RELEASE_FILE = "release.json"
SUMS_FILE = "SHA256SUMS"
CURRENT = "current"
CAUSES = ("withdrawn", "rejected", "replaced", "other")
TMP_PREFIX = ".ccub-release-"
_VERSION = re.compile(r"(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,5})){1,2}(-[0-9A-Za-z]{1,20}(\.[0-9A-Za-z]{1,20}){0,3})?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
CELL_KEYS = ("culture", "category", "before", "after", "added", "removed", "captions_changed")
CONTRIBUTOR_KEYS = ("contributor", "added", "removed", "captions_changed")


class ReleaseError(ValueError):
    """A release that cannot be made or read; the message names the folder or file and the fix."""


# ---------------------------------------------------------------------------- versions


def version_problem(version: Any) -> str | None:
    """None for a usable version ("1.0", "2.1.3", "1.0.0-rc.1"), else what is wrong with it."""
    if not isinstance(version, str):
        return f"version {version!r} is not text"
    if not _VERSION.fullmatch(version):
        return (f"version {version[:60]!r} is not a release version: two or three numbers joined by dots, "
                f"optionally a pre-release after a hyphen (1.0, 1.2.3, 2.0.0-rc.1)")
    return None


def check_version(version: str) -> str:
    problem = version_problem(version)
    if problem:
        raise ReleaseError(problem)
    return version


def version_key(version: str) -> tuple:
    """Sort key: numbers compared as numbers, 1.0 == 1.0.0, a pre-release before its release."""
    core, _, pre = version.partition("-")
    numbers = tuple(int(n) for n in core.split("."))
    numbers += (0,) * (3 - len(numbers))
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (numbers, 0 if pre else 1, parts)


# ---------------------------------------------------------------------------- files and digests


def culture_folders(clean: Path) -> list[Path]:
    """The culture folders of a clean set: those holding a <split>/metadata.jsonl."""
    clean = Path(clean)
    if not clean.is_dir():
        return []
    return sorted({m.parent.parent for m in clean.glob("*/*/metadata.jsonl") if not m.is_symlink()})


def dataset_files(clean: Path) -> list[tuple[str, str]]:
    """(path relative to `clean`, sha256) of every regular file under its culture folders, sorted."""
    found = []
    clean = Path(clean)
    for folder in culture_folders(clean):
        for current, dirs, files in os.walk(folder):  # links are not followed
            dirs.sort()
            for name in files:
                path = Path(current) / name
                if stat.S_ISREG(path.lstat().st_mode):
                    found.append((path.relative_to(clean).as_posix(), _file_sha256(path)))
    return sorted(found, key=lambda item: item[0].encode("utf-8"))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sums_text(files: list[tuple[str, str]]) -> str:
    """The `sha256sum` listing of `files` (what SHA256SUMS holds)."""
    return "".join(f"{sha}  {rel}\n" for rel, sha in files)


def clean_digest(clean: Path) -> str:
    """The digest of a clean set (see the module's notes): the SHA-256 of its SHA256SUMS text."""
    return hashlib.sha256(sums_text(dataset_files(clean)).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    key: str  # source_sha256 (or the exported image's digest)
    record: str  # the record's key when it was validated (source_file)
    contributor: str
    text: str
    culture: str
    category: str


def read_rows(clean: Path) -> dict[str, Row]:
    """Every row of a clean set, by its key."""
    rows: dict[str, Row] = {}
    clean = Path(clean)
    for folder in culture_folders(clean):
        for meta in sorted(folder.glob("*/metadata.jsonl")):
            with open(meta, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                    except ValueError:
                        data = None
                    if not isinstance(data, dict):
                        raise ReleaseError(f"{meta}:{number}: not a JSON object; this file is ccub's export: "
                                           "rerun `ccub validate`")
                    row = _row(data, meta, folder.name)
                    key = row.key if row.key not in rows else f"{row.key}:{meta.parent.relative_to(clean)}/" \
                        f"{data.get('file_name')}"
                    rows[key] = replace(row, key=key)
    return rows


def _row(data: dict[str, Any], meta: Path, culture: str) -> Row:
    def text(name: str, default: str = "") -> str:
        value = data.get(name)
        return value if isinstance(value, str) and value else default

    key = text("source_sha256")
    if not _SHA256.fullmatch(key):
        image = meta.parent / text("file_name")
        key = f"exported:{_file_sha256(image)}" if image.is_file() and image != meta.parent else \
            f"row:{meta.parent.name}/{text('file_name')}"
    return Row(key=key, record=text("source_file", key), contributor=text("contributor", "(unknown)"),
               text=text("text"), culture=text("culture", culture), category=text("category", "(none)"))


def counts_of(rows: dict[str, Row]) -> dict[str, dict[str, int]]:
    cells: dict[str, Counter[str]] = {}
    for row in rows.values():
        cells.setdefault(row.culture, Counter())[row.category] += 1
    return {c: dict(sorted(v.items())) for c, v in sorted(cells.items())}


# ---------------------------------------------------------------------------- changelog


@dataclass
class Changelog:
    """What changed from `old` (a release; None: nothing, the first release) to `new`."""

    old: str | None
    new: str
    before: int  # rows of old
    after: int  # rows of new
    added: list[str]  # keys (source_sha256) of rows only in new
    removed: dict[str, list[str]]  # cause (CAUSES) -> keys of rows only in old
    captions_changed: list[str]  # keys of rows in both whose caption differs
    cells: list[dict[str, Any]]  # CELL_KEYS: per culture and category
    contributors: list[dict[str, Any]]  # CONTRIBUTOR_KEYS: per contributor id that changed

    @property
    def removed_total(self) -> int:
        return sum(len(v) for v in self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Changelog:
        if not isinstance(data, dict):
            raise ReleaseError(f"{where}: changelog is {type(data).__name__}, expected an object")
        try:
            log = build_dataclass(cls, data, f"{where} changelog")
        except ConfigError as exc:
            raise ReleaseError(str(exc)) from exc
        problems = log.problems()
        if problems:
            raise ReleaseError(f"{where} changelog: {'; '.join(problems)}")
        return log

    def problems(self) -> list[str]:
        found = []
        for name in (self.old, self.new):
            if name is not None and name != CURRENT and version_problem(name):
                found.append(version_problem(name))
        unknown = sorted(set(self.removed) - set(CAUSES))
        if unknown:
            found.append(f"removed has unknown cause(s) {', '.join(unknown)[:200]}; known: {', '.join(CAUSES)}")
        for name, rows, keys in (("cells", self.cells, CELL_KEYS), ("contributors", self.contributors,
                                                                    CONTRIBUTOR_KEYS)):
            for row in rows:
                if not isinstance(row, dict) or set(row) != set(keys) or not all(
                        isinstance(row[k], str) if k in ("culture", "category", "contributor")
                        else isinstance(row[k], int) and not isinstance(row[k], bool) and row[k] >= 0 for k in keys):
                    found.append(f"{name}: a row is not {{{', '.join(keys)}}} (names as text, counts as whole "
                                 "numbers)")
                    break
        if min(self.before, self.after) < 0:
            found.append("before and after must not be negative")
        return found


def changelog(old_rows: dict[str, Row], new_rows: dict[str, Row], old: str | None, new: str,
              steward: Any = None) -> Changelog:
    """The changelog between two sets of rows. `steward` (a `ccub.steward.Steward`, or None) says
    why a row left: withdrawn, rejected on review, replaced (its record key now has another
    file), or other."""
    added = sorted(k for k in new_rows if k not in old_rows)
    gone = sorted(k for k in old_rows if k not in new_rows)
    changed = sorted(k for k in old_rows if k in new_rows and old_rows[k].text != new_rows[k].text)
    now_by_record = {r.record: r.key for r in new_rows.values()}
    rejected = _rejected_images(steward)
    removed: dict[str, list[str]] = {cause: [] for cause in CAUSES}
    for key in gone:
        row = old_rows[key]
        if steward is not None and steward.is_withdrawn(key, row.contributor):
            cause = "withdrawn"
        elif key in rejected:
            cause = "rejected"
        elif now_by_record.get(row.record, key) != key:
            cause = "replaced"
        else:
            cause = "other"
        removed[cause].append(key)

    def tally(rows: dict[str, Row], keys: list[str], by) -> Counter:
        return Counter(by(rows[k]) for k in keys)

    cell = lambda r: (r.culture, r.category)  # noqa: E731
    before = tally(old_rows, list(old_rows), cell)
    after = tally(new_rows, list(new_rows), cell)
    plus, minus, edits = tally(new_rows, added, cell), tally(old_rows, gone, cell), tally(new_rows, changed, cell)
    cells = [dict(zip(CELL_KEYS, (c, g, before[(c, g)], after[(c, g)], plus[(c, g)], minus[(c, g)],
                                  edits[(c, g)]), strict=True))
             for c, g in sorted(set(before) | set(after))]
    who = lambda r: r.contributor  # noqa: E731
    plus_c, minus_c, edits_c = tally(new_rows, added, who), tally(old_rows, gone, who), tally(new_rows, changed, who)
    contributors = [{"contributor": c, "added": plus_c[c], "removed": minus_c[c], "captions_changed": edits_c[c]}
                    for c in sorted(set(plus_c) | set(minus_c) | set(edits_c))]
    return Changelog(old=old, new=new, before=len(old_rows), after=len(new_rows), added=added, removed=removed,
                     captions_changed=changed, cells=cells, contributors=contributors)


def _rejected_images(steward: Any) -> set[str]:
    """Images whose latest decision is a rejection."""
    latest: dict[str, str] = {}
    for decision in getattr(steward, "decisions", None) or ():
        latest[decision.image_sha256] = decision.decision
    return {image for image, decision in latest.items() if decision == "reject"}


def changelog_markdown(log: Changelog, digest: str) -> str:
    """The card's changelog section (counts only: contributor ids stay in release.json)."""
    from data_cards.hf_card import _table, md_inline

    new = f"release {log.new}" if log.new != CURRENT else "the current clean set"
    head = f"This is {md_inline(new)} (digest `{digest}`)."
    if log.old is None:
        return f"{head} First release: {log.after} images.\n"
    causes = ", ".join(f"{len(v)} {k}" for k, v in log.removed.items() if v)
    lines = [f"{head} Compared with release {md_inline(log.old)}: {len(log.added)} images added, "
             f"{log.removed_total} removed{f' ({causes})' if causes else ''}, {len(log.captions_changed)} "
             f"caption{'s' if len(log.captions_changed) != 1 else ''} changed; {log.before} → {log.after} images; "
             f"{len(log.contributors)} contributor{'s' if len(log.contributors) != 1 else ''} with changes.", ""]
    rows = [(c["culture"], c["category"], c["before"], c["after"], c["added"], c["removed"], c["captions_changed"])
            for c in log.cells if any(c[k] for k in ("added", "removed", "captions_changed"))]
    if rows:
        lines.append(str(_table(("culture", "category", log.old, log.new, "added", "removed", "captions changed"),
                                rows)))
    return "\n".join(lines).strip("\n") + "\n"


# ---------------------------------------------------------------------------- the release record


@dataclass
class ReleaseRecord(RecordFile):
    """`DATA/releases/VERSION/release.json`."""

    SCHEMA: ClassVar[str] = "ccub.release"
    VERSION: ClassVar[int] = 1
    FIX: ClassVar[str] = ("a release is never rewritten: restore its folder from a backup (or a copy of it), "
                          "or make a new release with `ccub release`")

    version: str
    created: str  # ISO 8601 time
    digest: str  # see the module's notes
    files: int  # files the digest covers
    images: int  # rows
    contributors: int
    counts: dict[str, dict[str, int]]  # culture -> category -> rows
    previous: str | None  # the release the changelog compares with
    changelog: dict[str, Any]  # Changelog
    submissions: dict[str, Any] = field(default_factory=dict)  # root, validated: from the validate report
    ccub_version: str = ""
    tool: str = "ccub release"

    def problems(self) -> list[str]:
        found = [p for p in (version_problem(self.version),
                             version_problem(self.previous) if self.previous is not None else None) if p]
        if not _SHA256.fullmatch(self.digest):
            found.append(f"digest {self.digest[:80]!r} is not a SHA-256 (64 hex digits)")
        try:
            datetime.fromisoformat(self.created)
        except ValueError:
            found.append(f"created {self.created[:40]!r} is not an ISO 8601 time")
        if min(self.files, self.images, self.contributors) < 0 or any(
                n < 0 for row in self.counts.values() for n in row.values()):
            found.append("counts must not be negative")
        try:
            log = Changelog.from_dict(self.changelog, "release.json")
        except ReleaseError as exc:
            found.append(str(exc))
        else:
            if log.new != self.version or log.old != self.previous:
                found.append(f"the changelog compares {log.old} with {log.new}, not {self.previous} with "
                             f"{self.version}")
        return found

    def log(self) -> Changelog:
        return Changelog.from_dict(self.changelog, RELEASE_FILE)


def releases_dir(data: Path) -> Path:
    return Path(data) / RELEASES_DIR


def list_releases(data: Path) -> list[str]:
    """The versions released in `data`, oldest first (folders holding a release.json)."""
    folder = releases_dir(data)
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()
             and not version_problem(p.name) and (p / RELEASE_FILE).is_file()]
    return sorted(found, key=version_key)


def read_release(data: Path, version: str) -> tuple[Path, ReleaseRecord]:
    """(folder, record) of release `version` of `data`."""
    problem = version_problem(version)
    if problem:
        raise ReleaseError(f"{problem}; the releases of {data}: {', '.join(list_releases(data)) or 'none'}")
    folder = releases_dir(data) / version
    if not (folder / RELEASE_FILE).is_file():
        raise ReleaseError(f"{folder}: no release {version} (no {RELEASE_FILE}); the releases of {data}: "
                           f"{', '.join(list_releases(data)) or 'none yet (`ccub release VERSION` makes one)'}")
    return folder, read_record(folder)


def read_record(folder: Path) -> ReleaseRecord:
    path = Path(folder) / RELEASE_FILE
    try:
        record = ReleaseRecord.read(path)
    except RecordError as exc:
        raise ReleaseError(str(exc)) from exc
    if record.version != Path(folder).name:
        raise ReleaseError(f"{path}: version {record.version!r}, but the folder is {Path(folder).name!r}; "
                           f"{ReleaseRecord.FIX}")
    return record


# ---------------------------------------------------------------------------- making a release


def make_release(data: Path, version: str, steward: Any = None, now: str | None = None) -> ReleaseRecord:
    """Freeze DATA/clean (and DATA/index) as release `version`; see the module's notes."""
    from ccub import __version__
    from ccub.outdir import exclusive

    data = Path(data)
    check_version(version)
    clean = data / "clean"
    if not culture_folders(clean):
        raise ReleaseError(f"{clean}: no clean set to release; run `ccub validate SUBMISSIONS --out {data}` first")
    report_path = data / "reports" / "report.json"
    if not report_path.is_file():
        raise ReleaseError(f"{report_path} not found; run `ccub validate SUBMISSIONS --out {data}` first")
    with exclusive(data, command="ccub release"):
        target = releases_dir(data) / version
        if target.exists():
            raise ReleaseError(f"{target}: release {version} exists, and a release is never rewritten; give a new "
                               f"version (released so far: {', '.join(list_releases(data))})")
        existing = list_releases(data)
        same = [v for v in existing if version_key(v) == version_key(version)]
        if same:
            raise ReleaseError(f"release {version} is release {same[0]} (the same version); give a new version")
        if existing and version_key(existing[-1]) > version_key(version):
            raise ReleaseError(f"release {existing[-1]} is newer than {version}; versions only go up: give one "
                               f"after {existing[-1]}")
        previous = existing[-1] if existing else None
        releases_dir(data).mkdir(parents=True, exist_ok=True)
        for stale in releases_dir(data).glob(f"{TMP_PREFIX}*"):  # left by a killed release: we hold the lock
            _remove(stale)
        from ccub.files import temporary_folder

        tmp = temporary_folder(releases_dir(data), TMP_PREFIX)
        try:
            record = _build(data, tmp, version, previous, steward, now or _now(), __version__)
            _read_only(tmp)
            os.rename(tmp, target)
        except BaseException:
            _remove(tmp)
            raise
    return record


def _build(data: Path, tmp: Path, version: str, previous: str | None, steward: Any, now: str,
           ccub_version: str) -> ReleaseRecord:
    from ccub.report.record import REPORT_FILE, ValidationReport

    for folder in culture_folders(data / "clean"):
        shutil.copytree(folder, tmp / "clean" / folder.name, symlinks=True)
    if (data / "index").is_dir():
        shutil.copytree(data / "index", tmp / "index", symlinks=True)
    (tmp / "reports").mkdir()
    for name in (REPORT_FILE, "card.json"):
        if (data / "reports" / name).is_file():
            shutil.copy2(data / "reports" / name, tmp / "reports" / name)
    files = dataset_files(tmp / "clean")
    sums = sums_text(files)
    (tmp / SUMS_FILE).write_text(sums, encoding="utf-8")
    digest = hashlib.sha256(sums.encode("utf-8")).hexdigest()
    rows = read_rows(tmp / "clean")
    old_rows = read_rows(releases_dir(data) / previous / "clean") if previous else {}
    log = changelog(old_rows, rows, previous, version, steward)
    try:
        report = ValidationReport.read(tmp / "reports" / REPORT_FILE)
    except RecordError as exc:
        raise ReleaseError(str(exc)) from exc
    submissions = {"root": str(report.input.get("root") or ""), "validated": report.created_at}
    record = ReleaseRecord(version=version, created=now, digest=digest, files=len(files), images=len(rows),
                           contributors=len({r.contributor for r in rows.values()}), counts=counts_of(rows),
                           previous=previous, changelog=log.as_dict(), submissions=submissions,
                           ccub_version=ccub_version)
    _write_cards(data, tmp, report.as_dict(), version, changelog_markdown(log, digest))
    record.write(tmp / RELEASE_FILE)
    return record


def _write_cards(data: Path, tmp: Path, report: dict[str, Any], version: str, log: str) -> None:
    """The release's own cards: the facts the clean set's cards were written from, with `version`."""
    from data_cards import build_cards, recorded_meta
    from data_cards.facts import compute_stats

    meta = replace(recorded_meta(data), version=version)
    stats = compute_stats(report, tmp, contributor_min_images=meta.contributor_min_images)
    for rel, content in build_cards(meta, stats, changelog=log).items():
        path = tmp / "clean" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _read_only(folder: Path) -> None:
    """Files of a release are read-only (folders stay writable, so it can still be deleted)."""
    for current, _, files in os.walk(folder):
        for name in files:
            path = Path(current) / name
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- diff


def rows_of(data: Path, name: str) -> dict[str, Row]:
    """The rows of release `name` of `data`, or of its current clean set ("current")."""
    if name == CURRENT:
        clean = Path(data) / "clean"
        if not culture_folders(clean):
            raise ReleaseError(f"{clean}: no current clean set; run `ccub validate SUBMISSIONS --out {data}`")
        return read_rows(clean)
    folder, _ = read_release(data, name)
    return read_rows(folder / "clean")


def diff(data: Path, old: str, new: str, steward: Any = None) -> Changelog:
    """The changelog from release `old` to `new` (a release, or "current" for DATA/clean)."""
    if old == CURRENT:
        raise ReleaseError("the first of the two must be a release: `ccub diff VERSION current`")
    return changelog(rows_of(data, old), rows_of(data, new), old, new, steward)


# ---------------------------------------------------------------------------- lineage


def find_release(path: Path) -> Path | None:
    """The release folder (DATA/releases/VERSION/) holding `path`, if any."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if folder.parent.name == RELEASES_DIR and (folder / RELEASE_FILE).is_file():
            return folder
    return None


def find_clean(path: Path) -> Path | None:
    """The current clean set (DATA/clean/) holding `path`, if any (a `ccub validate --out` folder)."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if folder.name == "clean" and (folder.parent / "reports").is_dir() \
                and folder.parent.parent.name != RELEASES_DIR:
            return folder
    return None


def dataset_lineage(dataset: Path) -> tuple[str | None, str | None]:
    """(release, digest) of a training dataset: the version of the release it is a folder of and
    that release's digest recomputed now; ("current", the clean set's digest) for a folder of
    DATA/clean; (None, None) for a folder elsewhere."""
    release = find_release(dataset)
    if release is not None:
        return release.name, clean_digest(release / "clean")
    clean = find_clean(dataset)
    if clean is not None:
        return CURRENT, clean_digest(clean)
    return None, None


def _step(stage: str, what: str, details: str, **facts: Any) -> dict[str, Any]:
    return {"stage": stage, "what": what, "details": details, "facts": facts}


def trace(run: Path, study_paths: list[Path]) -> dict[str, Any]:
    """The lineage of run folder `run`: submissions -> release -> run -> benchmark -> studies, as
    steps {stage, what, details, facts}, with notes on what could not be found or does not match."""
    from benchmark.record import BENCHMARK_FILE, BenchmarkRecord
    from benchmark.study.bundle import STUDY_FILE, StudyKey
    from ccub.report.record import REPORT_FILE, ValidationReport
    from finetune.run_record import RUN_FILE, RunRecord

    run = Path(run)
    try:
        record = RunRecord.read_from(run)
    except RecordError as exc:
        raise ReleaseError(str(exc)) from exc
    notes: list[str] = []
    chain: list[dict[str, Any]] = []
    dataset = Path(record.dataset)
    release_folder = find_release(dataset) if record.release not in (None, CURRENT) else None
    data: Path | None = None
    if record.release is None:
        notes.append(f"{run / RUN_FILE} records no release: it was trained on {dataset}, outside a release and the "
                     "clean set (or by a ccub before releases)")
    elif record.release == CURRENT:
        clean = find_clean(dataset)
        data = clean.parent if clean else None
    elif release_folder is None or release_folder.name != record.release:
        notes.append(f"release {record.release} is not found at {dataset} any more")
    else:
        data = release_folder.parent.parent

    # submissions: the validate report the data came from
    report_path = (release_folder / "reports" / REPORT_FILE) if release_folder else \
        (data / "reports" / REPORT_FILE) if data else None
    if report_path is not None and report_path.is_file():
        try:
            report = ValidationReport.read(report_path)
            root = str(report.input.get("root") or "?")
            chain.append(_step("submissions", root, f"validated {report.created_at}", root=root,
                               validated=report.created_at, report=str(report_path)))
        except RecordError as exc:
            notes.append(str(exc))
    elif report_path is not None:
        notes.append(f"{report_path} not found: the submissions are unknown")

    # release
    if release_folder is not None:
        try:
            rel = read_record(release_folder)
        except ReleaseError as exc:
            notes.append(str(exc))
        else:
            same = rel.digest == record.release_digest
            chain.append(_step("release", rel.version, f"digest {rel.digest}; {rel.images} images, created "
                               f"{rel.created}" + ("" if same else "; CHANGED since the run read it"),
                               version=rel.version, digest=rel.digest, folder=str(release_folder),
                               run_digest=record.release_digest, matches=same))
            if not same:
                notes.append(f"the run read release {rel.version} with digest {record.release_digest}, but "
                             f"{release_folder / RELEASE_FILE} says {rel.digest}: the release's files were changed")
    elif record.release == CURRENT:
        named = [v for v in (list_releases(data) if data else []) if
                 _safe_digest(data, v) == record.release_digest]
        chain.append(_step("release", CURRENT, f"the clean set as it was, digest {record.release_digest}"
                           + (f" (the files of release {', '.join(named)})" if named else "; not a release"),
                           version=CURRENT, digest=record.release_digest, same_as=named))

    # run
    chain.append(_step("run", str(run), f"base {record.base_model}, variant {record.variant}, {record.steps} steps, "
                       f"{record.images} images" + (" (smoke run)" if record.smoke_run else ""),
                       base=record.base_model, variant=record.variant, steps=record.steps, images=record.images,
                       dataset=record.dataset, release=record.release, release_digest=record.release_digest))

    # benchmark
    bench_path = run / "benchmark" / BENCHMARK_FILE
    keys: set[str] = set()
    if bench_path.is_file():
        try:
            bench = BenchmarkRecord.read(bench_path)
        except RecordError as exc:
            notes.append(str(exc))
        else:
            mine = [m for m in bench.models if m.get("name") == run.resolve().name]
            keys = {str(m.get("key")) for m in mine}
            chain.append(_step("benchmark", str(bench_path), f"CLIP {bench.clip}, {len(bench.prompts)} prompts, "
                               f"seeds {bench.seeds}, {len(bench.images)} images",
                               clip=bench.clip, models=[m.get("name") for m in bench.models], keys=sorted(keys)))

    # studies that show the run's model
    bundles: list[Path] = []
    for path in study_paths:
        path = Path(path)
        if (path / STUDY_FILE).is_file():
            bundles.append(path)
        elif path.is_dir():
            bundles += sorted(p.parent for p in path.glob(f"*/{STUDY_FILE}"))
    bench_resolved = str(bench_path.resolve())
    for bundle in bundles:
        try:
            key = StudyKey.read(bundle / STUDY_FILE)
        except RecordError as exc:
            notes.append(str(exc))
            continue
        used = [m for m in key.models if (keys and str(m.get("key")) in keys)
                or (m.get("source") and str(Path(str(m["source"])).resolve()) == bench_resolved)]
        if used:
            chain.append(_step("study", str(bundle), f"study {key.study_id}, {len(key.items)} items, models "
                               f"{', '.join(key.model_names())}", study_id=key.study_id, folder=str(bundle)))
    return {"run": str(run), "chain": chain, "notes": notes}


def _safe_digest(data: Path, version: str) -> str | None:
    try:
        return read_record(releases_dir(data) / version).digest
    except ReleaseError:
        return None
