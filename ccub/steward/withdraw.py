"""`ccub withdraw`: consent withdrawn, carried out in the published data and traced into the models.

Under the output folder's lock (`ccub.outdir.exclusive`):

1. the withdrawals are recorded in `DATA/steward/withdrawals.jsonl`, each with the digests
   (`source_sha256`) it matched in the published clean set, so that every later `ccub validate`
   excludes them (`consent.withdrawn`) whatever path or contributor they come back under;
2. the published output is rebuilt without every withdrawn item: a new `clean/` (kept files hard
   linked, no copy of the images), `index/` and `reports/` are staged beside the old ones, the
   cards are rendered into the staged folders, and the three are published as one step
   (`ccub.outdir.publish`): killed at any instant, DATA holds the whole old output or the whole
   new one;
3. every run, benchmark and study whose training or reference data included a withdrawn item
   (read from their records' lineage: run.json `data_sources`/`data_contributors`,
   benchmark.json `reference_sources`/`training_sources`, study.json's models) is listed and
   marked with `withdrawn.json` (`AffectedMark`: when and how many items, never whose);
   `ccub benchmark` and `ccub study make` refuse a marked run without `--allow-withdrawn`.

The reason of a withdrawal is private: it is kept in the steward's file and written nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ccub.config import Config, Limits
from ccub.files import atomic_write_text
from ccub.recordfile import RecordError, RecordFile
from ccub.steward.records import MAX_TEXT, StewardError, Withdrawal, now
from ccub.steward.store import Steward, _open_regular

AFFECTED_FILE = "withdrawn.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
METADATA = "metadata.jsonl"


class WithdrawError(ValueError):
    """A withdrawal that cannot be carried out; the message names the file or value and the fix."""


# --------------------------------------------------------------------------- what is withdrawn


@dataclass(frozen=True)
class Target:
    kind: str  # "contributor" or "image"
    value: str


def target_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot be a withdrawal target of `kind`; None when it can."""
    if kind == "image":
        return None if _SHA256.fullmatch(value) else f"{value[:80]!r} is not a SHA-256 (64 hex digits)"
    if not value:
        return "empty contributor id"
    if len(value) > MAX_TEXT:
        return f"{len(value)} characters, at most {MAX_TEXT}"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        return "holds control or invisible characters"
    return None


def _line_target(text: str) -> Target:
    value = text.strip()
    lowered = value.lower()
    return Target("image", lowered) if _SHA256.fullmatch(lowered) else Target("contributor", value)


def read_list(path: Path, limits: Limits) -> tuple[list[Target], list[str]]:
    """(targets, problems) of a `--list` file: one contributor id or image digest per line, or a
    CSV with a `contributor` and/or `image_sha256` column. Each problem names the file and line;
    blank lines and lines starting with # are skipped."""
    try:
        data = _open_regular(Path(path), limits)
    except StewardError as exc:
        raise WithdrawError(str(exc).replace("a decisions file (JSON lines or CSV)",
                                             "a list (one id or digest per line, or CSV)")) from exc
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    if Path(path).suffix.lower() == ".csv" or (
            "," in first and ("contributor" in first or "image_sha256" in first)):
        return _read_csv(path, data, limits)
    targets, problems = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        where = f"{path}:{number}"
        try:
            text = raw.decode("utf-8").removesuffix("\r").removeprefix("\ufeff")
        except UnicodeDecodeError:
            problems.append(f"{where}: not UTF-8 text")
            continue
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        target = _line_target(text)
        problem = target_problem(target.kind, target.value)
        if problem:
            problems.append(f"{where}: {problem}")
        else:
            targets.append(target)
    return targets, problems


def _read_csv(path: Path, data: bytes, limits: Limits) -> tuple[list[Target], list[str]]:
    import io

    from ccub.rows import csv_rows

    rows = list(csv_rows(io.BytesIO(data), limits))
    if not rows or rows[0].value is None:
        raise WithdrawError(f"{path}: no header row; write a column named contributor or image_sha256")
    header = [h.strip().lower().removeprefix("\ufeff") for h in rows[0].value]
    columns = [(i, {"contributor": "contributor", "image_sha256": "image"}[h]) for i, h in enumerate(header)
               if h in ("contributor", "image_sha256")]
    if not columns:
        raise WithdrawError(f"{path}: no column named contributor or image_sha256 (found "
                            f"{', '.join(header)[:200]}); name the column, or give one id or digest per line")
    targets, problems = [], []
    for r in rows[1:]:
        where = f"{path}:{r.line}"
        if r.problem:
            problems.append(f"{where}: {r.problem}")
            continue
        found = False
        for index, kind in columns:
            cell = r.value[index].strip() if index < len(r.value) else ""
            if not cell:
                continue
            found = True
            value = cell.lower() if kind == "image" else cell
            problem = target_problem(kind, value)
            if problem:
                problems.append(f"{where}: {header[index]}: {problem}")
            else:
                targets.append(Target(kind, value))
        if not found and any(c.strip() for c in r.value):
            problems.append(f"{where}: no contributor or image_sha256 on the row")
    return targets, problems


