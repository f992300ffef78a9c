"""`ccub validate` from top to bottom: read, analyse, check, transform, write, publish."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ccub.checks.duplicates import PIXEL_KINDS, Decisions, DuplicateChecks
from ccub.checks.registry import Context, families, severity_of, spec_index
from ccub.checks.rights import RightsChecks
from ccub.config import Config
from ccub.export import Exported, Exporter, write_metadata
from ccub.imaging.analyze import AnalysisLimits, ImageFacts, analyze_image
from ccub.outdir import OutputError, describe_os_error, exclusive, publish, staging
from ccub.readers import ReadResult, read_submissions
from ccub.records import SEVERITIES, Finding, Record
from ccub.safeio import Root
from ccub.splits import assign_test_split
from ccub.text import normalize_caption
from ccub.vocab import Vocabulary

OUTPUT_DIRS = ("clean", "index", "reports")
STATUS_OF = {"error": "rejected", "review": "review"}


if TYPE_CHECKING:
    from ccub.dedup.accepted import AcceptedIndex
    from ccub.steward import Steward


class UsageError(ValueError):
    """The run cannot start (exit code 2)."""


@dataclass
class Options:
    root: Path
    out: Path
    flags: dict[str, str] = field(default_factory=dict)
    include_review: bool = False
    workers: int = 1
    clip: str | None = None  # MODEL:PRETRAINED, a local checkpoint, or "tiny"
    test_fraction: float | None = None
    against: Path | None = None
    wait: bool = False  # for another run holding `out`, instead of exiting
    decisions: Path | None = None  # review decisions to add to the steward folder (JSON lines or CSV)


@dataclass(frozen=True)
class Note:
    """What the run did or skipped, for the reports. `kind` says how loudly: "danger" when results
    rest on random weights, "warn" when a part was skipped, "muted" when it was not asked for."""

    text: str
    kind: str = ""


@dataclass
class Issue:
    finding: Finding
    severity: str
    fix: str
    contributor: str
    culture: str | None


@dataclass
class Outcome:
    record: Record
    status: str  # accepted, review, rejected
    output: str | None = None


@dataclass
class Result:
    options: Options
    cfg: Config
    read: ReadResult
    facts: dict[str, ImageFacts]
    outcomes: list[Outcome]
    issues: list[Issue]
    metadata_sha256: dict[str, str]
    timings: dict[str, float]
    notes: list[Note] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)  # duplicate groups

    @property
    def exit_code(self) -> int:
        return 1 if any(i.severity in ("error", "review") for i in self.issues) else 0


ProgressFn = Callable[[str, int, int], None]


def _analyze_task(task: tuple[Root, str, Path, Path, AnalysisLimits]) -> ImageFacts:
    return analyze_image(*task)


def _watch_parent(parent: int) -> None:
    """In a decode worker: exit as soon as the parent is gone (killed runs leave no workers
    decoding on for the rest of their queue)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _analyze_all(root: Root, images: list[str], tmp: Path, limits: AnalysisLimits, workers: int,
                 progress: ProgressFn | None) -> dict[str, ImageFacts]:
    (tmp / "stage").mkdir()
    (tmp / "thumbs").mkdir()
    tasks = [(root, rel, tmp / "stage" / str(i), tmp / "thumbs" / f"{i}.jpg", limits)
             for i, rel in enumerate(images)]
    facts: dict[str, ImageFacts] = {}

    def collect(results: Iterator[ImageFacts]) -> None:
        for done, item in enumerate(results, start=1):
            facts[item.path] = item
            if progress:
                progress("analyse", done, len(tasks))

    if workers <= 1 or len(tasks) < 2:
        collect(map(_analyze_task, tasks))
    else:
        # fork starts workers in milliseconds with everything already imported, but is only
        # safe while this process has no other thread (the CLI's progress bar runs without one).
        method = "fork" if threading.active_count() == 1 and "fork" in get_all_start_methods() \
            else "spawn"
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context(method),
                                 initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
            # Small chunks keep both workers busy to the end; 8 bounds the IPC overhead.
            chunksize = max(1, min(8, len(tasks) // (workers * 8)))
            collect(pool.map(_analyze_task, tasks, chunksize=chunksize))
    return facts


@dataclass
class Checked:
    findings: list[Finding]
    status: dict[str, str]  # record key -> its worst finding's severity
    duplicates: Decisions


def _run_checks(records: list[Record], ctx: Context, read: ReadResult) -> Checked:
    disabled = set(ctx.cfg.disable)
    findings: list[Finding] = []
    status: dict[str, str] = {}

    def note(found: Finding) -> None:
        if found.check in disabled:
            return
        findings.append(found)
        if found.record is not None:
            severity = severity_of(found.check, ctx.cfg)
            current = status.get(found.record)
            if current is None or SEVERITIES.index(severity) < SEVERITIES.index(current):
                status[found.record] = severity

    for found in read.findings:
        note(found)
    checkers = families()
    for record in records:
        for family in checkers:
            for found in family.check_record(record, ctx):
                note(found)
    for family in checkers:
        for found in family.check_dataset(records, ctx):
            note(found)
    # Duplicates last: a group keeps the copy that no other check found an error in.
    duplicates = DuplicateChecks().decide(records, ctx, status)
    for found in duplicates.findings:
        note(found)
    return Checked(findings, status, duplicates)


# Row fields that say who accepted a held record; a submitted column of the same name is dropped,
# so a contributor cannot forge a review.
REVIEW_FIELDS = ("reviewed_by", "reviewed_at", "review_reason")


def _steward(options: Options, cfg: Config) -> tuple[Steward, list[Note]]:
    """The output's steward folder, with the decisions of `--decisions FILE` added to it."""
    from ccub.steward import Steward, StewardError

    try:
        steward = Steward.load(options.out, cfg.limits)
        if options.decisions is None:
            return steward, []
        new, already, problems = steward.add_from(options.decisions, cfg.limits)
    except StewardError as exc:
        raise UsageError(str(exc)) from exc
    notes = [Note(f"--decisions {options.decisions}: {len(new)} new decision(s) added to {steward.folder}"
                  + (f", {already} already there" if already else ""))]
    notes += [Note(f"refused: {problem}", "warn") for problem in problems[:20]]
    if len(problems) > 20:
        notes.append(Note(f"... and {len(problems) - 20} more refused row(s)", "warn"))
    return steward, notes


def _apply_reviews(records: list[Record], ctx: Context, checked: Checked) -> None:
    """Records held for review that a person accepted (same image, same caption) are accepted,
    with who, when and why in their exported row. Errors are never overridden."""
    from ccub.checks.steward import content_of

    for record in records:
        for name in REVIEW_FIELDS:
            record.extra.pop(name, None)
        if ctx.steward is None or checked.status.get(record.key) != "review":
            continue
        content = content_of(record, ctx)
        decision = ctx.steward.decision_for(*content) if content else None
        if decision is None or decision.decision != "accept":
            continue
        held = sorted({f.check for f in checked.findings if f.record == record.key
                       and severity_of(f.check, ctx.cfg) == "review"})
        reason = f": {decision.reason}" if decision.reason else ""
        checked.findings.append(Finding("review.accepted", f"accepted by {decision.reviewer} on "
                                        f"{decision.at[:10]}{reason} (held by {', '.join(held)})",
                                        record=record.key, file=record.image))
        checked.status[record.key] = "info"
        record.extra.update({"reviewed_by": decision.reviewer, "reviewed_at": decision.at,
                             "review_reason": decision.reason})


def _issues(findings: list[Finding], records: dict[str, Record], cfg: Config) -> list[Issue]:
    specs = spec_index()
    issues = []
    for found in findings:
        record = records.get(found.record or "")
        issues.append(Issue(found, severity_of(found.check, cfg), specs[found.check].fix,
                            (record.contributor if record else None) or "(unknown contributor)",
                            record.culture if record else None))
    return issues


def _export(records: list[Record], ctx: Context, status: dict[str, str], tmp: Path, include_review: bool
            ) -> tuple[list[Outcome], dict[str, str]]:
    exporter, exported, outcomes = Exporter(tmp, ctx.cfg.limits.max_caption_chars), [], []
    rights = RightsChecks()
    for record in records:
        decided = STATUS_OF.get(status.get(record.key) or "", "accepted")
        outcome = Outcome(record, decided)
        outcomes.append(outcome)
        if decided == "rejected" or (decided == "review" and not include_review):
            continue
        license_id = rights.canonical_license(record.license or "")[0] or record.license
        item: Exported = exporter.add(record, normalize_caption(record.caption or ""),
                                      license_id, ctx.facts)
        outcome.output = item.path
        exported.append(item)
    (tmp / "clean").mkdir(exist_ok=True)
    (tmp / "index").mkdir()
    _write_index(exported, ctx, tmp / "index")
    return outcomes, write_metadata(tmp, exported)


def _semantic(clip: str | None, facts: dict[str, ImageFacts], progress: ProgressFn | None
              ) -> tuple[dict[str, Any] | None, str | None, Note]:
    """(embeddings by image, model id, a note for the report) for the semantic tier."""
    if not clip:
        return None, None, Note("semantic duplicates: not checked (give --clip MODEL:PRETRAINED or a local "
                                "checkpoint)", "muted")
    from ccub.models import ModelUnavailable, model_cache, parse_clip
    from ccub.semantic import embed_images

    images = [k for k, f in facts.items() if f.semantic_input]
    try:
        import open_clip  # noqa: F401  (only to say clearly what is missing)
    except ImportError:
        return None, None, Note("semantic duplicates: SKIPPED, --clip needs the model stack: "
                                "pip install 'ccub[models]'", "warn")
    try:
        spec = parse_clip(clip, model_cache())
        vectors = embed_images([Path(facts[k].semantic_input) for k in images], spec,
                               progress=(lambda d, t: progress("embed", d, t)) if progress
                               else None)
    except ModelUnavailable as exc:
        return None, None, Note(f"semantic duplicates: SKIPPED, {exc}", "warn")
    model = f"{spec.model}:{spec.pretrained}"
    note = Note(f"semantic duplicates: CLIP {model} on {len(images)} images")
    if spec.random_weights:
        note = Note(f"{note.text} (RANDOM WEIGHTS: similarities are meaningless; for testing the pipeline only)",
                    "danger")
    return dict(zip(images, vectors, strict=True)), model, note


def _groups(duplicates: Decisions) -> list[dict[str, Any]]:
    """Duplicate groups (any relation) for the reports: members, kept one, edges."""
    graph = duplicates.graph
    # Copies of one photo filed under several cultures: nobody is kept, every copy waits for
    # a person. Look-alikes that only CLIP links are never rejected for it.
    conflict = {m for members in graph.components(PIXEL_KINDS)
                if len({graph.nodes[m].culture or "?" for m in members}) > 1 for m in members}
    out = []
    for members in duplicates.groups():
        inside = set(members)
        nodes = [graph.nodes[m] for m in members]
        out.append({
            "members": [{"key": n.key, "image": n.image, "culture": n.culture,
                         "category": n.category, "split": n.split,
                         "status": ("already accepted" if n.record is None else
                                    "label conflict" if m in conflict else
                                    "dropped" if m in duplicates.dropped else "kept")}
                        for m, n in zip(members, nodes, strict=True)],
            "edges": [{"a": graph.nodes[e.a].key, "b": graph.nodes[e.b].key, "kind": e.kind,
                       "value": round(e.value, 4)} for e in graph.edges
                      if e.a in inside and e.b in inside],
        })
    return out


def _split_groups(duplicates: Decisions) -> list[list[str]]:
    nodes = duplicates.graph.nodes
    return [[nodes[m].key for m in members if nodes[m].record is not None] for members in duplicates.groups()]


def _write_index(exported: list[Exported], ctx: Context, folder: Path) -> None:
    from ccub.dedup.accepted import INDEX_NAME, AcceptedIndex
    from ccub.imaging.phash import VARIANTS, WORDS

    facts = [ctx.facts[item.record.image] for item in exported]
    embeddings = None
    if ctx.embeddings and all(item.record.image in ctx.embeddings for item in exported) \
            and exported:
        embeddings = np.stack([ctx.embeddings[item.record.image] for item in exported])
    index = AcceptedIndex(
        root=folder.parent / "clean",
        images=[item.path.removeprefix("clean/") for item in exported],
        sha256=[f.sha256 for f in facts], pixel_keys=[f.pixel_key for f in facts],
        decode_scales=[f.decode_scale for f in facts],
        cultures=[item.record.culture for item in exported],
        categories=[item.record.category for item in exported],
        splits=[item.record.split for item in exported],
        pixels=[round(f.width * f.height * f.content) for f in facts],
        hashes=np.stack([np.frombuffer(f.phash, np.uint64).reshape(VARIANTS, WORDS)
                         for f in facts]) if facts else np.zeros((0, VARIANTS, WORDS), np.uint64),
        embeddings=embeddings, clip_model=ctx.clip_model if embeddings is not None else None)
    index.save(folder / INDEX_NAME)


def _load_against(folder: Path | None) -> AcceptedIndex | None:
    if folder is None:
        return None
    from ccub.dedup.accepted import AcceptedIndex, AcceptedIndexError

    try:
        return AcceptedIndex.load(folder)
    except AcceptedIndexError as exc:
        raise UsageError(str(exc)) from exc


def check_paths(options: Options) -> None:
    root, out = options.root.resolve(), options.out.resolve()
    if not options.root.is_dir():
        raise UsageError(f"{options.root}: not a folder; give the folder holding the "
                         "submissions")
    if out == root or out.is_relative_to(root):
        raise UsageError(f"--out {options.out} is inside the submissions folder; ccub never "
                         "writes into its input: choose another folder")
    if options.against is not None and options.against.resolve() in (
            out, *(out / name for name in OUTPUT_DIRS)):
        raise UsageError(f"--against {options.against} is the output folder, which this run "
                         "replaces: write the new batch elsewhere (e.g. --out data/batch-2)")
    if options.test_fraction is not None and not 0 < options.test_fraction < 1:
        raise UsageError(f"--test-fraction {options.test_fraction}: give a fraction between "
                         "0 and 1, e.g. 0.1")
    if any(root.is_relative_to(out / name) for name in OUTPUT_DIRS):
        raise UsageError(f"{options.root} is inside ccub's own output {options.out}; "
                         "move the submissions elsewhere")


def validate(options: Options, cfg: Config, progress: ProgressFn | None = None,
             report_writer: Callable[[Result, Path], Any] | None = None) -> Result:
    check_paths(options)
    start = time.perf_counter()
    with exclusive(options.out, options.wait, "ccub validate"):
        try:
            result = _validate(options, cfg, progress, report_writer)
        except OSError as exc:
            # Input files never raise here (each is a finding); this is the output folder.
            raise OutputError(describe_os_error(exc, options.out)) from exc
    result.timings["total"] = time.perf_counter() - start
    return result


def _validate(options: Options, cfg: Config, progress: ProgressFn | None,
              report_writer: Callable[[Result, Path], Any] | None) -> Result:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    against = _load_against(options.against)
    steward, steward_notes = _steward(options, cfg)
    vocab = Vocabulary(cfg)
    read = read_submissions(options.root, vocab, options.flags, cfg.limits)
    records = read.records
    if not records and not read.findings:
        raise UsageError(f"{options.root}: no submissions found (no images and no metadata, "
                         "manifest or caption files); see docs/validate.md, \"Input formats\"")
    if options.test_fraction is not None:
        # Splits are made after the duplicate groups are known; until then all are train.
        for record in records:
            record.set("split", "train", f"--test-fraction {options.test_fraction}")
    timings["read"] = time.perf_counter() - start

    with staging(options.out) as tmp:
        # A row naming a missing file or a FIFO already has its finding from the reader.
        unusable = {f.record for f in read.findings if f.check in ("file.missing",
                                                                   "file.not_regular")}
        images = sorted({r.image for r in records if r.image and r.key not in unusable}
                        | {n for r in records for n in r.negatives})
        t = time.perf_counter()
        facts = _analyze_all(read.root, images, tmp, AnalysisLimits.from_config(cfg, bool(options.clip)),
                             options.workers, progress)
        timings["analyse"] = time.perf_counter() - t

        t = time.perf_counter()
        embeddings, clip_model, semantic_note = _semantic(options.clip, facts, progress)
        timings["embed"] = time.perf_counter() - t

        t = time.perf_counter()
        ctx = Context(cfg=cfg, vocab=vocab, root=read.root, facts=facts, against=against,
                      embeddings=embeddings, clip_model=clip_model,
                      splits_assigned_later=options.test_fraction is not None, steward=steward)
        checked = _run_checks(records, ctx, read)
        _apply_reviews(records, ctx, checked)
        notes = [semantic_note, *steward_notes]
        if against is not None:
            notes.append(Note(f"checked against {len(against)} accepted images in {against.root}"))
        if options.test_fraction is not None:
            eligible = [r for r in records if checked.status.get(r.key) != "error"]
            n_test = assign_test_split(eligible, _split_groups(checked.duplicates), options.test_fraction,
                                       cfg.duplicates.split_seed)
            notes.append(Note(f"--test-fraction {options.test_fraction}: {n_test} of "
                         f"{len(eligible)} records in test, duplicate groups kept together"))
        timings["check"] = time.perf_counter() - t

        t = time.perf_counter()
        outcomes, digests = _export(records, ctx, checked.status, tmp, options.include_review)
        timings["export"] = time.perf_counter() - t

        result = Result(options, cfg, read, facts, outcomes,
                        _issues(checked.findings, {r.key: r for r in records}, cfg), digests, timings,
                        notes, _groups(checked.duplicates))
        t = time.perf_counter()
        (tmp / "reports").mkdir()
        if report_writer is not None:
            report_writer(result, tmp / "reports")
        timings["report"] = time.perf_counter() - t
        publish(tmp, options.out, OUTPUT_DIRS)
    return result
