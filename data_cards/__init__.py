"""Data cards for a clean dataset, rendered from one source of truth.

The steward writes the facts no tool can know once, in a `card.toml` (`ccub card --init`
writes a commented template: `card_template.toml`); everything else comes from what
`ccub validate` computed (the report dict and the files under `<out>/clean`).

- `facts`: `CardMeta` (card.toml), `DatasetStats` (computed), `missing_fields` (the
  Croissant-required fields still empty: REQUIRED).
- `licenses`: SPDX ids to the Hugging Face hub's licence ids.
- `hf_card`: `<out>/clean/README.md` (hub YAML header + dataset card) and its PNG plots.
- `croissant` (when present): `<out>/clean/croissant.json`.

A card missing required fields is still written, marked incomplete (`ccub_card_status:
incomplete` in the header and a banner); `CardResult.missing` names the fields to add.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccub.files import atomic_write_bytes
from data_cards.facts import CardMeta, DatasetStats, compute_stats, load_meta, missing_fields

__all__ = ["CardResult", "write_cards", "build_cards"]

PLOT_DIR = "card"


@dataclass
class CardResult:
    paths: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def build_cards(meta: CardMeta, stats: DatasetStats) -> dict[str, bytes]:
    """Every card file by its path relative to `<out>/clean`, as bytes (nothing written)."""
    from data_cards.hf_card import render_hf_card, render_plots

    files: dict[str, bytes] = {}
    plots: dict[str, str] = {}
    for name, png in render_plots(stats).items():
        rel = f"{PLOT_DIR}/{name}.png"
        files[rel] = png
        plots[name] = rel
    files["README.md"] = render_hf_card(meta, stats, plots).encode("utf-8")
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
    """Compute the stats, write README.md, plots and croissant.json under `out_dir/clean`."""
    meta = load_meta(meta_path)
    clean = Path(out_dir) / "clean"
    stats = compute_stats(report, Path(out_dir), contributor_min_images=meta.contributor_min_images)
    result = CardResult(missing=missing_fields(meta, stats))
    for rel, data in build_cards(meta, stats).items():
        path = clean / rel
        atomic_write_bytes(path, data)
        result.paths.append(path)
    return result
