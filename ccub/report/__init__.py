"""Reports of a validate run: one data model (`build_report`), several renderings."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccub import __version__
from ccub.escape import csv_text
from ccub.pipeline import Result
from ccub.report.record import REPORT_FILE, ValidationReport
from ccub.steward.records import caption_digest

ISSUE_COLUMNS = ("contributor", "culture", "file", "record", "line", "field", "check",
                 "severity", "message", "fixed", "fix")


REPORT_CAPTION_CHARS = 1000


def _clip(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def _issue_row(issue) -> dict[str, Any]:
    f = issue.finding
    return {"contributor": issue.contributor, "culture": issue.culture, "file": f.file,
            "record": f.record, "line": f.line, "field": f.field, "check": f.check,
            "severity": issue.severity, "message": f.message, "fixed": f.fixed,
            "fix": issue.fix}


def build_report(result: Result) -> dict[str, Any]:
    """Everything a reader of the report needs, as plain JSON-able data (report.json's document)."""
    return validation_report(result).as_dict()


def validation_report(result: Result) -> ValidationReport:
    by_culture: dict[str, Counter[str]] = defaultdict(Counter)
    cells: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in result.outcomes:
        culture = outcome.record.culture or "(none)"
        by_culture[culture][outcome.status] += 1
        if outcome.output:
            cells[culture][outcome.record.category or "(none)"] += 1
    issues = [_issue_row(i) for i in result.issues]
    by_record: dict[str, list[int]] = defaultdict(list)
    for index, issue in enumerate(issues):
        if issue["record"]:
            by_record[issue["record"]].append(index)
    records = []
    for outcome in result.outcomes:
        r = outcome.record
        facts = result.facts.get(r.image or "")
        # What a review decision on a held record is keyed by (ccub.steward.Decision).
        held = outcome.status == "review" and facts is not None and bool(facts.sha256)
        records.append({
            "key": r.key, "origin": r.origin, "image": r.image, "url": r.url,
            "status": outcome.status, "output": outcome.output,
            # Bounded: a hostile megabyte caption must not make the report a megabyte.
            "caption": _clip(r.caption, REPORT_CAPTION_CHARS),
            "caption_chars": len(r.caption or ""),
            "culture": r.culture, "category": r.category, "license": r.license,
            "creator": r.creator, "contributor": r.contributor, "consent": r.consent,
            "language": r.language, "split": r.split, "sources": r.sources,
            "width": facts.width if facts else None, "height": facts.height if facts else None,
            "export": facts.export if facts else None, "issues": by_record.get(r.key, []),
            "image_sha256": facts.sha256 if held else None,
            "caption_sha256": caption_digest(r.caption) if held else None,
        })
    exports = Counter(o.output and result.facts[o.record.image].export
                      for o in result.outcomes if o.output)
    return ValidationReport(**{
        "ccub_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": {"root": str(result.options.root), "layouts": result.read.layouts,
                  "records": len(result.outcomes), "images_analysed": len(result.facts)},
        "output": {"dir": str(result.options.out), "include_review": result.options.include_review,
                   "metadata_sha256": result.metadata_sha256},
        "config": {"source": result.cfg.source, **result.cfg.to_dict()},
        "summary": {
            "status": {k: dict(v) for k, v in sorted(by_culture.items())},
            "accepted_by_category": {k: dict(sorted(v.items())) for k, v in sorted(cells.items())},
            "severity": dict(Counter(i["severity"] for i in issues)),
            "checks": dict(Counter(i["check"] for i in issues).most_common()),
            "exports": dict(exports),
            "exit_code": result.exit_code,
        },
        "notes": [{"text": n.text, "kind": n.kind} for n in result.notes],
        "duplicate_groups": result.groups,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "records": records,
        "issues": issues,
    })


def config_toml(config: dict[str, Any]) -> str:
    """The effective configuration as a ccub.toml, headed by where it came from."""
    import tomli_w

    body = {k: v for k, v in config.items() if k != "source"}
    return f"# Effective configuration (from {config.get('source')}).\n\n" + tomli_w.dumps(body)


def issues_csv(report: dict[str, Any]) -> str:
    issues = sorted(report["issues"], key=lambda i: (i["contributor"] or "", i["file"] or ""))
    return csv_text(issues, list(ISSUE_COLUMNS))


def write_reports(result: Result, folder: Path) -> dict[str, Any]:
    from ccub.report.html import render_html
    from ccub.report.markdown import render_markdown
    from ccub.report.review import REVIEW_FILE, render_review

    record = validation_report(result)
    record.write(folder / REPORT_FILE)
    report = record.as_dict()
    (folder / "issues.csv").write_text(issues_csv(report), encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "report.html").write_text(render_html(report, result.facts), encoding="utf-8")
    (folder / REVIEW_FILE).write_text(render_review(report, result.facts), encoding="utf-8")
    return report
