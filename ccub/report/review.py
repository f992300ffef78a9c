"""review.html: the records held for review as one self-contained page a steward opens from disk.

One card per held record (its thumbnail, caption, findings, and its duplicate group side by side
where it has one) with accept / reject buttons and a reason; the page saves the decisions as
`decisions.jsonl` or `decisions.csv`, rows of `ccub.steward.Decision`, which
`ccub validate --decisions FILE` or `ccub review DATA --import FILE` add to the steward folder.

The page loads nothing and sends nothing (a Content-Security-Policy forbids every request but
inline images). Captions, keys, contributor ids and messages are untrusted: they travel as one
JSON blob in which nothing can close the script element, and the page only ever puts them in as
text. The element ids that tests rely on are listed at the top of `templates/review.html`.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

from ccub.imaging.analyze import ImageFacts
from ccub.report.groups import MAX_GROUP_CARDS, duplicate_groups
from ccub.report.html import CAPTION_CHARS, TEXT_CHARS, _thumbnail, clip, clip_caption
from ccub.steward.queue import short_id
from ccub.steward.records import MAX_TEXT

REVIEW_FILE = "review.html"
MAX_CARDS = 5000  # held records listed; beyond this the page says how many more there are
MAX_THUMBNAILS = 600  # distinct thumbnails embedded (~5-10 kB each), held records first
MAX_RELATIONS = 12  # relations listed per duplicate group
_PLACEHOLDER = re.compile(r"@@(\w+)@@")
# `<`, `>` and `&` could close the script element or open a comment in it; U+2028/9 end a line in
# older JS parsers; "://" is broken up so the file holds nothing that looks like a resource to load.
_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                 ("\u2029", "\\u2029"), ("://", ":\\/\\/"))


class _Thumbnails:
    """Thumbnails by image, each embedded once however many cards show it."""

    def __init__(self, facts: dict[str, ImageFacts]):
        self.facts, self.uris, self.refs, self.omitted = facts, {}, {}, 0

    def ref(self, image: str | None) -> str | None:
        if not image or image not in self.facts:
            return None
        if image in self.refs:
            return self.refs[image]
        if len(self.uris) >= MAX_THUMBNAILS:
            self.omitted += 1
            return None
        uri = _thumbnail(self.facts[image])
        if uri is None:
            return None
        ref = f"t{len(self.uris) + 1}"
        self.uris[ref], self.refs[image] = uri, ref
        return ref


def _group(group: dict[str, Any], key: str, thumbnails: _Thumbnails) -> dict[str, Any]:
    members = group["members"][:MAX_GROUP_CARDS]
    # The held record first, then the others as the report orders them.
    members.sort(key=lambda m: m.get("key") != key)
    return {
        "members": [{"key": clip(m.get("key")), "culture": clip(m.get("culture"), 100),
                     "category": clip(m.get("category"), 100), "role": clip(m.get("status"), 40),
                     "outcome": clip(m.get("outcome"), 40), "self": m.get("key") == key,
                     "caption": clip_caption(m["record"], CAPTION_CHARS) if m.get("record") else "",
                     "thumbnail": None if m.get("status") == "already accepted" else thumbnails.ref(m.get("image"))}
                    for m in members],
        "more": max(0, len(group["members"]) - len(members)),
        "relations": [f"{clip(e['a'], 200)} / {clip(e['b'], 200)}: {e['relation']}"
                      for e in group["edges"][:MAX_RELATIONS]],
    }


def review_data(report: dict[str, Any], facts: dict[str, ImageFacts]) -> dict[str, Any]:
    """What the page shows, from a report.json document and the run's image facts."""
    issues = report["issues"]
    held = sorted((r for r in report["records"] if r["status"] == "review"), key=lambda r: r["key"])
    groups, _ = duplicate_groups(report)
    group_of = {m.get("key"): g for g in groups for m in g["members"] if m.get("record")}
    thumbnails = _Thumbnails(facts)
    for record in held[:MAX_CARDS]:  # held records' own thumbnails before any group member's
        thumbnails.ref(record["image"])
    items = []
    for record in held[:MAX_CARDS]:
        found = sorted((issues[i] for i in record["issues"]),
                       key=lambda i: (i["severity"] != "review", i["severity"], i["check"]))
        group = group_of.get(record["key"])
        items.append({
            "id": short_id(record["key"]), "key": clip(record["key"]),
            "contributor": clip(record["contributor"], 200), "culture": clip(record["culture"], 100),
            "category": clip(record["category"], 100), "image": clip(record["image"]),
            "caption": clip_caption(record, CAPTION_CHARS), "thumbnail": thumbnails.ref(record["image"]),
            "image_sha256": record.get("image_sha256") or "", "caption_sha256": record.get("caption_sha256"),
            "findings": [{"check": i["check"], "severity": i["severity"], "message": clip(i["message"])}
                         for i in found],
            "group": _group(group, record["key"], thumbnails) if group else None,
        })
    return {
        "title": f"ccub review: {report['output']['dir']}",
        "created_at": report["created_at"],
        "dataset": str(report["output"]["dir"]),
        "max_text": MAX_TEXT,
        "items": items,
        "omitted": max(0, len(held) - MAX_CARDS),
        "thumbnails_omitted": thumbnails.omitted,
        "images": thumbnails.uris,
    }


def _html_text(text: str) -> str:
    return html.escape(text).replace("://", ":&#47;&#47;")


def _script_json(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES:
        text = text.replace(char, escape)
    return text


def render_review(report: dict[str, Any], facts: dict[str, ImageFacts]) -> str:
    """The review page of a report.json document."""
    data = review_data(report, facts)
    values = {"title": _html_text(clip(data["title"], TEXT_CHARS)), "data": _script_json(data)}
    template = resources.files("ccub.report").joinpath("templates", "review.html").read_text("utf-8")
    # One pass, so that a substituted value is never scanned for placeholders itself.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