# --------------------------------------------------------------------------- affected outputs


@dataclass
class AffectedMark(RecordFile):
    """`withdrawn.json` in a run, benchmark or study folder: its data included withdrawn items.
    Says when and how many, never whose."""

    SCHEMA: ClassVar[str] = "ccub.withdrawn"
    VERSION: ClassVar[int] = 1
    FIX: ClassVar[str] = "rerun `ccub withdraw DATA` to mark it again"

    kind: str  # "run", "benchmark" or "study"
    marked_at: str
    items: int  # withdrawn images its training or reference data included
    contributors: int  # withdrawn contributors among those of its training data
    note: str = ("consent for some of the data behind this output was withdrawn (`ccub withdraw`); "
                 "retrain or rebuild it without them")


@dataclass
class Affected:
    kind: str
    folder: Path
    items: int
    contributors: int


def affected_mark(folder: Path) -> AffectedMark | None:
    """The mark of a run (or benchmark or study) folder, or of the benchmark inside a run folder."""
    folder = Path(folder)
    for path in (folder / AFFECTED_FILE, folder / "benchmark" / AFFECTED_FILE):
        if path.is_file():
            try:
                return AffectedMark.read(path)
            except RecordError:  # a damaged mark still marks: refuse rather than trust it away
                return AffectedMark(kind="run", marked_at="unknown", items=0, contributors=0)
    return None


def refusal(folders: Iterable[Path], flag: str = "--allow-withdrawn") -> str | None:
    """The message refusing the first marked folder of `folders`; None when none is marked."""
    for folder in folders:
        mark = affected_mark(folder)
        if mark is not None:
            return (f"{folder}: consent for data it was trained or benchmarked on was withdrawn (marked "
                    f"{mark.marked_at[:10]}, {mark.items} item(s); see {Path(folder) / AFFECTED_FILE}); retrain "
                    f"it on the rebuilt data, or pass {flag} to use it anyway")
    return None


def _resolve(path: str | Path, base: Path) -> Path:
    p = Path(path)
    return (p if p.is_absolute() else base / p).resolve()


def scan_affected(run_dirs: list[Path], study_dirs: list[Path], images: set[str], contributors: set[str]
                  ) -> list[Affected]:
    """Every run, benchmark and study under `run_dirs`/`study_dirs` whose records say it used a
    withdrawn image (digest) or contributor. Unreadable records are skipped (not ccub's to judge)."""
    from benchmark.record import BENCHMARK_FILE, BenchmarkRecord
    from finetune.run_record import RUN_FILE, RunRecord

    cwd = Path.cwd()
    found: list[Affected] = []
    runs: set[Path] = set()
    folders: list[Path] = []
    for d in run_dirs:
        d = Path(d)
        folders += [d] if (d / RUN_FILE).is_file() else sorted(p.parent for p in d.glob(f"*/{RUN_FILE}"))
    for folder in folders:
        try:
            record = RunRecord.read_from(folder)
        except RecordError:
            continue
        items = len(images.intersection(record.data_sources))
        people = len(contributors.intersection(record.data_contributors))
        if items or people:
            found.append(Affected("run", folder, items, people))
            runs.add(folder.resolve())
    benchmarks: set[Path] = set()
    for folder in folders:
        path = folder / "benchmark" / BENCHMARK_FILE
        if not path.is_file():
            continue
        try:
            bench = BenchmarkRecord.read(path)
        except RecordError:
            continue
        items = len(images.intersection(bench.reference_sources) | images.intersection(bench.training_sources))
        loras = {_resolve(m["lora"], cwd).parent for m in bench.models if isinstance(m.get("lora"), str)}
        if items or folder.resolve() in runs or loras & runs:
            found.append(Affected("benchmark", path.parent, items, 0))
            benchmarks.add(path.resolve())
    for d in study_dirs:
        found += _studies(Path(d), runs, benchmarks, cwd)
    return found


