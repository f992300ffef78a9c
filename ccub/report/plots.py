"""The report's charts, as small PNG images (bytes) for embedding in report.html.

Each function takes plain data from the report dict and returns PNG bytes, or None when
there is nothing to draw. Labels come from user input (culture and category values), so
they are clipped and kept out of matplotlib's mathtext.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Figures are built with the object API, never pyplot: no global figure registry to leak
# into, no GUI backend selection, and a faster import.
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from ccub.records import SEVERITIES

DPI = 100
WIDTH_IN = 7.5
SEVERITY_COLORS = {"error": "#c0392b", "review": "#e67e22", "warning": "#d4ac0d", "info": "#5d8aa8"}
MAX_BARS = 40  # cultures shown in one chart; the rest are summed into "(other)"


def _label(value: Any, limit: int = 28) -> str:
    text = " ".join(str(value).split()) or "(none)"
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    # A '$' would switch matplotlib to mathtext, which can fail on arbitrary input.
    return text.replace("$", r"\$")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs for exotic labels
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight",
                    metadata={"Software": None})
    return buffer.getvalue()


def _fold(rows: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Keep the MAX_BARS largest rows; sum the others into '(other)'."""
    ordered = sorted(rows.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    kept = {k: dict(v) for k, v in ordered[:MAX_BARS]}
    rest = ordered[MAX_BARS:]
    if rest:
        other: dict[str, int] = {}
        for _, counts in rest:
            for key, n in counts.items():
                other[key] = other.get(key, 0) + n
        kept[f"(other {len(rest)})"] = other
    return kept


def _stacked_barh(rows: Mapping[str, Mapping[str, int]], segments: list[str],
                  colors: list[str], title: str, xlabel: str) -> bytes:
    rows = _fold(rows)
    names = list(rows)[::-1]  # largest at the top
    height = min(12.0, 1.2 + 0.32 * len(names))
    fig = Figure(figsize=(WIDTH_IN, height))
    ax = fig.subplots()
    left = [0] * len(names)
    for segment, color in zip(segments, colors, strict=True):
        values = [rows[name].get(segment, 0) for name in names]
        if not any(values):
            continue
        ax.barh(range(len(names)), values, left=left, color=color, label=_label(segment),
                edgecolor="white", linewidth=0.5)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(names)), [_label(n) for n in names], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5),
              ncol=1 if len(segments) <= 16 else 2)
    return _png(fig)


def accepted_by_category(cells: Mapping[str, Mapping[str, int]]) -> bytes | None:
    """Accepted records per culture, stacked by category."""
    cells = {k: v for k, v in cells.items() if sum(v.values())}
    if not cells:
        return None
    categories = sorted({c for counts in cells.values() for c in counts})
    cmap = colormaps["tab20"]
    colors = [to_hex(cmap(i % 20)) for i in range(len(categories))]
    return _stacked_barh(cells, categories, colors, "Accepted records per culture and category",
                         "accepted records")


def findings_by_severity(counts: Mapping[str, Mapping[str, int]]) -> bytes | None:
    """Findings per culture, stacked by severity."""
    counts = {k: v for k, v in counts.items() if sum(v.values())}
    if not counts:
        return None
    severities = list(SEVERITIES) + sorted({s for v in counts.values() for s in v} - set(SEVERITIES))
    colors = [SEVERITY_COLORS.get(s, "#999999") for s in severities]
    return _stacked_barh(counts, severities, colors, "Findings per culture and severity", "findings")


BINS = 40
OUTLIER_IQRS = 3.0  # beyond the third quartile + 3 interquartile ranges, a value is a far outlier


@dataclass(frozen=True)
class Binning:
    """A histogram over [0, edges[-1]]: `counts` per bin; the `beyond` values greater than the
    range (far outliers) are counted in the last bin."""

    edges: list[float]
    counts: list[int]
    beyond: int

    @property
    def top(self) -> float:
        return self.edges[-1]


def robust_bins(values: Iterable[float], marks: Iterable[float | None] = (), bins: int = BINS) -> Binning:
    """Bins from 0 to just above the largest value that is not a far outlier (Tukey's outer
    fence: the third quartile + 3 interquartile ranges), and above every one of `marks` (lines
    drawn on the chart). A single 2,000-character caption among short ones would otherwise
    squash them all into the first bin; it is counted in the last bin instead."""
    data = np.asarray([float(v) for v in values], dtype=float)
    if data.size == 0:
        return Binning([0.0, 1.0], [0], 0)
    q1, q3 = np.percentile(data, [25, 75])
    fence = q3 + OUTLIER_IQRS * (q3 - q1)
    inside = data[data <= fence]
    top = max([float(inside.max()) if inside.size else float(data.max()),
               *(float(m) for m in marks if m)])
    end = top * 1.05 or 1.0
    counts, edges = np.histogram(np.minimum(data, end), bins=bins, range=(0.0, end))
    return Binning([float(e) for e in edges], [int(c) for c in counts], int((data > end).sum()))


def _histogram(values: list[int], xlabel: str, title: str, marks: Iterable[float | None] = (), unit: str = ""):
    """A figure and its axes with one histogram of `values` (`robust_bins`) in the house style;
    when far outliers are folded into the last bin, the chart says how many and beyond what."""
    binning = robust_bins(values, marks)
    fig = Figure(figsize=(WIDTH_IN, 3.0))
    ax = fig.subplots()
    ax.stairs(binning.counts, binning.edges, fill=True, color="#5d8aa8", edgecolor="white", linewidth=0.5)
    if binning.beyond:
        xlabel += (f"; {binning.beyond} value{'s' if binning.beyond != 1 else ''} beyond {binning.top:,.0f}{unit} "
                   f"counted in the last bin")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("images", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def short_side_histogram(sides: Iterable[int], error_below: int | None = None,
                         warning_below: int | None = None) -> bytes | None:
    """Distribution of the images' shorter side, with the size thresholds marked."""
    sides = [int(s) for s in sides if s]
    if not sides:
        return None
    fig, ax = _histogram(sides, "shorter side (px)", "Image size: shorter side", (error_below, warning_below),
                         " px")
    for value, color, name in ((error_below, SEVERITY_COLORS["error"], "error below"),
                               (warning_below, SEVERITY_COLORS["warning"], "warning below")):
        if value:
            ax.axvline(value, color=color, linestyle="--", linewidth=1.2,
                       label=f"{name} {value} px")
    if error_below or warning_below:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def caption_histogram(lengths: list[int]) -> bytes | None:
    """Distribution of caption lengths in characters."""
    lengths = [int(n) for n in lengths]
    if not lengths:
        return None
    fig, _ = _histogram(lengths, "caption length (characters)", "Caption length", unit=" characters")
    return _png(fig)
