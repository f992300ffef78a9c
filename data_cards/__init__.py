"""Data cards for a clean dataset, rendered from one source of truth.

The steward writes the facts no tool can know once, in a `card.toml` (`ccub card --init`
writes a commented template: `card_template.toml`); everything else comes from what
`ccub validate` computed (the report dict and the files under `<out>/clean`).

- `facts`: `CardMeta` (card.toml), `DatasetStats` (computed), `missing_fields` (the
  Croissant-required fields still empty: REQUIRED).
- `licenses`: SPDX ids to the Hugging Face hub's licence ids.
- `hf_card`: `<out>/clean/README.md` (hub YAML header + dataset card) and its PNG plots.
- `croissant` (when present): `<out>/clean/croissant.json`.

Whenever cards are written, the steward's facts they were written from are recorded in
`<out>/reports/card.json` (with the card.toml they came from): validate records them in its
staging folder, so they are published with the cards, and `refresh_cards` rewrites the cards
of a published output from them after its data changed (`ccub prepare`) or the steward's
card.toml did (`ccub card`).

A card missing required fields is still written, marked incomplete (`ccub_card_status:
incomplete` in the header and a banner); `CardResult.missing` names the fields to add.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccub.files import atomic_write_bytes, atomic_write_text
from data_cards.facts import (
    CardError,
    CardMeta,
    DatasetStats,
    compute_stats,
    load_meta,
    meta_from_dict,
    missing_fields,
)

__all__ = ["CardResult", "write_cards", "refresh_cards", "recorded_source", "recorded_meta", "build_cards"]

PLOT_DIR = "card"
FACTS_FILE = "card.json"  # under <out>/reports/
FACTS_SCHEMA = "ccub.card.facts"


@dataclass
class CardResult:
    paths: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    source: Path | None = None  # the card.toml the facts came from, when known


def build_cards(meta: CardMeta, stats: DatasetStats, changelog: str = "") -> dict[str, bytes]:
    """Every card file by its path relative to `<out>/clean`, as bytes (nothing written);
    `changelog` (Markdown, a release's: `ccub release`) becomes the card's Changelog section."""
    from data_cards.hf_card import render_hf_card, render_plots

    files: dict[str, bytes] = {}
    plots: dict[str, str] = {}
    for name, png in render_plots(stats).items():
        rel = f"{PLOT_DIR}/{name}.png"
        files[rel] = png
        plots[name] = rel
    files["README.md"] = render_hf_card(meta, stats, plots, changelog).encode("utf-8")
    try:
        from data_cards import croissant
    except ImportError:
        croissant = None
    render: Any = getattr(croissant, "render_croissant", None)
    if render is not None:
        files["croissant.json"] = (json.dumps(render(meta, stats), indent=2, sort_keys=False,
                                              ensure_ascii=False) + "\n").encode("utf-8")
    return files


def write_cards(report: dict[str, Any], out_dir: Path, meta_path: Path | None) -> CardResult:
    """Compute the stats, write README.md, plots and croissant.json under `out_dir/clean` and
    record the facts of `meta_path` (None: the empty defaults) under `out_dir/reports`."""
    return _write(report, Path(out_dir), load_meta(meta_path), meta_path)


def refresh_cards(data_dir: Path, meta_path: Path | None = None) -> CardResult:
    """Rewrite the cards of a published output from its report and files as they are now.

    The facts are `meta_path`'s when given (and are recorded for the next refresh), else
    those recorded when the cards were last written. Call while holding
    `ccub.outdir.exclusive(data_dir)`.
    """
    from ccub.recordfile import RecordError
    from ccub.report.record import REPORT_FILE, ValidationReport

    data_dir = Path(data_dir)
    report_path = data_dir / "reports" / REPORT_FILE
    if not report_path.is_file():
        raise CardError(f"{report_path} not found; give the --out folder of a `ccub validate` run")
    try:
        report = ValidationReport.read(report_path).as_dict()
    except RecordError as exc:
        raise CardError(str(exc)) from exc
    if meta_path is not None:
        return write_cards(report, data_dir, meta_path)
    return _write(report, data_dir, *_recorded(data_dir))


def refresh_published(data_dir: Path, meta_path: Path | None = None) -> CardResult:
    """`ccub card`: refresh the cards of a `ccub validate --out` folder under its lock, from
    `meta_path`, else ./card.toml (as for validate), else the card.toml they were last written
    from (the steward may have edited it), else the facts recorded with them."""
    from ccub.outdir import exclusive

    data_dir = Path(data_dir)
    if not data_dir.is_dir():  # the lock would create it
        raise CardError(f"{data_dir / 'reports' / 'report.json'} not found; give the --out folder of a "
                        "`ccub validate` run")
    # The lock also completes a publish that a killed validate left half done.
    with exclusive(data_dir, command="ccub card"):
        local = Path("card.toml") if Path("card.toml").is_file() else None
        return refresh_cards(data_dir, meta_path or local or recorded_source(data_dir))


def rewrite_cards(report: dict[str, Any], staged: Path, data_dir: Path) -> CardResult:
    """The cards of an output rebuilt in the staging folder `staged` (`ccub withdraw`), from the
    facts recorded with `data_dir`'s cards (written, with those facts, under `staged`)."""
    meta, source = _recorded(Path(data_dir))
    return _write(report, Path(staged), meta, source)


def write_template(target: Path) -> None:
    """A commented card.toml for the steward to fill in; never over an existing file."""
    from importlib import resources

    if target.exists():
        raise CardError(f"{target} exists; ccub never overwrites your card file")
    target.write_text(resources.files("data_cards").joinpath("card_template.toml").read_text("utf-8"),
                      encoding="utf-8")


def recorded_source(data_dir: Path) -> Path | None:
    """The card.toml the cards of `data_dir` were last written from, when it is still there."""
    source = _recorded(Path(data_dir))[1]
    return source if source is not None and source.is_file() else None


def recorded_meta(data_dir: Path) -> CardMeta:
    """The steward's facts the cards of `data_dir` were last written from (the defaults if none)."""
    return _recorded(Path(data_dir))[0]


def _write(report: dict[str, Any], out_dir: Path, meta: CardMeta,
           source: Path | None) -> CardResult:
    clean = out_dir / "clean"
    stats = compute_stats(report, out_dir, contributor_min_images=meta.contributor_min_images)
    # The facts first: killed half way, the next refresh still renders what was asked for.
    _record(out_dir, meta, source)
    result = CardResult(missing=missing_fields(meta, stats), source=source)
    for rel, data in build_cards(meta, stats).items():
        path = clean / rel
        atomic_write_bytes(path, data)
        result.paths.append(path)
    return result


def _record(out_dir: Path, meta: CardMeta, source: Path | None) -> None:
    atomic_write_text(out_dir / "reports" / FACTS_FILE, json.dumps({
        "schema": FACTS_SCHEMA, "schema_version": 1,
        "source": str(Path(source).resolve()) if source is not None else None,
        "facts": dataclasses.asdict(meta)}, indent=2, ensure_ascii=False) + "\n")


def _recorded(data_dir: Path) -> tuple[CardMeta, Path | None]:
    """The recorded facts and their card.toml; the defaults for an output that has none."""
    path = data_dir / "reports" / FACTS_FILE
    if not path.is_file():
        return CardMeta(), None
    fix = "rerun `ccub card --meta card.toml`"
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CardError(f"{path}: unreadable ({exc}); {fix}") from exc
    if not isinstance(data, dict) or data.get("schema") != FACTS_SCHEMA \
            or not isinstance(data.get("facts"), dict) \
            or not isinstance(data.get("source"), str | None):
        raise CardError(f"{path}: not a record of card facts; {fix}")
    try:
        meta = meta_from_dict(data["facts"], str(path))
    except CardError as exc:
        raise CardError(f"{exc}; {fix}") from exc
    return meta, Path(data["source"]) if data.get("source") else None