def _studies(folder: Path, runs: set[Path], benchmarks: set[Path], cwd: Path) -> list[Affected]:
    from benchmark.study.bundle import StudyError, find_studies, read_study

    if not folder.is_dir():
        return []
    try:
        bundles = find_studies(folder)
    except StudyError:
        return []
    found = []
    for bundle in bundles:
        try:
            key = read_study(bundle)
        except StudyError:
            continue
        sources = {_resolve(m["source"], cwd) for m in key.models if isinstance(m.get("source"), str)}
        loras = {_resolve(m["lora"], cwd).parent for m in key.models if isinstance(m.get("lora"), str)}
        if sources & benchmarks or loras & runs:
            found.append(Affected("study", bundle, 0, 0))
    return found


def mark(affected: list[Affected], at: str) -> None:
    for a in affected:
        AffectedMark(kind=a.kind, marked_at=at, items=a.items, contributors=a.contributors).write(
            a.folder / AFFECTED_FILE)


# --------------------------------------------------------------------------- the rebuild


@dataclass
class Rebuilt:
    rows: int = 0  # metadata rows removed
    images: list[str] = field(default_factory=list)  # source_sha256 of the rows removed
    files: int = 0  # image and negative files removed
    cards: list[Path] = field(default_factory=list)


def _inside(clean: Path, base: Path, relative: Any) -> Path | None:
    if not isinstance(relative, str) or not relative or relative.startswith("/") or "\\" in relative:
        return None
    path = Path(os.path.normpath(base / relative))
    return path if path.is_relative_to(clean) else None


def _metadata_files(clean: Path) -> list[Path]:
    return sorted({*clean.glob(f"*/{METADATA}"), *clean.glob(f"*/*/{METADATA}")})


def _culture_dir(clean: Path, meta: Path) -> Path:
    return clean / meta.relative_to(clean).parts[0]


def plan_rebuild(clean: Path, steward: Steward) -> tuple[dict[Path, list[str]], set[Path], Rebuilt]:
    """(new lines per changed metadata file, files to leave out, counts). Lines that do not parse
    are kept as they are: the rebuild removes withdrawn rows and nothing else."""
    changed: dict[Path, list[str]] = {}
    drop: set[Path] = set()
    kept_negatives: set[Path] = set()
    dropped_negatives: set[Path] = set()
    rebuilt = Rebuilt()
    for meta in _metadata_files(clean):
        culture = _culture_dir(clean, meta)
        lines = meta.read_text("utf-8", errors="surrogateescape").splitlines(keepends=True)
        keep: list[str] = []
        for line in lines:
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                row = None
            if not isinstance(row, dict):
                keep.append(line)
                continue
            source = row.get("source_sha256") if isinstance(row.get("source_sha256"), str) else None
            contributor = row.get("contributor") if isinstance(row.get("contributor"), str) else None
            negatives = row.get("negative_imgpath") if isinstance(row.get("negative_imgpath"), list) else []
            paths = {p for p in (_inside(clean, culture, n) for n in negatives) if p is not None}
            if steward.is_withdrawn(source, contributor):
                rebuilt.rows += 1
                if source:
                    rebuilt.images.append(source)
                image = _inside(clean, meta.parent, row.get("file_name"))
                if image is not None:
                    drop.add(image)
                dropped_negatives |= paths
            else:
                keep.append(line)
                kept_negatives |= paths
        if len(keep) != len(lines):
            changed[meta] = keep
    drop |= dropped_negatives - kept_negatives
    rebuilt.files = sum(p.is_file() for p in drop)
    return changed, drop, rebuilt


