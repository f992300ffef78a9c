"""The benchmark's outputs: results.csv, summary.csv, summary.md and a self-contained report.html.

Every output says when any model or the CLIP scorer has random weights (a smoke run): the
numbers then mean nothing, and the files say so in their first lines (CSV: a column).

Prompts, run names and paths are text from users: CSV cells go through `ccub.escape.csv_text`
(no cell runs as a spreadsheet formula), Markdown through `markdown_text` (no cell renders as
HTML or a link), HTML through Jinja's autoescape; images are decoded by `open_image` only.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark.evaluate import METRICS
from benchmark.metric_rows import RESULTS_COLUMNS, write_rows
from benchmark.record import BENCHMARK_FILE, BenchmarkRecord
from ccub.escape import csv_text, markdown_text
from ccub.files import atomic_write_bytes, atomic_write_text

SMOKE = ("SMOKE RUN: made with RANDOM WEIGHTS (tiny models or a random CLIP); these numbers mean nothing "
         "and must not be reported.")
PROXY = ("All scores are CLIP-based proxies without published human validation: read them side by side, "
         "and check them against people's rankings.")


def write_outputs(output: Path, scores, comparisons: list, context: dict[str, Any]) -> list[Path]:
    from benchmark.stats import to_rows

    output.mkdir(parents=True, exist_ok=True)
    smoke = context["smoke_run"]
    files = [output / "results.csv", output / "summary.csv", output / "summary.md", output / "report.html",
             output / BENCHMARK_FILE]
    prompt_text = {p.id: p.text for p in context["prompts"]}
    write_rows(files[0], [replace(r, prompt_text=prompt_text[r.prompt], random_weights=smoke) for r in scores.rows],
               RESULTS_COLUMNS)
    summary = [dict(r, level=METRICS[r["metric"]].level, random_weights=smoke) for r in to_rows(comparisons)]
    summary += _set_rows(scores.sets, smoke, context.get("baseline") or context["models"][0].name)
    atomic_write_text(files[1], csv_text(summary, ["level", *to_rows_header(), "random_weights"]))
    atomic_write_text(files[2], markdown(comparisons, scores, context))
    atomic_write_bytes(files[3], html(comparisons, scores, context).encode("utf-8"))
    benchmark_record(context).write(files[4])
    return files


def benchmark_record(context: dict[str, Any]) -> BenchmarkRecord:
    """What was generated and how: lets `ccub study make` find every image the metrics scored."""
    from dataclasses import asdict, is_dataclass

    settings = context["settings"]
    return BenchmarkRecord(
        culture=context["culture"], clip=context["clip"], clip_random_weights=context["clip_random_weights"],
        smoke_run=context["smoke_run"], suite=context["suite"],
        settings=asdict(settings) if is_dataclass(settings) else dict(settings),
        seeds=list(context["seeds"]),
        models=[m.record() if hasattr(m, "record") else model_entry(m) for m in context["models"]],
        baseline=context.get("baseline") or context["models"][0].name,
        prompts=[asdict(p) for p in context["prompts"]],
        images=[{"model": model, "prompt": pid, "seed": seed, "path": str(Path(path).resolve())}
                for (model, pid, seed), path in context["images"].items()],
        reference_sources=list(context.get("reference_sources", [])),
        training_sources=list(context.get("training_sources", [])))


def model_entry(m) -> dict[str, Any]:
    """A model in benchmark.json: what it is (run, base model, base + LoRA file with its digest and scale) and
    whether any part has random weights."""
    from benchmark.references import model_kind

    return {"name": m.name, "key": m.key(), "kind": m.kind if m.lora is not None else "base", "base": m.base,
            "lora": str(m.lora) if m.lora else None, "lora_sha256": m.lora_sha256(), "lora_format":
            m.lora_format or ("peft" if m.lora is not None else None), "lora_scale": m.scale,
            "describe": model_kind(m), "random_weights": m.random_weights, "release": m.release,
            "release_digest": m.release_digest}


def models_lines(context: dict[str, Any]) -> list[str]:
    """One line per model saying what it is; the first is the baseline the others are compared with."""
    from benchmark.references import model_kind

    baseline = context.get("baseline") or context["models"][0].name
    return [f"{m.name}: {m.describe() if hasattr(m, 'describe') else model_kind(m)}"
            + (" (baseline)" if m.name == baseline else "") for m in context["models"]]


def to_rows_header() -> list[str]:
    return ["metric", "model", "baseline", "n_prompts", "n_pairs", "base_mean", "model_mean", "difference",
            "ci_low", "ci_high", "confidence", "interval_method", "pairing", "win_rate", "p_value", "p_adjusted",
            "higher_is_better"]


def _set_rows(sets: dict[str, dict[str, float]], smoke: bool, baseline: str = "base") -> list[dict]:
    rows = []
    for metric, per_model in sets.items():
        base = per_model.get(baseline, math.nan)
        for model, value in per_model.items():
            if model != baseline:
                rows.append({"level": "set", "metric": metric, "model": model, "baseline": baseline,
                             "base_mean": base, "model_mean": value, "difference": value - base,
                             "higher_is_better": METRICS[metric].higher_is_better, "random_weights": smoke})
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table whose every cell is text: run names, prompts and participants' ids included."""
    return ["| " + " | ".join(map(markdown_text, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(markdown_text, row)) + " |" for row in rows)]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Below this, a printed number is floating-point noise (mean differences of equal values come out as
# 1e-16); every metric ccub reports resolves far coarser steps. The CSV files keep the exact value.
ROUNDING_NOISE = 1e-12


def significant(value: Any, digits: int = 2, signed: bool = False) -> str:
    """`value` to `digits` significant digits: -0.00044, +0.12, 31 -- never rounded to a run of
    zeros, whatever its size. A value of `digits` or more integer digits is shown whole (1234,
    not 1.2e+03). The console, summary.md and report.html print differences, intervals,
    p-values and set-level values through this, so they show the same numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) < ROUNDING_NOISE:  # a difference of equal values, left by floating point
        value = 0.0
    sign = "+" if signed else ""
    if math.isfinite(value) and abs(value) >= 10 ** digits:
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.{digits}g}"


def difference_text(c) -> str:
    """A comparison's difference and its interval: "-0.00044 [-0.00061, -0.00027]"."""
    low, high = significant(c.ci_low, signed=True), significant(c.ci_high, signed=True)
    return f"{significant(c.difference, signed=True)} [{low}, {high}]"


SET_DIGITS = 4  # set-level values (CMMD, KID, copy rate): one number per model


def arrow(metric: str) -> str:
    return "higher" if METRICS[metric].higher_is_better else "lower"


def table_rows(comparisons: list) -> list[list[str]]:
    """Rows shared by the Markdown, HTML and console tables."""
    rows = []
    for c in comparisons:
        rows.append([c.metric, arrow(c.metric), c.model, f"{c.n_prompts} / {c.n_pairs}", fmt(c.base_mean),
                     fmt(c.model_mean), difference_text(c), fmt(c.win_rate, 2), significant(c.p_value),
                     significant(c.p_adjusted), getattr(c, "pairing", "paired")])
    return rows


HEADER = ["metric", "better", "model", "prompts / pairs", "base", "model", "difference [95% CI]", "win rate",
          "p", "p (adjusted)", "pairing"]


def markdown(comparisons: list, scores, context: dict[str, Any]) -> str:
    lines = [f"# ccub benchmark: {markdown_text(context['culture'])}", ""]
    if context["smoke_run"]:
        lines += [f"> **{SMOKE}**", ""]
    methods = ", ".join(sorted({c.interval_method for c in comparisons})) or "bootstrap"
    lines += [PROXY, "", comparison_text(comparisons, context, methods), ""]
    lines += ["Models:", "", *(f"- {markdown_text(line)}" for line in models_lines(context)), ""]
    lines += md_table(HEADER, table_rows(comparisons))
    if scores.sets:
        lines += ["", "Set-level metrics (one value per model; no interval):", ""]
        lines += md_table(["metric", "better", *(m.name for m in context["models"])], set_rows(scores, context))
    lines += ["", *(f"- {markdown_text(note)}" for note in scores.notes), "", markdown_text(footer_text(context)), ""]
    return "\n".join(lines)


def comparison_text(comparisons: list, context: dict[str, Any], methods: str) -> str:
    """How the table's differences were made: all paired (a generated benchmark), or paired and unpaired."""
    correction = context["config"].correction
    if all(getattr(c, "pairing", "paired") == "paired" for c in comparisons) and "baseline" not in context:
        return ("Differences are fine-tuned minus base, paired by (prompt, seed); intervals are 95% cluster bootstrap "
                f"intervals over prompts ({methods}); p-values are sign-flip tests over prompts, adjusted "
                f"({correction}) across the table.")
    return (f"Differences are each model minus {context.get('baseline', 'base')}. The `pairing` column says how: "
            "paired by (prompt, seed) where the two share images of the same prompt and seed (symmetric bootstrap-t "
            "cluster interval over prompts, sign-flip p); unpaired where they do not (per-prompt means of each "
            "model, a Welch-type symmetric bootstrap-t interval resampling each model's prompts on their own, a "
            f"permutation p). Intervals are 95% ({methods}); p-values are adjusted ({correction}) across the table.")


def set_rows(scores, context: dict[str, Any]) -> list[list[str]]:
    return [[metric, arrow(metric), *(significant(per_model.get(m.name), SET_DIGITS) for m in context["models"])]
            for metric, per_model in scores.sets.items()]


def footer_text(context: dict[str, Any]) -> str:
    from finetune.outputs import library_versions

    s = context["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    generation = context.get("generation") or (f"{s.scheduler}, {s.steps} steps, guidance {s.guidance}, "
                                               f"{s.resolution} px, LoRA scale {s.lora_scale}")
    return (f"Models: {', '.join(m.name for m in context['models'])}. Prompts: {len(context['prompts'])} "
            f"({context['suite']}); seeds: {', '.join(map(str, context['seeds']))}. Generation: {generation}. CLIP: "
            f"{context['clip']}. Identification among: {', '.join(context['classes'])}. Reference set: "
            f"{context['reference']}; training images: {context['training']}. Libraries: {versions}.")


# --------------------------------------------------------------------------- HTML


def png_base64(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def error_bar(value: float, low: float, high: float) -> list[list[float]]:
    """matplotlib's xerr for an interval; a percentile interval can miss its point estimate (skewed or
    degenerate resamples), and negative lengths are refused, so they are clipped to 0."""
    return [[max(value - low, 0.0)], [max(high - value, 0.0)]]


def forest_plot(comparisons: list) -> str | None:
    """Differences with their intervals, one panel per metric (their scales differ)."""
    shown = [c for c in comparisons if not math.isnan(c.difference)]
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(c.metric for c in shown))
    per_metric = [sum(c.metric == m for c in shown) for m in metrics]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7, sum(0.7 + 0.3 * n for n in per_metric)), squeeze=False,
                             gridspec_kw={"height_ratios": per_metric}, layout="constrained")
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        rows = [c for c in shown if c.metric == metric]
        for y, c in enumerate(rows):
            low = c.difference if math.isnan(c.ci_low) else c.ci_low
            high = c.difference if math.isnan(c.ci_high) else c.ci_high
            ax.errorbar(c.difference, y, xerr=error_bar(c.difference, low, high), fmt="o", color="#1f5fa8")
        ax.axvline(0, color="#999", lw=1)
        ax.set_yticks(range(len(rows)), [c.model for c in rows])
        ax.set_title(f"{metric} ({arrow(metric)} is better)", fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
    data = png_base64(fig)
    plt.close(fig)
    return data


def _thumbnail(path: Path, max_pixels: int, size: int = 192) -> str | None:
    """A small JPEG of a cached image, or None when it is not a JPEG, PNG or WebP of at most
    `max_pixels` pixels (the cache is a folder anyone may have written to): the report then says so."""
    from ccub.imaging.decode import DecodeRefused, open_image

    try:
        with open_image(path, max_pixels) as im:
            im = im.convert("RGB")
    except (DecodeRefused, OSError):
        return None
    im.thumbnail((size, size))
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode()


TEMPLATE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ccub benchmark: {{ culture }}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}.smoke{background:#fff3cd;border:2px solid #d39e00;
padding:1em;font-weight:bold}.grid img{width:128px;height:128px;object-fit:cover;margin:1px}
.grid td{vertical-align:top}footer{color:#555;font-size:12px;margin-top:2em}</style></head><body>
<h1>ccub benchmark: {{ culture }}</h1>
{% if smoke %}<p class="smoke">{{ smoke_text }}</p>{% endif %}
<p>{{ proxy }}</p>
<h2>Models</h2><ul>{% for line in model_lines %}<li>{{ line }}</li>{% endfor %}</ul>
<h2>{{ title }}</h2><table><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if forest %}<p><img alt="forest plot of the differences" src="data:image/png;base64,{{ forest }}"></p>{% endif %}
{% if sets %}<h2>Set-level metrics</h2><table><tr><th>metric</th><th>better</th>
{% for m in models %}<th>{{ m }}</th>{% endfor %}</tr>{% for row in sets %}<tr>{% for cell in row %}<td>{{ cell }}</td>
{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% if notes %}<ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<h2>Images, same seed side by side</h2>
{% for p in grids %}<h3>{{ p.text }}</h3><table class="grid"><tr>{% for m in models %}<th>{{ m }}</th>{% endfor %}</tr>
{% for seed_row in p.rows %}<tr>{% for img in seed_row %}<td>{% if img %}<img alt=""
src="data:image/jpeg;base64,{{ img }}">{% elif img is none %}not shown: not a JPEG, PNG or WebP within
limits.max_megapixels{% else %}no image of this seed{% endif %}</td>{% endfor %}</tr>{% endfor %}</table>{% endfor %}
<footer>{{ footer }}</footer></body></html>"""


def html(comparisons: list, scores, context: dict[str, Any]) -> str:
    import jinja2

    models = [m.name for m in context["models"]]
    images = context["images"]  # images made elsewhere may lack a (model, prompt, seed): "" says so
    grids = [{"text": p.text, "rows": [[_thumbnail(images[(m, p.id, s)], context["max_pixels"])
                                         if (m, p.id, s) in images else "" for m in models]
                                        for s in context["seeds"]
                                        if any((m, p.id, s) in images for m in models)]} for p in context["prompts"]]
    env = jinja2.Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(
        title=f"Each model minus {context['baseline']}" if "baseline" in context else "Fine-tuned minus base",
        culture=context["culture"], smoke=context["smoke_run"], smoke_text=SMOKE, proxy=PROXY, header=HEADER,
        rows=table_rows(comparisons), forest=forest_plot(comparisons), sets=set_rows(scores, context), models=models,
        notes=scores.notes, grids=grids, footer=footer_text(context), model_lines=models_lines(context))
