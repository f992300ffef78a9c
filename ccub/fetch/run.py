"""Fetching a manifest into an imagefolder submission: resumable, with a report per URL."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccub import __version__
from ccub.config import Config, setting_problems
from ccub.escape import csv_text
from ccub.fetch.client import SUFFIX, Client, Download, Failure, Stopped, public_url, verify_image
from ccub.fetch.manifest import Row, read_manifest
from ccub.files import atomic_write_text
from ccub.vocab import Vocabulary

if TYPE_CHECKING:
    from ccub.steward import Steward

IMAGES = "images"
STATE = ".ccub-fetch-state.json"  # hidden: `ccub validate` skips dot files
METADATA = "metadata.jsonl"
REPORT = "fetch_report.csv"
REPORT_COLUMNS = ("line", "sheet", "url", "outcome", "cause", "message", "attempts", "status", "bytes", "file_name",
                  "final_url")
PROVENANCE = ("source_url", "final_url", "http_status", "content_type", "bytes", "sha256", "retrieved_at")
# Manifest columns that would change how `ccub validate` reads metadata.jsonl; never carried through.
RESERVED = {"file_name", "path", "image", "file", "url", "image_url", "text", "culture", "category", *PROVENANCE}
CHECKPOINT_EVERY = 20
# The names fetch gives its files (stem_for, client.SUFFIX, the client's temporary names): the only
# files it ever removes, and only directly inside its own images/ folder.
OWN_FILE = re.compile(r"[A-Z0-9]{1,16}_[0-9a-f]{16}\.(?:jpg|png|webp)")
OWN_PART = re.compile(r"\.[A-Z0-9]{1,16}_[0-9a-f]{16}\.\d+\.\d+\.part")


class FetchError(ValueError):
    """The fetch cannot start (bad settings, output folder around the manifest)."""


@dataclass
class Outcome:
    line: int
    url: str
    outcome: str  # ok, skipped, failed
    cause: str = ""
    message: str = ""
    attempts: int = 0
    status: int | None = None
    bytes: int | None = None
    file_name: str = ""
    final_url: str = ""
    sheet: str = ""  # the workbook sheet of the row; "" for other manifests

    @property
    def where(self) -> str:
        return f"sheet {self.sheet!r}, row {self.line}" if self.sheet else f"line {self.line}"

    def __post_init__(self) -> None:
        # An Outcome is what gets published (fetch_report.csv, the console): its URLs are stripped here, once.
        self.url, self.final_url = public_url(self.url), public_url(self.final_url)


@dataclass
class FetchResult:
    out: Path
    outcomes: list[Outcome] = field(default_factory=list)
    records: int = 0  # rows in metadata.jsonl
    interrupted: bool = False

    @property
    def counts(self) -> Counter:
        return Counter(o.outcome for o in self.outcomes)

    @property
    def failures(self) -> dict[str, list[Outcome]]:
        groups: dict[str, list[Outcome]] = {}
        for o in self.outcomes:
            if o.outcome == "failed":
                groups.setdefault(o.cause, []).append(o)
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def user_agent(cfg: Config) -> str:
    contact = cfg.fetch.contact.strip()
    inside = f"+{cfg.fetch.info_url}" + (f"; contact: {contact}" if contact else "")
    return f"ccub/{__version__} ({inside})"


def check_settings(cfg: Config) -> list[str]:
    s = cfg.fetch
    problems = setting_problems(s, {}, {"workers": 1, "per_host_concurrency": 1, "retries": 0,
                                        "max_redirects": 0})
    problems += [f"{name} = {getattr(s, name)}: must be above 0" for name in
                 ("connect_timeout", "read_timeout", "max_mb", "total_timeout") if getattr(s, name) <= 0]
    problems += [f"{name} = {getattr(s, name)}: must not be negative" for name in
                 ("per_host_rate", "backoff_base", "backoff_max", "retry_after_max", "min_bytes_per_second",
                  "rate_grace") if getattr(s, name) < 0]
    return [f"[fetch] {p}" for p in problems]


def stem_for(row: Row) -> str:
    """A safe file stem: the category code and a hash of the URL, never the URL's own path."""
    category = "".join(c for c in (row.category or "IMG").upper() if c.isalnum())[:16] or "IMG"
    return f"{category}_{state_key(row.url)[:16]}"


