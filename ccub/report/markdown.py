"""report.md: the summary, duplicate groups and each contributor's list, for pasting into an
e-mail or issue."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from ccub.escape import markdown_text
from ccub.report import config_toml

MAX_GROUPS = 300  # duplicate groups listed
MAX_GROUP_MEMBERS = 50  # members listed per group
MAX_GROUP_EDGES = 40  # relations listed per group (the strongest; the HTML report shows as many)


def _cell(value: Any) -> str:
    return markdown_text(value, 200)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _notes(report: dict[str, Any]) -> list[str]:
    notes = report.get("notes") or []
    if not notes:
        return []
    lines = ["## Notes", ""]
    for note in notes:
        warning = "**WARNING, not results:** " if note["kind"] == "danger" else ""
        lines.append(f"- {warning}{_cell(note['text'])}")
    return lines + [""]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _member(m: dict[str, Any] | None, fallback: Any) -> str:
    return f"#{m['n']} {m.get('image') or m.get('key')}" if m else str(fallback)


def _groups(report: dict[str, Any]) -> list[str]:
    from ccub.report.groups import duplicate_groups

    groups, counts = duplicate_groups(report, MAX_GROUPS)
    lines = ["## Duplicate groups", ""]
    if not groups:
        return lines + ["No duplicates, near-duplicates or look-alikes found.", ""]
    flagged = [_plural(counts[flag], name) for flag, name in (
        ("label_conflict", "label conflict"), ("split_leak", "split leak"),
        ("category_conflict", "category conflict")) if counts[flag]]
    lines += [_plural(counts["total"], "group") + " of related images"
              + (f" ({', '.join(flagged)})" if flagged else "") + ". Bands: duplicate (same "
              "bytes, same pixels or a small pHash distance: the best copy is kept, the others "
              "dropped), review (a larger pHash distance: a person decides), semantic (CLIP "
              "look-alikes: for review, never dropped).", ""]
    if counts["omitted"]:
        lines += [f"The first {len(groups)} are listed; the other {counts['omitted']} are in "
                  "report.json.", ""]
    for g in groups:
        flags = [name for flag, name in (("label_conflict", "LABEL CONFLICT"),
                                         ("split_leak", "SPLIT LEAK"),
                                         ("category_conflict", "category conflict"))
                 if g["flags"][flag]]
        lines += [f"### Group {g['number']}: {_plural(len(g['members']), 'image')}, "
                  + ", ".join(g["bands"] + flags), ""]
        rows = []
        for m in g["members"][:MAX_GROUP_MEMBERS]:
            record = ""
            if m["show_outcome"]:
                record = m["outcome"] + (f" ({', '.join(m['reasons'])})" if m["reasons"] else "")
            rows.append([m["n"], m.get("image") or m.get("key"), m.get("culture"),
                         m.get("category"), m.get("split"), m.get("status"), record])
        lines += _table(["#", "file", "culture", "category", "split", "status", "record"], rows)
        if len(g["members"]) > MAX_GROUP_MEMBERS:
            lines += [f"… and {_plural(len(g['members']) - MAX_GROUP_MEMBERS, 'more member')}"
                      " (report.json).", ""]
        edges = g["edges"][:MAX_GROUP_EDGES]
        lines += _table(["image A", "image B", "relation", "band"],
                        [[_member(e["a_member"], e["a"]), _member(e["b_member"], e["b"]),
                          e["relation"], e["band"]] for e in edges])
        if g["edges_total"] > len(edges):
            lines += [f"The {len(edges)} strongest of {g['edges_total']} relations are listed.",
                      ""]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = ["# ccub validate report", "",
             f"ccub {report['ccub_version']}, {report['created_at']}, input `{_cell(report['input']['root'])}` "
             f"({report['input']['records']} records; layouts: "
             + ", ".join(f"{k} {v}" for k, v in report["input"]["layouts"].items()) + ")", "",
             *_notes(report),
             "## Outcome per culture", ""]
    lines += _table(["culture", "accepted", "review", "rejected"],
                    [[c, n.get("accepted", 0), n.get("review", 0), n.get("rejected", 0)]
                     for c, n in s["status"].items()])
    lines += ["## Findings per check", ""]
    severity = {i["check"]: i["severity"] for i in report["issues"]}
    lines += _table(["check", "severity", "count"],
                    [[c, severity[c], n] for c, n in s["checks"].items()])
    lines += _groups(report)
    lines += ["## Findings by contributor", ""]
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for issue in report["issues"]:
        grouped[issue["contributor"]].append(issue)
    for contributor, issues in sorted(grouped.items()):
        lines += [f"### {_cell(contributor)} ({len(issues)})", ""]
        lines += _table(["file", "line", "field", "severity", "check", "problem", "fix"],
                        [[i["file"] or i["record"], i["line"], i["field"], i["severity"],
                          i["check"], i["message"] + (f" (fixed: {i['fixed']})" if i["fixed"] else ""),
                          i["fix"]] for i in issues])
    toml = config_toml(report["config"]).strip()
    # A fence longer than any backtick run inside, so no configured text can close it.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", toml)), default=0))
    lines += ["## Configuration", "", "Every threshold and vocabulary in force (usable as a "
              "`ccub.toml`):", "", fence + "toml", toml, fence, ""]
    return "\n".join(lines)