def _prune_manifest(path: Path, keys: set[str]) -> str | None:
    """prepare.json without the entries of the removed images (None: leave it as it is)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for name in ("captions", "negatives"):
        if isinstance(data.get(name), dict):
            data[name] = {k: v for k, v in data[name].items() if k not in keys}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _link_tree(clean: Path, target: Path, changed: dict[Path, list[str]], drop: set[Path]) -> None:
    """`target` as `clean` without `drop`, with the changed metadata and prepare manifests written
    anew; every other file hard linked (copied where the file system cannot link)."""
    removed_keys: dict[Path, set[str]] = {}
    for path in drop:
        culture = clean / path.relative_to(clean).parts[0]
        removed_keys.setdefault(culture, set()).add(path.relative_to(culture).as_posix())
    for folder, dirs, files in os.walk(clean):
        here = Path(folder)
        out = target / here.relative_to(clean)
        out.mkdir(parents=True, exist_ok=True)
        dirs.sort()
        for name in sorted(files):
            src = here / name
            dst = out / name
            if src in drop or src.is_symlink():
                continue
            if src in changed:
                dst.write_text("".join(changed[src]), "utf-8", errors="surrogateescape")
            elif name == "prepare.json" and here in removed_keys \
                    and (text := _prune_manifest(src, removed_keys[here])) is not None:
                dst.write_text(text, "utf-8")
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)


def _index(data: Path, target: Path, removed: set[str]) -> None:
    """The accepted-images index without the removed images (paths relative to clean/)."""
    from ccub.dedup.accepted import INDEX_NAME, AcceptedIndex, AcceptedIndexError

    source = data / "index"
    if not source.is_dir():
        return
    try:
        index = AcceptedIndex.load(data)
    except AcceptedIndexError:
        shutil.copytree(source, target)  # not ours to repair; `ccub validate` rebuilds it
        return
    keep = [i for i, image in enumerate(index.images) if image not in removed]
    target.mkdir(parents=True)

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in keep]

    import numpy as np

    rows = np.array(keep, dtype=np.int64)
    AcceptedIndex(root=index.root, images=pick(index.images), sha256=pick(index.sha256),
                  pixel_keys=pick(index.pixel_keys), decode_scales=pick(index.decode_scales),
                  cultures=pick(index.cultures), categories=pick(index.categories), splits=pick(index.splits),
                  pixels=pick(index.pixels), hashes=index.hashes[rows],
                  embeddings=index.embeddings[rows] if index.embeddings is not None else None,
                  clip_model=index.clip_model).save(target / INDEX_NAME)


def _reports(data: Path, target: Path, removed: set[str]) -> dict[str, Any] | None:
    """reports/ without the removed records and their issues; the report's
    Markdown, HTML (without thumbnails: they showed the withdrawn images too) and issues.csv
    rendered anew from it. Returns the report (None when there is none)."""
    from ccub.report import issues_csv
    from ccub.report.html import render_html
    from ccub.report.markdown import render_markdown
    from ccub.report.record import REPORT_FILE, ValidationReport

    source = data / "reports"
    if not source.is_dir():
        return None
    shutil.copytree(source, target)
    path = target / REPORT_FILE
    if not path.is_file():
        return None
    try:
        record = ValidationReport.read(path)
    except RecordError as exc:
        raise WithdrawError(f"{exc}; the clean set cannot be rebuilt without it") from exc
    status = record.summary.get("status") if isinstance(record.summary.get("status"), dict) else {}
    cells = record.summary.get("accepted_by_category")
    for r in record.records:
        if r.get("output") not in removed:
            continue
        culture = r.get("culture") or "unknown"
        counts = status.get(culture)
        if isinstance(counts, dict) and counts.get(r.get("status"), 0) > 0:
            counts[r["status"]] -= 1
            counts["withdrawn"] = counts.get("withdrawn", 0) + 1
        per = cells.get(culture) if isinstance(cells, dict) else None
        if isinstance(per, dict) and per.get(r.get("category") or "", 0) > 0:
            per[r["category"]] -= 1
        r["status"] = "withdrawn"
    # The withdrawn records leave the report with their issues: not even their contributor id
    # or file name stays (the summary keeps how many were withdrawn per culture, a number).
    gone = [r for r in record.records if r.get("status") == "withdrawn" and r.get("output") in removed]
    dropped = {i for r in gone for i in r.get("issues") or () if isinstance(i, int)}
    keep = [i for i in range(len(record.issues)) if i not in dropped]
    renumber = {old: new for new, old in enumerate(keep)}
    record.issues = [record.issues[i] for i in keep]
    # The per-check and per-severity counts follow the issues that are left (the reports list a
    # check by its count, and a count of a check no issue holds any more has nothing to name).
    from collections import Counter

    for key, name in (("checks", "check"), ("severity", "severity")):
        if isinstance(record.summary.get(key), dict):
            record.summary[key] = dict(Counter(i.get(name) for i in record.issues if isinstance(i, dict)
                                               and i.get(name)).most_common())
    record.records = [r for r in record.records if not any(r is g for g in gone)]
    for r in record.records:
        r["issues"] = [renumber[i] for i in r.get("issues") or () if i in renumber]
    record.write(path)
    report = record.as_dict()
    atomic_write_text(target / "issues.csv", issues_csv(report))
    atomic_write_text(target / "report.md", render_markdown(report))
    if (target / "report.html").exists():
        atomic_write_text(target / "report.html", render_html(report, {}))
    return report


def rebuild(data: Path, steward: Steward) -> Rebuilt:
    """Publish DATA's output without the withdrawn rows (see the module doc). Hold the lock."""
    from ccub.outdir import publish, staging

    clean = data / "clean"
    if not clean.is_dir():
        return Rebuilt()
    changed, drop, rebuilt = plan_rebuild(clean, steward)
    if not changed:
        return rebuilt
    removed = {p.relative_to(clean).as_posix() for p in drop}
    with staging(data) as tmp:
        _link_tree(clean, tmp / "clean", changed, drop)
        _index(data, tmp / "index", removed)
        report = _reports(data, tmp / "reports", {"clean/" + r for r in removed})
        if report is not None and (clean / "README.md").is_file():
            from data_cards import rewrite_cards

            rebuilt.cards = [data / p.relative_to(tmp) for p in rewrite_cards(report, tmp, data).paths]
        names = tuple(n for n in ("clean", "index", "reports") if (tmp / n).exists())
        publish(tmp, data, names)
    return rebuilt


