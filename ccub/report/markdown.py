"""report.md: the summary and each contributor's list, for pasting into an e-mail or issue."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ccub.report import config_toml


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text if len(text) <= 200 else text[:200] + "…"
    # Escape what Markdown or an HTML-rendering viewer would interpret.
    for ch in ("\\", "|", "<", ">", "`", "*", "_", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = ["# ccub validate report", "",
             f"ccub {report['ccub_version']}, {report['created_at']}, input `{_cell(report['input']['root'])}` "
             f"({report['input']['records']} records; layouts: "
             + ", ".join(f"{k} {v}" for k, v in report["input"]["layouts"].items()) + ")", "",
             "## Outcome per culture", ""]
    lines += _table(["culture", "accepted", "review", "rejected"],
                    [[c, n.get("accepted", 0), n.get("review", 0), n.get("rejected", 0)]
                     for c, n in s["status"].items()])
    lines += ["## Findings per check", ""]
    severity = {i["check"]: i["severity"] for i in report["issues"]}
    lines += _table(["check", "severity", "count"],
                    [[c, severity[c], n] for c, n in s["checks"].items()])
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
    lines += ["## Configuration", "", "Every threshold and vocabulary in force (usable as a "
              "`ccub.toml`):", "", "```toml", config_toml(report["config"]).strip(), "```", ""]
    return "\n".join(lines)
