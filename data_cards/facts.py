"""The facts a data card is rendered from: the steward's `card.toml` and the computed stats.

`CardMeta` is what a person writes once (who, why, how consent was asked); `DatasetStats`
is what `ccub validate` computed, read from the report dict and the files under
`<out>/clean`. Renderers (hf_card, croissant) take both and add nothing of their own.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import statistics
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cache
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

# Croissant's required fields that ccub enforces; a card missing any is marked incomplete.
REQUIRED = ("license", "publication_date", "citation", "creators", "version")

PRIVACY_CHECKS = {
    "privacy.location": "location",
    "privacy.device_serial": "device_serial",
    "privacy.owner_name": "owner_name",
}
BLOCKING = ("error", "review")
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?")

# What each column of metadata.jsonl holds, for both cards (Markdown code spans are kept as
# they are in the Croissant descriptions).
COLUMN_DOCS = {
    "file_name": "image path relative to the split folder (`images/<name>`)",
    "text": "the community caption, written by a member of the culture (SCoFT's caption)",
    "blip_text": "SCoFT: a generic machine caption without cultural context, used as the "
                 "contrast to `text`",
    "blip_source": "how `blip_text` was made (`ccub prepare`: model, lexicon strip, or the dataset's own)",
    "negative_imgpath": "SCoFT: paths of negative images (relative to `<culture>/`), "
                        "copied to `<culture>/negatives/`; may be empty",
    "culture": "culture slug (one config per culture)",
    "category": "category from ccub's vocabulary (e.g. FOOD, ARCH, CLOTH)",
    "license": "SPDX id of the image's licence",
    "creator": "who made the image (for attribution)",
    "contributor": "contributor id as given in the submission",
    "consent": "consent statement recorded for people shown (or `n/a`)",
    "language": "caption language (ISO 639-1), when known",
    "caption_source": "how the caption was written (e.g. contributor, translated)",
    "created_at": "when the image was taken or created, when known",
    "source_file": "the image's path in the submission",
    "export": "how the image was written: metadata removed losslessly, or re-encoded",
}
CARRIED = "carried through from the submission"


class CardError(ValueError):
    """A card.toml that cannot be used (syntax, unknown key, wrong type)."""


@dataclass
class CardMeta:
    name: str = "ccub-dataset"
    pretty_name: str = ""
    description: str = ""
    version: str = ""
    license: str = ""
    publication_date: str = ""
    citation: str = ""
    creators: list[str] = field(default_factory=list)
    curators: list[str] = field(default_factory=list)
    contact: str = ""
    homepage: str = ""
    recruitment: str = ""
    compensation: str = ""
    consent_wording: str = ""
    withdrawal: str = ""
    caption_authors: str = ""
    intended_uses: str = ""
    out_of_scope_uses: str = ""
    known_gaps: str = ""
    biases: str = ""
    maintenance: str = ""
    tags: list[str] = field(default_factory=list)
    contributor_min_images: int = 5


def load_meta(path: Path | None) -> CardMeta:
    """Read a card.toml; None gives the defaults (every steward field empty)."""
    if path is None:
        return CardMeta()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CardError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CardError(f"{path}: not valid TOML ({exc})") from exc
    return meta_from_dict(data, str(path))


def meta_from_dict(data: dict[str, Any], where: str) -> CardMeta:
    """CardMeta from parsed card.toml (or recorded) values, each checked; `where` names the source."""
    known = {f.name: f for f in fields(CardMeta)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise CardError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                        f"valid keys: {', '.join(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        kind = known[key].type
        if kind == "list[str]":
            if isinstance(value, str):
                value = [value] if value.strip() else []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CardError(f"{where}: {key} must be a list of strings")
            value = [v.strip() for v in value if v.strip()]
        elif kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CardError(f"{where}: {key} must be a positive whole number")
        else:
            if hasattr(value, "isoformat"):  # TOML dates: publication_date = 2024-06-01
                value = value.isoformat()
            if not isinstance(value, str):
                raise CardError(f"{where}: {key} must be a string")
            value = value.strip()
        kwargs[key] = value
    return CardMeta(**kwargs)


@dataclass
class Summary:
    """Five-number summary of a distribution (all zero when empty)."""

    count: int = 0
    min: float = 0
    median: float = 0
    mean: float = 0
    max: float = 0

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        if not values:
            return cls()
        return cls(len(values), min(values), statistics.median(values),
                   round(statistics.fmean(values), 2), max(values))


@dataclass
class DatasetStats:
    total: int = 0
    cultures: list[str] = field(default_factory=list)
    data_files: dict[str, dict[str, str]] = field(default_factory=dict)  # culture -> split -> path
    by_culture_category: dict[str, dict[str, int]] = field(default_factory=dict)
    by_split: dict[str, int] = field(default_factory=dict)
    by_culture_split: dict[str, dict[str, int]] = field(default_factory=dict)
    by_license: dict[str, int] = field(default_factory=dict)
    by_language: dict[str, int] = field(default_factory=dict)  # "und" when unknown
    by_caption_source: dict[str, int] = field(default_factory=dict)
    contributors: list[tuple[str, int]] = field(default_factory=list)  # (pseudonym, images)
    contributors_total: int = 0
    caption_chars: Summary = field(default_factory=Summary)
    caption_words: Summary = field(default_factory=Summary)
    caption_chars_list: list[int] = field(default_factory=list)
    short_side: Summary = field(default_factory=Summary)
    megapixels: Summary = field(default_factory=Summary)
    short_side_list: list[int] = field(default_factory=list)
    records_in: int = 0
    not_exported: dict[str, int] = field(default_factory=dict)  # status -> records
    removed_by_check: dict[str, int] = field(default_factory=dict)  # check -> records not exported
    privacy_stripped: dict[str, int] = field(default_factory=dict)  # location/device_serial/owner_name
    exports: dict[str, int] = field(default_factory=dict)  # export mode -> images
    single_license: str | None = None
    metadata_files: list[tuple[str, str, int]] = field(default_factory=list)  # path, sha256, bytes
    checks: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    disabled_checks: list[str] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    config_sha256: str = ""
    generated: str = ""  # ISO date the card was generated (the only date-dependent value)
    blip_text_rows: int = 0  # rows with a generic caption (SCoFT, `ccub prepare`)
    negative_rows: int = 0  # rows listing negative images
    reviewed_rows: int = 0  # rows held by the checks and accepted by a person (`reviewed_by`)
    negative_files: int = 0  # distinct negative images listed
    columns: list[str] = field(default_factory=list)  # metadata.jsonl columns, first-seen order
    # metadata.jsonl path -> its columns in file order, each with its kind (see column_kind)
    file_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    # "YYYY-MM-DD: N items withdrawn ...", one per day (`ccub withdraw`): a number and a date, never whose
    changelog: list[str] = field(default_factory=list)


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(report: dict[str, Any]) -> dict[str, str]:
    return {"ccub": str(report.get("ccub_version") or _version("ccub")),
            "Pillow": _version("Pillow"), "numpy": _version("numpy"),
            "imagehash": _version("ImageHash"), "python": platform.python_version()}


def config_sha256(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return (config.get(section) or {}).get(key)


def _checks(config: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    from ccub.checks.registry import all_specs

    overrides = config.get("severity") or {}
    disabled = set(config.get("disable") or ())
    rows = []
    for spec in all_specs():
        if spec.id in disabled:
            continue
        thresholds = {name: _lookup(config, name) for name in spec.thresholds}
        rows.append((spec.id, overrides.get(spec.id) or spec.severity, thresholds))
    return rows


def is_iso_moment(value: str) -> bool:
    """A plain ISO 8601 date or date-time (the forms every date parser reads alike)."""
    if not ISO_MOMENT.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def column_kind(values: list[Any]) -> str:
    """What a column holds, from its values (empty ones aside): "list" when all are lists,
    "datetime" when all are ISO dates or date-times, else "text". Croissant fields are typed by it."""
    given = [v for v in values if v not in (None, "")]
    if given and all(isinstance(v, list) for v in given):
        return "list"
    if given and all(isinstance(v, str) and is_iso_moment(v) for v in given):
        return "datetime"
    return "text"


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                rows.append(value)
    return rows


def pseudonymise(counts: Counter[str], k: int) -> list[tuple[str, int]]:
    """'contributor-01'... numbered by sorted id; those under k images summed into one row."""
    width = max(2, len(str(len(counts))))
    listed, small, small_images = [], 0, 0
    for index, contributor in enumerate(sorted(counts), start=1):
        n = counts[contributor]
        if n >= k:
            listed.append((f"contributor-{index:0{width}d}", n))
        else:
            small += 1
            small_images += n
    listed.sort(key=lambda item: (-item[1], item[0]))
    if small:
        listed.append((f"others ({small} contributor{'s' if small != 1 else ''})", small_images))
    return listed


def withdrawal_changelog(out_dir: Path) -> list[str]:
    """One line per day on which published items were withdrawn, from the steward's withdrawals
    (`out_dir/steward`, or beside the staging folder `out_dir` is); each digest counted once.
    Only the date and the number are read out: never the contributor or the reason."""
    from ccub.outdir import TMP_PREFIX
    from ccub.steward import STEWARD_DIR, WITHDRAWALS_FILE, StewardError
    from ccub.steward.records import withdrawal_from

    out_dir = Path(out_dir)
    folder = out_dir / STEWARD_DIR
    if not folder.is_dir() and out_dir.name.startswith(TMP_PREFIX):
        folder = out_dir.parent / STEWARD_DIR
    path = folder / WITHDRAWALS_FILE
    if not path.is_file():
        return []
    seen: set[str] = set()
    days: Counter[str] = Counter()
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            withdrawal = withdrawal_from(json.loads(line))
        except (ValueError, StewardError):
            continue
        fresh = set(withdrawal.items) - seen
        seen |= fresh
        if fresh:
            days[withdrawal.at[:10]] += len(fresh)
    return [f"{day}: {n} item{'s' if n != 1 else ''} withdrawn (consent withdrawn; removed from the data files)"
            for day, n in sorted(days.items())]


def compute_stats(report: dict[str, Any], out_dir: Path, *, contributor_min_images: int = 5,
                  today: str | None = None) -> DatasetStats:
    """Everything computed about the clean dataset, from the report and `out_dir/clean`."""
    clean = Path(out_dir) / "clean"
    records = report.get("records") or []
    issues = report.get("issues") or []
    exported = [r for r in records if r.get("output")]
    stats = DatasetStats(total=len(exported), records_in=len(records))

    # Data files: every clean/<culture>/<split>/metadata.jsonl on disk.
    rows_by_file: dict[str, list[dict[str, Any]]] = {}
    if clean.is_dir():
        for meta in sorted(clean.glob("*/*/metadata.jsonl")):
            rel = meta.relative_to(clean).as_posix()
            culture, split = meta.parent.parent.name, meta.parent.name
            stats.data_files.setdefault(culture, {})[split] = rel
            data = meta.read_bytes()
            stats.metadata_files.append((rel, hashlib.sha256(data).hexdigest(), len(data)))
            rows_by_file[rel] = _read_rows(meta)
    stats.cultures = sorted(stats.data_files)
    negatives: set[tuple[str, str]] = set()  # (culture folder, path): paths are per culture
    for rel, rows in rows_by_file.items():
        names = list(dict.fromkeys(k for r in rows for k in r))
        stats.file_columns[rel] = {name: column_kind([r.get(name) for r in rows]) for name in names}
        for r in rows:
            stats.blip_text_rows += bool(r.get("blip_text"))
            stats.reviewed_rows += bool(r.get("reviewed_by"))
            listed = r.get("negative_imgpath")
            if isinstance(listed, list) and listed:
                stats.negative_rows += 1
                negatives.update((rel.split("/", 1)[0], str(p)) for p in listed)
    stats.negative_files = len(negatives)
    stats.columns = list(dict.fromkeys(c for names in stats.file_columns.values() for c in names))
    # Caption sources are written to the rows, not to the report's records.
    sources: Counter[str] = Counter()
    for rows in rows_by_file.values():
        sources.update(str(r.get("caption_source") or "not stated") for r in rows)
    stats.by_caption_source = dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0])))

    cells: dict[str, Counter[str]] = defaultdict(Counter)
    culture_split: dict[str, Counter[str]] = defaultdict(Counter)
    splits: Counter[str] = Counter()
    licenses: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    contributors: Counter[str] = Counter()
    exports: Counter[str] = Counter()
    chars, words, sides, megapixels = [], [], [], []
    for r in exported:
        culture = r.get("culture") or "(none)"
        split = r.get("split") or "train"
        cells[culture][r.get("category") or "(none)"] += 1
        culture_split[culture][split] += 1
        splits[split] += 1
        licenses[_canonical_license(r.get("license"))] += 1
        languages[r.get("language") or "und"] += 1
        contributors[r.get("contributor") or "(unknown)"] += 1
        exports[r.get("export") or "unknown"] += 1
        chars.append(int(r.get("caption_chars") or 0))
        words.append(len((r.get("caption") or "").split()))
        if r.get("width") and r.get("height"):
            sides.append(min(r["width"], r["height"]))
            megapixels.append(round(r["width"] * r["height"] / 1e6, 3))

    def ordered(counter: Counter[str]) -> dict[str, int]:
        return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))

    stats.by_culture_category = {c: dict(sorted(v.items())) for c, v in sorted(cells.items())}
    stats.by_culture_split = {c: dict(sorted(v.items())) for c, v in sorted(culture_split.items())}
    stats.by_split = dict(sorted(splits.items()))
    stats.by_license = ordered(licenses)
    stats.by_language = ordered(languages)
    stats.exports = ordered(exports)
    stats.contributors = pseudonymise(contributors, contributor_min_images)
    stats.contributors_total = len(contributors)
    stats.caption_chars, stats.caption_words = Summary.of(chars), Summary.of(words)
    stats.caption_chars_list = sorted(chars)
    stats.short_side, stats.megapixels = Summary.of(sides), Summary.of(megapixels)
    stats.short_side_list = sorted(sides)
    stats.single_license = next(iter(licenses)) if len(licenses) == 1 and "(none)" not in licenses \
        else None

    # What validation removed: records not exported, by status and by their blocking checks.
    stats.not_exported = ordered(Counter(r.get("status") or "unknown"
                                         for r in records if not r.get("output")))
    removed: Counter[str] = Counter()
    privacy: Counter[str] = Counter()
    for r in records:
        found = [issues[i] for i in r.get("issues") or () if 0 <= i < len(issues)]
        if r.get("output"):
            privacy.update({PRIVACY_CHECKS[c] for c in {i["check"] for i in found}
                            if c in PRIVACY_CHECKS})
        else:
            blocking = {i["check"] for i in found if i.get("severity") in BLOCKING}
            removed.update(blocking or {f"(no record check; status {r.get('status') or 'unknown'})"})
    stats.removed_by_check = ordered(removed)
    stats.privacy_stripped = {name: privacy.get(name, 0) for name in PRIVACY_CHECKS.values()}

    config = report.get("config") or {}
    stats.checks = _checks(config)
    stats.disabled_checks = sorted(config.get("disable") or ())
    stats.tool_versions = tool_versions(report)
    stats.config_sha256 = config_sha256(config)
    stats.generated = today or datetime.now(UTC).date().isoformat()
    stats.changelog = withdrawal_changelog(Path(out_dir))
    return stats


@cache
def _rights():
    from ccub.checks.rights import RightsChecks

    return RightsChecks()  # its SPDX licensing table loads once


def _canonical_license(value: str | None) -> str:
    """The SPDX id as exported (the report keeps what the contributor wrote, e.g. cc-by-4.0)."""
    if not value:
        return "(none)"
    return _rights().canonical_license(value)[0] or value


def effective_license(meta: CardMeta, stats: DatasetStats) -> str:
    """The steward's licence, else the one licence every exported record shares, else ''."""
    return meta.license or stats.single_license or ""


def missing_fields(meta: CardMeta, stats: DatasetStats) -> list[str]:
    """Names in REQUIRED still empty after deriving what can be derived from the data."""
    values = {"license": effective_license(meta, stats), "publication_date": meta.publication_date,
              "citation": meta.citation, "creators": meta.creators, "version": meta.version}
    return [name for name in REQUIRED if not values[name]]
