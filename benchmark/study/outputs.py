"""The analysis' outputs: rankings.csv, win_rates.csv, agreement.csv, proxies.csv, conflicts.csv,
analysis.md, report.html.

Every row carries the culture, the study id and the participant group, so the CSVs of several
studies (one per culture) concatenate into one table. A smoke study (random-weight models) or
simulated responses are said in every file: such numbers describe nothing real. Participants'
ids and run names are untrusted text: CSV cells are formula-escaped, Markdown cells escaped,
HTML autoescaped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmark.report import error_bar, fmt, md_table, png_base64
from benchmark.study.analyze import Analysis
from benchmark.study.responses import RESUBMISSION
from ccub.escape import csv_text, markdown_text
from ccub.files import atomic_write_bytes, atomic_write_text

SMOKE = ("TEST STUDY: the images come from models with RANDOM WEIGHTS; these rankings mean nothing and must not "
         "be reported.")
SIMULATED = ("SIMULATED RESPONSES: made by `ccub study simulate`, not by people; use them to check the analysis, "
             "never as results.")
READING = ("Strengths are Bradley-Terry log-strengths fitted to every pair of every ranking (mean 0; a difference "
           "of 1 means odds of e to 1), with percentile-bootstrap intervals over participants. Kendall's W is "
           "per item, averaged; its chance level is what random rankings would give. Tau is Kendall's tau-b "
           "between a benchmark proxy and people's ranking of the same item's images, averaged over items, with "
           "an interval from resampling participants and prompts; positive means the proxy prefers what people "
           "prefer.")


def banners(analysis: Analysis) -> list[str]:
    return [text for flag, text in ((analysis.smoke_run, SMOKE), (analysis.simulated, SIMULATED)) if flag]


def _common(a: Analysis) -> dict[str, Any]:
    return {"culture": a.culture, "study_id": a.study_id, "group": a.group, "smoke_run": a.smoke_run,
            "simulated": a.simulated}


def table_rows(a: Analysis) -> dict[str, list[dict[str, Any]]]:
    common = _common(a)
    return {
        "rankings.csv": [{**common, "question": s.question, "model": s.model, "rank": s.rank, "theta": s.theta,
                          "ci_low": s.low, "ci_high": s.high, "reference": a.reference,
                          "p_beats_reference": s.p_beats_reference, "p_low": s.p_low, "p_high": s.p_high,
                          "mean_rank": s.mean_rank, "rankings": s.rankings, "participants": a.participants}
                         for s in a.strengths],
        "win_rates.csv": [{**common, "question": w.question, "model": w.model, "opponent": w.opponent,
                           "wins": w.wins, "comparisons": w.comparisons, "win_rate": w.rate} for w in a.wins],
        "agreement.csv": [{**common, "question": g.question, "kendall_w": g.kendall_w, "chance": g.chance,
                           "items": g.items, "mean_raters": g.mean_raters} for g in a.agreement],
        "proxies.csv": [{**common, "question": c.question, "metric": c.metric, "tau": c.tau, "ci_low": c.low,
                         "ci_high": c.high, "items": c.items, "prompts": c.prompts} for c in a.correlations],
        "conflicts.csv": [{**common, **dict(zip(CONFLICT_COLUMNS, row, strict=True))} for row in conflict_rows(a)],
    }


def write_outputs(analyses: list[Analysis], out: Path) -> list[Path]:
    """One set of files for one or several studies (one per culture): CSV rows concatenated, a
    section per study in the Markdown and HTML."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in table_rows(analyses[0]):
        rows = [row for a in analyses for row in table_rows(a)[name]]
        columns = list(rows[0]) if rows else list(_common(analyses[0]))
        atomic_write_text(out / name, csv_text(rows, columns))
        files.append(out / name)
    atomic_write_text(out / "analysis.md", "\n---\n\n".join(markdown(a) for a in analyses))
    atomic_write_bytes(out / "report.html", html(analyses).encode("utf-8"))
    return [*files, out / "analysis.md", out / "report.html"]


# --------------------------------------------------------------------------- tables shared by every format


def interval(value: float, low: float, high: float, digits: int = 2) -> str:
    return f"{fmt(value, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


STRENGTH_HEADER = ["question", "rank", "model", "strength [95% CI]", "P(beats {ref}) [95% CI]", "mean rank",
                   "rankings"]