def state_key(url: str) -> str:
    """A download's key in the state: a hash, so the state holds no credential or token of the URL either."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(out: Path, file_name: str) -> Path | None:
    path = (out / file_name).resolve()
    return path if path.is_relative_to(out.resolve()) else None


def _load_state(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((out / STATE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    downloads = data.get("downloads") if isinstance(data, dict) else None
    return {k: v for k, v in downloads.items() if isinstance(v, dict)} if isinstance(downloads, dict) else {}


def _verified(out: Path, entry: dict[str, Any] | None) -> bool:
    if not entry or not isinstance(entry.get("file_name"), str):
        return False
    path = _inside(out, entry["file_name"])
    return bool(path and path.is_file() and _sha256(path) == entry.get("sha256"))


def run_fetch(manifest: Path, out: Path, cfg: Config,
              on_result: Callable[[Outcome, int, int], None] | None = None, steward: Steward | None = None
              ) -> FetchResult:
    """Download every manifest row not already verified under `out`, then write metadata and the report.

    `steward`: withdrawals of consent to honour: a row of a withdrawn contributor is not fetched,
    and a download whose bytes are a withdrawn image is deleted at once.

    Ctrl-C (KeyboardInterrupt, also when raised by `on_result`) stops the downloads, writes the state,
    metadata.jsonl and the report for what finished, and is raised again.
    """
    problems = check_settings(cfg)
    if problems:
        raise FetchError("; ".join(problems))
    manifest, out = Path(manifest), Path(out)
    if manifest.resolve().is_relative_to(out.resolve()):
        raise FetchError(f"{manifest} lies inside the output folder {out}; `ccub validate` would read it as a "
                         "second submission: choose another --out")
    rows, _ = read_manifest(manifest, Vocabulary(cfg), cfg.limits)
    out.mkdir(parents=True, exist_ok=True)
    folder = out / IMAGES
    if folder.is_symlink():
        raise FetchError(f"{folder} is a symlink; fetch writes and tidies only its own folder: remove the link")
    max_pixels = int(cfg.limits.max_megapixels * 1e6)
    state = _load_state(out)
    known = {entry.get("file_name") for entry in state.values()}
    altered: set[str] = set()
    result = FetchResult(out=out)
    by_line: dict[tuple[str | None, int], Outcome] = {}
    todo: list[Row] = []
    for row in rows:
        if row.problems:
            by_line[row.key] = _outcome(row, "failed", "manifest",
                                        "; ".join(f"{p.field}: {p.message}" for p in row.problems))
        elif steward is not None and steward.is_withdrawn(None, row.extra.get("contributor")):
            by_line[row.key] = _outcome(row, "skipped", "withdrawn",
                                        "consent withdrawn by its contributor; not fetched")
        elif row.duplicate_of is not None:
            by_line[row.key] = _outcome(row, "skipped", "duplicate_url",
                                        f"same URL as {row.duplicate_of}; fetched once")
        elif _verified(out, entry := state.get(state_key(row.url))):
            by_line[row.key] = _outcome(row, "skipped", "already_downloaded",
                                        "verified by sha256", 0, entry.get("http_status"), entry.get("bytes"),
                                        entry["file_name"], entry.get("final_url") or "")
        else:
            altered.add((state.pop(state_key(row.url), None) or {}).get("file_name"))
            todo.append(row)
    adopted = _sweep(folder, known, altered, {stem_for(row): row for row in todo}, max_pixels)
    for row in todo:
        if row.url in adopted:
            entry = state[state_key(row.url)] = adopted[row.url]
            by_line[row.key] = _outcome(row, "skipped", "adopted",
                                        "a complete file left by an interrupted run, verified by decoding (its "
                                        "final URL, status and content type were not recorded)", 0, None,
                                        entry["bytes"], entry["file_name"])
    todo = [row for row in todo if row.url not in adopted]
    stop = threading.Event()
    client = Client(cfg.fetch, user_agent(cfg), stop, max_pixels)

    def job(row: Row) -> tuple[Download | None, Failure | None, int]:
        return client.fetch(row.url, folder, stem_for(row))

    def record(row: Row, future: Future) -> Outcome:
        try:
            download, failure, attempts = future.result()
        except Stopped:
            return _outcome(row, "failed", "interrupted", "the run was interrupted; rerun to resume")
        if failure is not None:
            return _outcome(row, "failed", failure.cause, str(failure), attempts, failure.status)
        if steward is not None and steward.is_withdrawn(download.sha256, None):
            download.path.unlink(missing_ok=True)
            return _outcome(row, "skipped", "withdrawn", "consent for this image was withdrawn; "
                           "the download was deleted", attempts, download.status)
        file_name = download.path.relative_to(out).as_posix()
        state[state_key(row.url)] = {"file_name": file_name, "source_url": public_url(row.url),
                                     "final_url": public_url(download.final_url), "http_status": download.status,
                                     "content_type": download.content_type, "bytes": download.bytes,
                                     "sha256": download.sha256, "format": download.format,
                                     "retrieved_at": download.retrieved_at, "attempts": attempts}
        return _outcome(row, "ok", "", "", attempts, download.status, download.bytes, file_name,
                       download.final_url)

    done_count = len(by_line)
    pool = ThreadPoolExecutor(max_workers=cfg.fetch.workers, thread_name_prefix="ccub-fetch")
    pending: dict[Future, Row] = {}
    try:
        pending = {pool.submit(job, row): row for row in todo}
        remaining = set(pending)
        while remaining:
            finished, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = by_line[pending[future].key] = record(pending[future], future)
                done_count += 1
                if done_count % CHECKPOINT_EVERY == 0:
                    _write_state(out, state)
                if on_result:
                    on_result(outcome, done_count, len(rows))
    except KeyboardInterrupt:
        result.interrupted = True
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for future, row in pending.items():  # downloads that finished while stopping keep their files
            if row.key not in by_line and future.done() and not future.cancelled():
                by_line[row.key] = record(row, future)
        raise
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for row in rows:
            by_line.setdefault(row.key, _outcome(row, "failed", "interrupted",
                                                 "not fetched: the run was interrupted; rerun to resume"))
        result.outcomes = [by_line[row.key] for row in rows]
        _write_state(out, state)
        result.records = _write_metadata(out, rows, state)
        _write_report(out, result.outcomes)
    return result


def _outcome(row: Row, *args: Any) -> Outcome:
    return Outcome(row.line, row.url, *args, sheet=row.sheet or "")


def _write_state(out: Path, state: dict[str, dict[str, Any]]) -> None:
    atomic_write_text(out / STATE, json.dumps({"tool": f"ccub/{__version__}", "downloads": state},
                                              indent=1, ensure_ascii=False))


def _write_metadata(out: Path, rows: list[Row], state: dict[str, dict[str, Any]]) -> int:
    """metadata.jsonl: one line per fetched row whose file exists, with its provenance."""
    lines = []
    for row in rows:
        entry = state.get(state_key(row.url))
        if row.problems or row.duplicate_of is not None or not entry:
            continue
        path = _inside(out, entry["file_name"])
        if path is None or not path.is_file():
            continue
        line: dict[str, Any] = {"file_name": entry["file_name"], "text": row.caption, "culture": row.culture,
                                "category": row.category}
        line.update({k: v for k, v in row.extra.items() if k not in RESERVED and k not in line})
        line.update({k: entry.get(k) for k in PROVENANCE})
        line["manifest_line"] = row.line
        if row.sheet is not None:
            line["manifest_sheet"] = row.sheet
        lines.append(json.dumps(line, ensure_ascii=False))
    atomic_write_text(out / METADATA, "".join(f"{line}\n" for line in lines))
    return len(lines)


def _write_report(out: Path, outcomes: list[Outcome]) -> None:
    rows = ({k: ("" if v is None else v) for k, v in asdict(o).items()} for o in outcomes)
    atomic_write_text(out / REPORT, csv_text(rows, list(REPORT_COLUMNS)))


def _sweep(folder: Path, known: set, altered: set, todo: dict[str, Row], max_pixels: int) -> dict[str, dict]:
    """Tidy what a killed run left in images/; the state entries of adopted files, by row URL.

    `.part` files are removed, and so are files the state lists but that no longer match it
    (`altered`; fetched again). A complete image the state does not list (renamed into place after
    the last checkpoint) is adopted when it has the name of a row still to fetch (`todo`, by stem)
    and decodes as that format, and is removed otherwise, so `ccub validate` never finds it
    without metadata.
    """
    adopted: dict[str, dict] = {}
    for item in list(os.scandir(folder)) if folder.is_dir() else ():
        path, name = Path(item.path), item.name
        if not item.is_file(follow_symlinks=False):
            continue
        if OWN_PART.fullmatch(name) or (OWN_FILE.fullmatch(name) and f"{IMAGES}/{name}" in altered):
            path.unlink(missing_ok=True)
        elif OWN_FILE.fullmatch(name) and f"{IMAGES}/{name}" not in known:
            row = todo.get(path.stem)
            entry = _adopt(path, row, max_pixels) if row else None
            if entry:
                adopted[row.url] = entry
            else:
                path.unlink(missing_ok=True)
    return adopted


def _adopt(path: Path, row: Row, max_pixels: int) -> dict[str, Any] | None:
    """The state entry for a file a killed run completed; None when it does not decode as its suffix says."""
    try:
        fmt = verify_image(path, max_pixels)
    except Failure:
        return None
    if SUFFIX[fmt] != path.suffix:
        return None
    st = path.stat()
    return {"file_name": f"{IMAGES}/{path.name}", "source_url": public_url(row.url), "final_url": None,
            "http_status": None, "content_type": None, "bytes": st.st_size, "sha256": _sha256(path),
            "format": fmt, "retrieved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
            "attempts": 0}
