"""report.html: one self-contained page (inline CSS, embedded images, no scripts).

Everything shown comes from the report dict of `build_report`, plus each flagged record's
(and each duplicate group member's) thumbnail from the run's image facts. Captions, paths and
messages are user input: the template autoescapes all of it, and long values are clipped and
long lists capped so the page stays small.
"""

from __future__ import annotations

import base64
import posixpath
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from ccub.imaging.analyze import ImageFacts
from ccub.records import SEVERITIES
from ccub.report import config_toml, plots
from ccub.report.groups import (
    MAX_GROUP_CARDS,
    MAX_GROUP_LISTED,
    MAX_GROUP_THUMBNAILS,
    MAX_GROUPS,
    duplicate_groups,
)
from ccub.report.record import random_weights

TEMPLATE = "report.html.j2"
CAPTION_CHARS = 300  # caption shown with each flagged record
SHORT_CAPTION_CHARS = 120  # caption shown in the list of records without findings
TEXT_CHARS = 500  # any other value (messages, paths, hints)
MAX_THUMBNAILS = 400  # thumbnails embedded at most, worst records first (~5-10 kB each)
MAX_THUMBNAIL_BYTES = 64_000  # a thumbnail larger than this is not a thumbnail: skip it
STATUSES = ("rejected", "review", "accepted")
UNKNOWN = "(unknown contributor)"



def clip(value: Any, limit: int = TEXT_CHARS) -> str:
    """`value` as text of at most about `limit` characters (None -> "")."""
    if value is None:
        return ""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters in all)"


def clip_caption(record: dict[str, Any], limit: int) -> str:
    """The record's caption for display; report.json already bounds it, so count from there."""
    text = (record.get("caption") or "").strip()
    total = record.get("caption_chars") or len(text)
    return text if total <= limit else f"{text[:limit]}… ({total:,} characters in all)"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ccub", "report/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = clip
    env.filters["clip_caption"] = clip_caption
    return env


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _thumbnail(facts: ImageFacts | None) -> str | None:
    if facts is None or not facts.thumbnail:
        return None
    path = Path(facts.thumbnail)
    try:
        if not path.is_file() or path.stat().st_size > MAX_THUMBNAIL_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return _data_uri("image/jpeg", data) if data.startswith(b"\xff\xd8") else None


def _plots(report: dict[str, Any]) -> list[dict[str, Any]]:
    geometry = report["config"].get("geometry", {})
    severity_by_culture: dict[str, Counter[str]] = defaultdict(Counter)
    for issue in report["issues"]:
        severity_by_culture[issue["culture"] or "(no culture)"][issue["severity"]] += 1
    sides = [min(r["width"], r["height"]) for r in report["records"]
             if r.get("width") and r.get("height")]
    specs = [
        ("Accepted records per culture and category",
         "Stacked bars: accepted records per culture, one colour per category.",
         lambda: plots.accepted_by_category(report["summary"]["accepted_by_category"])),
        ("Image size",
         "Histogram of the shorter side of each image, with the error and warning thresholds; far outliers "
         "are counted in the last bin.",
         lambda: plots.short_side_histogram(sides, geometry.get("min_short_side_error"),
                                            geometry.get("min_short_side_warning"))),
        ("Caption length",
         "Histogram of caption lengths in characters, over every record with a caption; far outliers are "
         "counted in the last bin.",
         lambda: plots.caption_histogram([r["caption_chars"] for r in report["records"]
                                          if r.get("caption_chars")])),
        ("Findings per culture and severity",
         "Stacked bars: findings per culture, one colour per severity.",
         lambda: plots.findings_by_severity(severity_by_culture)),
    ]
    out = []
    for title, alt, make in specs:
        try:
            png = make()
            note = None if png else "Nothing to plot."
        except Exception as exc:  # a chart must never cost the whole report
            png, note = None, f"Chart not drawn ({type(exc).__name__}: {exc})."
        out.append({"title": title, "alt": alt, "uri": _data_uri("image/png", png) if png else None,
                    "note": note})
    return out


class _Owners:
    """Which contributor a file without a record belongs to, judged by its folder."""

    def __init__(self, records: list[dict[str, Any]]):
        self.by_dir: dict[str, set[str]] = defaultdict(set)
        for record in records:
            name = record["contributor"] or UNKNOWN
            for path in (record["image"], (record["origin"] or "").rsplit(":", 1)[0]):
                if path:
                    self.by_dir[posixpath.dirname(path)].add(name)

    def owner(self, file: str | None, fallback: str) -> str:
        if fallback != UNKNOWN or not file:
            return fallback
        folder = posixpath.dirname(file)
        while True:
            names = self.by_dir.get(folder)
            if names:
                return next(iter(names)) if len(names) == 1 else fallback
            if not folder:
                return fallback
            folder = posixpath.dirname(folder)