def strength_rows(a: Analysis) -> list[list[str]]:
    rows = []
    for q in a.questions:
        for s in sorted((s for s in a.strengths if s.question == q), key=lambda s: s.rank):
            rows.append([q, str(s.rank), s.model, interval(s.theta, s.low, s.high),
                         "-" if s.model == a.reference else interval(s.p_beats_reference, s.p_low, s.p_high),
                         fmt(s.mean_rank, 2), str(s.rankings)])
    return rows


AGREEMENT_HEADER = ["question", "Kendall's W", "chance", "items (2+ raters)", "raters per item"]


def agreement_rows(a: Analysis) -> list[list[str]]:
    return [[g.question, fmt(g.kendall_w, 2), fmt(g.chance, 2), str(g.items), fmt(g.mean_raters, 1)]
            for g in a.agreement]


def proxy_matrix(a: Analysis, intervals: bool = True) -> tuple[list[str], list[list[str]]]:
    """Rows: metrics; columns: questions; cells: tau [CI] (n items), or tau with * when the CI excludes 0."""
    metrics = list(dict.fromkeys(c.metric for c in a.correlations))
    cells = {(c.metric, c.question): c for c in a.correlations}
    rows = []
    for metric in metrics:
        row = [metric]
        for q in a.questions:
            c = cells.get((metric, q))
            if c is None or math.isnan(c.tau):
                row.append("-")
            elif intervals:
                row.append(f"{interval(c.tau, c.low, c.high)} (n={c.items})")
            else:
                row.append(fmt(c.tau, 2) + ("*" if c.low > 0 or c.high < 0 else ""))
        rows.append(row)
    return ["proxy", *a.questions], rows


def win_matrix(a: Analysis, question: str) -> tuple[list[str], list[list[str]]]:
    rates = {(w.model, w.opponent): w for w in a.wins if w.question == question}
    rows = [[m, *("" if m == o else fmt(rates[(m, o)].rate, 2) for o in a.models)] for m in a.models]
    return ["row beats column", *a.models], rows


CONFLICT_COLUMNS = ["participant", "file", "finished", "counted", "resubmission"]


def conflict_rows(a: Analysis) -> list[list[str]]:
    """One row per file of each participant whose files answer the same items differently."""
    return [[c.participant, who.source, who.finished.isoformat() if who.finished else "-", counted, c.policy]
            for c in a.conflicts
            for group, counted in ((c.kept, "yes"), (c.set_aside, "no")) for who in group]


def resubmission_line(a: Analysis) -> str:
    who = f"{len(a.conflicts)} participant(s)" if a.conflicts else "No participant"
    return (f"[study] resubmission = {a.resubmission}: when a participant's files answer the same item "
            f"differently, {RESUBMISSION[a.resubmission]}. {who} sent such files.")


def participants_line(a: Analysis) -> str:
    who = "all participants" if a.group == "all" else "participants who identify with the culture"
    ids = a.identifies
    return (f"{a.participants} participants ({who}); identify with {a.culture_name}: {ids['yes']} yes, "
            f"{ids['no']} no, {ids['unsaid']} unsaid.")


# --------------------------------------------------------------------------- Markdown


def markdown(a: Analysis) -> str:
    lines = [f"# ccub study {markdown_text(a.study_id)}: {markdown_text(a.culture_name)}", ""]
    lines += [f"> **{b}**\n" for b in banners(a)]
    lines += [markdown_text(participants_line(a)), "", READING, ""]
    header = [h.format(ref=a.reference) for h in STRENGTH_HEADER]
    lines += ["## Rankings", "", *md_table(header, strength_rows(a)), ""]
    lines += ["## Agreement between participants", "", *md_table(AGREEMENT_HEADER, agreement_rows(a)), ""]
    for q in a.questions:
        if any(w.question == q for w in a.wins):
            lines += [f"## Win rates: {q}", "", *md_table(*win_matrix(a, q)), ""]
    if a.correlations:
        lines += ["## Benchmark proxies against people (Kendall's tau, 95% CI)", "", *md_table(*proxy_matrix(a)), ""]
    lines += ["## Resubmissions", "", markdown_text(resubmission_line(a)), ""]
    if a.conflicts:
        lines += [*md_table(CONFLICT_COLUMNS, conflict_rows(a)), ""]
    lines += [*(f"- {markdown_text(n)}" for n in a.notes), "", markdown_text(settings_line(a)), ""]
    return "\n".join(lines)


