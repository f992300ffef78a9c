"""The Hugging Face dataset card (README.md) of a clean dataset, and its plots.

The YAML header is built as a dict and dumped with yaml.safe_dump; the body is the
`templates/hf_card.md.j2` Jinja template, which follows the hub's dataset card template and
adds the Datasheets for Datasets questions on consent and withdrawal, the contributors and
the provenance. Every value the template prints is escaped unless it is a `Raw` string built
here: steward text (card.toml) and data values (culture, category, licence names) are
untrusted and must neither inject HTML nor break a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
import yaml

from data_cards.facts import (
    CARRIED,
    COLUMN_DOCS,
    REQUIRED,
    CardMeta,
    DatasetStats,
    effective_license,
    missing_fields,
)
from data_cards.licenses import hub_license, hub_licenses, spdx_link

TEMPLATES = Path(__file__).parent / "templates"
PLOT_NAMES = ("culture_category", "captions", "short_side")

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                   (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                   (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
                   (1_000_000_000_000, "100B<n<1T"))

SCOFT_BIBTEX = """@inproceedings{liu2024scoft,
  title     = {{SCoFT}: Self-Contrastive Fine-Tuning for Equitable Image Generation},
  author    = {Liu, Zhixuan and Schaldenbrand, Peter and Okogwu, Beverley-Claire and
               Peng, Wenxuan and Yun, Youngsik and Hundt, Andrew and Kim, Jihie and Oh, Jean},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  pages     = {10822--10832},
  year      = {2024}
}"""


# ---------------------------------------------------------------------------- escaping


class Raw(str):
    """Markdown built by this module; the template prints it as it is."""


_INLINE = re.compile(r"([\\`*_\[\]{}|~])")
_LINE_START = re.compile(r"^(\s*)([#=+\-]|\d+(?=[.)]))", re.MULTILINE)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_inline(value: Any) -> str:
    """One line of untrusted text, safe in a paragraph or a table cell."""
    text = " ".join(str(value).split())
    return _INLINE.sub(r"\\\1", _html(text))


def md_code_span(value: Any) -> Raw:
    """Untrusted text as inline code: shown literally, safe in a table cell."""
    text = " ".join(str(value).split()).replace("`", "'").replace("|", "\\|")
    return Raw(f"`{text}`") if text else Raw("")


def _escape_line_start(m: re.Match[str]) -> str:
    lead, mark = m.group(1), m.group(2)
    # "1." -> "1\." (a backslash before a digit would show); "#" -> "\#".
    return lead + (mark + "\\" if mark[0].isdigit() else "\\" + mark)


def md_block(value: Any) -> str:
    """Untrusted prose: paragraphs kept, no HTML, no headings, lists, rules or tables."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out = []
    for paragraph in paragraphs:
        lines = [" ".join(line.split()) for line in paragraph.split("\n") if line.strip()]
        escaped = _INLINE.sub(r"\\\1", _html("\n".join(lines)))
        out.append(_LINE_START.sub(_escape_line_start, escaped))
    return "\n\n".join(out)


def md_code(value: Any) -> str:
    """Untrusted text shown verbatim in a fenced block (a BibTeX citation)."""
    text = str(value).replace("\r\n", "\n").strip("\n")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