def _status_rank(record: dict[str, Any]) -> int:
    return STATUSES.index(record["status"]) if record["status"] in STATUSES else len(STATUSES)


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _contributors(report: dict[str, Any], facts: dict[str, ImageFacts]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(contributor blocks, dataset-level findings, thumbnails left out)."""
    issues = report["issues"]
    records = report["records"]
    keys = {r["key"] for r in records}
    blocks: dict[str, dict[str, Any]] = {}

    def block(name: str) -> dict[str, Any]:
        if name not in blocks:
            blocks[name] = {"name": name, "status": Counter(), "findings": 0, "flagged": [],
                            "clean": [], "files": defaultdict(list)}
        return blocks[name]

    for record in records:
        b = block(record["contributor"] or UNKNOWN)
        b["status"][record["status"]] += 1
        found = [issues[i] for i in record["issues"]]
        if found:
            b["findings"] += len(found)
            found.sort(key=lambda i: (_severity_rank(i["severity"]), i["check"]))
            b["flagged"].append({"record": record, "issues": found, "thumbnail": None})
        else:
            b["clean"].append(record)

    owners = _Owners(records)
    dataset = []
    for issue in issues:
        if issue["record"] in keys:
            continue
        file = issue["file"] or issue["record"]
        if not file:
            dataset.append(issue)
            continue
        b = block(owners.owner(file, issue["contributor"] or UNKNOWN))
        b["findings"] += 1
        b["files"][file].append(issue)

    # Thumbnails for the worst records first, up to MAX_THUMBNAILS in all.
    flagged = sorted((item for b in blocks.values() for item in b["flagged"]),
                     key=lambda item: (_status_rank(item["record"]),
                                       _severity_rank(item["issues"][0]["severity"])))
    embedded = omitted = 0
    for item in flagged:
        image = item["record"]["image"]
        if not image or image not in facts:
            continue
        if embedded >= MAX_THUMBNAILS:
            omitted += 1
            continue
        item["thumbnail"] = _thumbnail(facts[image])
        embedded += item["thumbnail"] is not None

    ordered = sorted(blocks.values(), key=lambda b: (b["name"] == UNKNOWN, b["name"].casefold(),
                                                     b["name"]))
    for number, b in enumerate(ordered, start=1):
        b["id"] = f"contributor-{number}"
        b["flagged"].sort(key=lambda item: (_status_rank(item["record"]), item["record"]["key"]))
        b["clean"].sort(key=lambda r: r["key"])
        b["files"] = sorted(b["files"].items())
    dataset.sort(key=lambda i: (_severity_rank(i["severity"]), i["check"]))
    return ordered, dataset, omitted


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    status = report["summary"]["status"]
    cultures = []
    totals: Counter[str] = Counter()
    for culture, counts in status.items():
        row = {s: counts.get(s, 0) for s in STATUSES}
        row["total"] = sum(counts.values())
        totals.update(row)
        cultures.append({"culture": culture, **row})
    severity_of = {i["check"]: i["severity"] for i in report["issues"]}
    checks = sorted(({"check": c, "severity": severity_of.get(c, ""), "count": n}
                     for c, n in report["summary"]["checks"].items()),
                    key=lambda r: (_severity_rank(r["severity"]), -r["count"], r["check"]))
    severity = sorted(report["summary"]["severity"].items(), key=lambda kv: _severity_rank(kv[0]))
    return {"cultures": cultures, "totals": {s: totals.get(s, 0) for s in (*STATUSES, "total")},
            "checks": checks, "severity": severity}


def _groups(report: dict[str, Any], facts: dict[str, ImageFacts]
            ) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """(groups to render with thumbnails, counts, member thumbnails left out)."""
    groups, counts = duplicate_groups(report, MAX_GROUPS)
    embedded = omitted = 0
    for group in groups:
        group["cards"] = group["members"][:MAX_GROUP_CARDS]
        group["listed"] = group["members"][MAX_GROUP_CARDS:MAX_GROUP_CARDS + MAX_GROUP_LISTED]
        group["unlisted"] = max(0, len(group["members"]) - MAX_GROUP_CARDS - MAX_GROUP_LISTED)
        for m in group["cards"]:
            m["thumbnail"] = None
            image = m.get("image")
            if m.get("status") == "already accepted" or not image or image not in facts:
                continue
            if embedded >= MAX_GROUP_THUMBNAILS:
                omitted += 1
                continue
            m["thumbnail"] = _thumbnail(facts[image])
            embedded += m["thumbnail"] is not None
    return groups, counts, omitted


def render_html(report: dict[str, Any], facts: dict[str, ImageFacts]) -> str:
    """The whole report as one HTML page."""
    contributors, dataset, thumbnails_omitted = _contributors(report, facts)
    groups, group_counts, group_thumbnails_omitted = _groups(report, facts)
    group_of = {m.get("key"): g for g in groups for m in g["members"] if m.get("record")}
    notes = report.get("notes") or []
    config_text = config_toml(report["config"])
    return _environment().get_template(TEMPLATE).render(
        report=report,
        notes=notes,
        random_weights=random_weights(notes),
        groups=groups,
        group_counts=group_counts,
        group_thumbnails_omitted=group_thumbnails_omitted,
        group_of=group_of,
        max_groups=MAX_GROUPS,
        max_group_cards=MAX_GROUP_CARDS,
        max_group_thumbnails=MAX_GROUP_THUMBNAILS,
        summary=_summary(report),
        plots=_plots(report),
        contributors=contributors,
        dataset_notes=dataset,
        thumbnails_omitted=thumbnails_omitted,
        max_thumbnails=MAX_THUMBNAILS,
        config_text=config_text,
        caption_chars=CAPTION_CHARS,
        short_caption_chars=SHORT_CAPTION_CHARS,
        statuses=STATUSES,
    )