def settings_line(a: Analysis) -> str:
    s = a.settings
    return (f"Study {a.study_id}, culture {a.culture}, models {', '.join(a.models)}; {s['bootstrap']} bootstrap "
            f"resamples, confidence {s['confidence']}, Bradley-Terry prior {s['prior']} pseudo-wins, seed {s['seed']}; "
            f"resubmissions: {a.resubmission}.")


# --------------------------------------------------------------------------- HTML


def strengths_plot(a: Analysis) -> str | None:
    if not a.strengths:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    questions = [q for q in a.questions if any(s.question == q for s in a.strengths)]
    fig, axes = plt.subplots(1, len(questions), figsize=(3.2 * len(questions), 0.5 + 0.4 * len(a.models)),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, q in zip(axes[0], questions, strict=True):
        rows = sorted((s for s in a.strengths if s.question == q), key=lambda s: a.models.index(s.model))
        for y, s in enumerate(rows):
            ax.errorbar(s.theta, y, xerr=error_bar(s.theta, s.low, s.high), fmt="o", color="#1f5fa8")
        ax.axvline(0, color="#999", lw=1)
        ax.set_yticks(range(len(rows)), [s.model for s in rows])
        ax.set_title(q, fontsize=9)
        ax.set_xlabel("Bradley-Terry log-strength", fontsize=8)
        ax.tick_params(labelsize=8)
    data = png_base64(fig)
    plt.close(fig)
    return data


def proxies_plot(a: Analysis) -> str | None:
    shown = [c for c in a.correlations if not math.isnan(c.tau)]
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = list(dict.fromkeys(c.metric for c in shown))
    grid = np.full((len(metrics), len(a.questions)), np.nan)
    for c in shown:
        grid[metrics.index(c.metric), a.questions.index(c.question)] = c.tau
    fig, ax = plt.subplots(figsize=(1.6 * len(a.questions) + 2.5, 0.35 * len(metrics) + 1.2), layout="constrained")
    image = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(a.questions)), a.questions, fontsize=8)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=8)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="mean within-item Kendall's tau")
    data = png_base64(fig)
    plt.close(fig)
    return data


TEMPLATE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ccub study: {{ title }}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{max-width:100%}.banner{background:#fff3cd;
border:2px solid #d39e00;padding:1em;font-weight:bold}footer{color:#555;font-size:12px;margin-top:1em}
section{border-top:3px solid #1f5fa8;margin-top:2em}</style></head><body><h1>ccub study: {{ title }}</h1>
<p>{{ reading }}</p>
{% for s in sections %}<section><h2>{{ s.a.culture_name }} (study {{ s.a.study_id }})</h2>
{% for b in s.banners %}<p class="banner">{{ b }}</p>{% endfor %}<p>{{ s.participants }}</p>
{% for title, header, rows in s.tables %}<h3>{{ title }}</h3><table><tr>{% for h in header %}<th>{{ h }}</th>
{% endfor %}</tr>{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if title == "Rankings" and s.strengths %}<p><img alt="Bradley-Terry strengths with intervals, per question"
src="data:image/png;base64,{{ s.strengths }}"></p>{% endif %}
{% if title.startswith("Benchmark proxies") and s.proxies %}<p><img alt="Kendall's tau of each proxy and question"
src="data:image/png;base64,{{ s.proxies }}"></p>{% endif %}{% endfor %}
<p>{{ s.resubmissions }}</p>
{% if s.a.notes %}<h3>Notes</h3><ul>{% for n in s.a.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<footer>{{ s.settings }}</footer></section>{% endfor %}</body></html>"""


def _section(a: Analysis) -> dict[str, Any]:
    tables = [("Rankings", [h.format(ref=a.reference) for h in STRENGTH_HEADER], strength_rows(a)),
              ("Agreement between participants", AGREEMENT_HEADER, agreement_rows(a))]
    tables += [(f"Win rates: {q}", *win_matrix(a, q)) for q in a.questions if any(w.question == q for w in a.wins)]
    if a.correlations:
        tables.append(("Benchmark proxies against people (Kendall's tau, 95% CI)", *proxy_matrix(a)))
    if a.conflicts:
        tables.append(("Resubmissions", CONFLICT_COLUMNS, conflict_rows(a)))
    return {"a": a, "banners": banners(a), "participants": participants_line(a), "tables": tables,
            "resubmissions": resubmission_line(a),
            "strengths": strengths_plot(a), "proxies": proxies_plot(a), "settings": settings_line(a)}


def html(analyses: list[Analysis]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(
        title=", ".join(a.culture_name for a in analyses), reading=READING, sections=[_section(a) for a in analyses])