# --------------------------------------------------------------------------- the command's work


@dataclass
class Outcome:
    recorded: list[Withdrawal]  # new withdrawals (already recorded ones are not repeated)
    already: int  # targets withdrawn before
    rebuilt: Rebuilt
    affected: list[Affected]


def withdraw(data: Path, targets: list[Target], cfg: Config, reason: str = "",
             run_dirs: list[Path] | None = None, study_dirs: list[Path] | None = None) -> Outcome:
    """Record `targets` as withdrawn, rebuild DATA's published output without them, and mark the
    runs, benchmarks and studies they reached. With no targets: apply the recorded ones again
    (after an interrupted rebuild). Raises WithdrawError, StewardError, OutputBusy, OutputError."""
    from ccub.outdir import exclusive

    data = Path(data)
    if reason and (problem := target_problem("contributor", reason.replace("\n", " ").replace("\t", " "))):
        raise WithdrawError(f"--reason: {problem}")
    if not (data / "clean").is_dir() and not (data / "steward").is_dir():
        raise WithdrawError(f"{data}: no clean/ or steward/ here; give the --out folder of `ccub validate` "
                            "(default ./data)")
    with exclusive(data, command="ccub withdraw"):
        steward = Steward.load(data, cfg.limits)
        unique = list(dict.fromkeys(targets))
        new = [t for t in unique if not _recorded(steward, t)]
        at = now()
        matched = _matches(data / "clean", new) if new else {}
        recorded = [Withdrawal(kind=t.kind, value=t.value, at=at, reason=reason, items=sorted(matched.get(t, set())))
                    for t in new]
        if recorded:  # recorded first: whatever happens next, every later validate excludes them
            steward.add_withdrawals(recorded)
        rebuilt = rebuild(data, steward)
        affected = scan_affected(run_dirs or [], study_dirs or [], steward.withdrawn_images,
                                 steward.withdrawn_contributors)
        mark(affected, at)
    return Outcome(recorded, len(unique) - len(new), rebuilt, affected)


def _recorded(steward: Steward, target: Target) -> bool:
    return any(w.kind == target.kind and w.value == target.value for w in steward.withdrawals)


def _matches(clean: Path, targets: list[Target]) -> dict[Target, set[str]]:
    """The published source_sha256 digests each target matches."""
    images = {t.value: t for t in targets if t.kind == "image"}
    people = {t.value: t for t in targets if t.kind == "contributor"}
    found: dict[Target, set[str]] = {}
    for meta in _metadata_files(clean) if clean.is_dir() else []:
        for line in meta.read_text("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or not isinstance(row.get("source_sha256"), str):
                continue
            digest = row["source_sha256"]
            for t in (images.get(digest), people.get(row.get("contributor"))
                      if isinstance(row.get("contributor"), str) else None):
                if t is not None:
                    found.setdefault(t, set()).add(digest)
    return found