_URL = re.compile(r"(https?://|mailto:)[^\s<>()\[\]`|\\\"']+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def md_link(value: Any) -> str:
    """A URL or e-mail address as an autolink when it is plainly one; else escaped text."""
    text = str(value).strip()
    if _URL.fullmatch(text) or _EMAIL.fullmatch(text):
        return Raw(f"<{text}>")
    return Raw(md_inline(text))


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value
    return md_inline(value)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Raw:
    header = list(header)
    lines = ["| " + " | ".join(md_inline(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [c if isinstance(c, Raw) else md_inline(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return Raw("\n".join(lines))


def _count_table(label: str, counts: dict[str, int], total: int) -> Raw:
    rows = [(key, n, f"{100 * n / total:.1f}%" if total else "-") for key, n in counts.items()]
    return _table((label, "images", "share"), rows)


# ---------------------------------------------------------------------------- header


def size_category(n: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "n>1T"


def _languages(stats: DatasetStats) -> list[str]:
    codes = []
    for language in stats.by_language:
        primary = language.split("-")[0].split("_")[0].lower()
        if re.fullmatch(r"[a-z]{2}", primary) and primary not in codes:
            codes.append(primary)
    return sorted(codes)


def _tag(text: str) -> str:
    return re.sub(r"[^a-z0-9.+]+", "-", text.lower()).strip("-")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def header(meta: CardMeta, stats: DatasetStats, missing: list[str]) -> dict[str, Any]:
    """The YAML header the hub reads, as a dict (key order is the written order)."""
    data: dict[str, Any] = {}
    licence = effective_license(meta, stats)
    if licence:
        hub, name, link = hub_license(licence)
    else:
        hub, name, link = hub_licenses(k for k in stats.by_license if k != "(none)")
    data["license"] = hub
    if name:
        data["license_name"] = name
    if link:
        data["license_link"] = link
    languages = _languages(stats)
    if languages:
        data["language"] = languages
    data["task_categories"] = ["text-to-image"]
    data["size_categories"] = [size_category(stats.total)]
    tags = ["ccub", "cultural", *stats.cultures, *meta.tags]
    data["tags"] = list(dict.fromkeys(t for t in (_tag(t) for t in tags) if t))
    data["pretty_name"] = _one_line(meta.pretty_name or meta.name)
    data["configs"] = [
        {"config_name": culture,
         "data_files": [{"split": split, "path": f"{culture}/{split}/**"}
                        for split in sorted(stats.data_files[culture], key=_split_order)]}
        for culture in stats.cultures
    ]
    data["ccub_card_status"] = "incomplete" if missing else "complete"
    if missing:
        data["ccub_card_missing"] = list(missing)
    return data


def _split_order(split: str) -> tuple[int, str]:
    return ({"train": 0, "validation": 1, "test": 2}.get(split, 3), split)


# ---------------------------------------------------------------------------- body


def _value(value: Any, items: int = 6, chars: int = 60) -> str:
    if isinstance(value, list | tuple) and len(value) > items:
        value = [*value[:items], f"... {len(value) - items} more"]
    text = repr(value) if isinstance(value, list | tuple) else str(value)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _thresholds(values: dict[str, Any]) -> Raw:
    return Raw(", ".join(md_code_span(f"{k} = {_value(v)}") for k, v in values.items()))


def _cells(stats: DatasetStats) -> Raw:
    categories = sorted({c for row in stats.by_culture_category.values() for c in row})
    rows = []
    for culture, row in stats.by_culture_category.items():
        rows.append([culture, *[row.get(c, 0) for c in categories], sum(row.values())])
    totals = [sum(stats.by_culture_category[k].get(c, 0) for k in stats.by_culture_category)
              for c in categories]
    rows.append([Raw("**total**"), *totals, stats.total])
    return _table(["culture", *categories, "total"], rows)


def _licences(stats: DatasetStats) -> Raw:
    rows = []
    for spdx, n in stats.by_license.items():
        hub, _, _ = hub_license(spdx) if spdx != "(none)" else ("unknown", None, None)
        link = Raw(f"<{spdx_link(spdx)}>") if spdx != "(none)" else "-"
        rows.append((spdx, hub, n, link))
    return _table(("licence (SPDX)", "hub id", "images", "text"), rows)


def context(meta: CardMeta, stats: DatasetStats, plots: dict[str, str],
            missing: list[str]) -> dict[str, Any]:
    licence = effective_license(meta, stats)
    split_names = sorted(stats.by_split, key=_split_order)
    columns = stats.columns or list(COLUMN_DOCS)
    checks_by_id = {c[0]: c for c in stats.checks}
    return {
        "meta": meta, "stats": stats, "missing": missing, "required": REQUIRED,
        "missing_list": Raw(", ".join(md_code_span(name) for name in missing)),
        "title": meta.pretty_name or meta.name,
        "licence": licence,
        "homepage": md_link(meta.homepage) if meta.homepage else "",
        "contact": md_link(meta.contact) if meta.contact else "",
        "licence_link": Raw(f"<{spdx_link(licence)}>") if licence else "",
        "description": Raw(md_block(meta.description)) if meta.description else "",
        "prose": {name: Raw(md_block(getattr(meta, name))) if getattr(meta, name) else "" for name in (
            "recruitment", "compensation", "consent_wording", "withdrawal", "caption_authors",
            "intended_uses", "out_of_scope_uses", "known_gaps", "biases", "maintenance")
            },
        "citation": Raw(md_code(meta.citation)) if meta.citation else "",
        "scoft_bibtex": Raw(md_code(SCOFT_BIBTEX)),
        "languages": _languages(stats),
        "plots": {**dict.fromkeys(PLOT_NAMES, ""),
                  **{k: Raw(f"![{md_inline(k.replace('_', ' '))}]({v})") for k, v in plots.items()}},
        "cells": _cells(stats),
        "splits": _table(("culture", *split_names, "total"), [
            (culture, *[row.get(s, 0) for s in split_names], sum(row.values()))
            for culture, row in stats.by_culture_split.items()]),
        "configs": _table(("config", "split", "data files"), [
            (culture, split, md_code_span(path.rsplit("/", 1)[0] + "/"))
            for culture in stats.cultures
            for split, path in sorted(stats.data_files[culture].items(),
                                      key=lambda kv: _split_order(kv[0]))]),
        "fields": _table(("field", "description"), [
            (md_code_span(c), Raw(COLUMN_DOCS.get(c, CARRIED)))
            for c in columns]),
        "licences": _licences(stats),
        "languages_table": _count_table("caption language", stats.by_language, stats.total),
        "sources_table": _count_table("caption source", stats.by_caption_source, stats.total),
        "contributors": _table(("contributor", "images"), stats.contributors),
        "distributions": _table(("measure", "count", "min", "median", "mean", "max"), [
            (name, s.count, s.min, s.median, s.mean, s.max) for name, s in (
                ("caption length (characters)", stats.caption_chars),
                ("caption length (words)", stats.caption_words),
                ("image shorter side (px)", stats.short_side),
                ("image size (megapixels)", stats.megapixels))]),
        "not_exported": _table(("status", "records"), list(stats.not_exported.items())),
        "removed": _table(("check", "severity", "records not exported"), [
            (md_code_span(check),
             checks_by_id[check][1] if check in checks_by_id else "-", n)
            for check, n in stats.removed_by_check.items()]),
        "privacy": _table(("metadata removed", "exported images"), [
            ("GPS / place name (privacy.location)", stats.privacy_stripped.get("location", 0)),
            ("device serial number (privacy.device_serial)",
             stats.privacy_stripped.get("device_serial", 0)),
            ("owner / artist name (privacy.owner_name)",
             stats.privacy_stripped.get("owner_name", 0))]),
        "exports": _count_table("export", stats.exports, stats.total),
        "checks": _table(("check", "severity", "thresholds"), [
            (md_code_span(cid), severity, _thresholds(values))
            for cid, severity, values in stats.checks]),
        "versions": _table(("tool", "version"), list(stats.tool_versions.items())),
        "metadata_files": _table(("file", "sha256", "bytes"), [
            (md_code_span(path), md_code_span(sha), size)
            for path, sha, size in stats.metadata_files]),
    }


def _or_note(value: Any, note: str) -> Raw:
    """The value, or an italic note when it is empty."""
    return value if value else Raw(f"*{md_inline(note)}*")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False, finalize=_finalize,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
        lstrip_blocks=True)
    env.filters["or_note"] = _or_note
    return env


def render_hf_card(meta: CardMeta, stats: DatasetStats, plots: dict[str, str], changelog: str = "") -> str:
    """README.md for `<out>/clean`: YAML header for the hub, then the card (with `changelog`, Markdown,
    as its Changelog section when given)."""
    missing = missing_fields(meta, stats)
    head = yaml.safe_dump(header(meta, stats, missing), sort_keys=False, allow_unicode=True,
                          width=1000)
    body = _environment().get_template("hf_card.md.j2").render(
        **context(meta, stats, plots, missing), changelog=Raw(changelog))
    body = re.sub(r"\n{3,}", "\n\n", body).strip("\n") + "\n"
    return f"---\n{head}---\n\n{body}"


# ---------------------------------------------------------------------------- plots


def render_plots(stats: DatasetStats) -> dict[str, bytes]:
    """PNG bytes by plot name (see PLOT_NAMES); plots with nothing to draw are left out."""
    from ccub.report.plots import accepted_by_category, caption_histogram, short_side_histogram

    thresholds = {k: v for _, _, values in stats.checks for k, v in values.items()}
    geometry = {k.partition(".")[2]: v for k, v in thresholds.items()
                if k.startswith("geometry.")}
    found = {
        "culture_category": accepted_by_category(stats.by_culture_category),
        "captions": caption_histogram(stats.caption_chars_list),
        "short_side": short_side_histogram(stats.short_side_list,
                                           geometry.get("min_short_side_error"),
                                           geometry.get("min_short_side_warning")),
    }
    return {name: png for name, png in found.items() if png}
