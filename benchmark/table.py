"""`ccub benchmark-table`: the benchmarks of several cultures as one table, in the paper's shape.

    runs/<a>/benchmark/{benchmark.json, results.csv}, runs/<b>/benchmark/..., ...
        --> models as rows, metrics as columns, one block per culture and a pooled block
        --> OUT/{table.md, table.csv, table.html}

Nothing is generated or scored again: the table reads what `ccub benchmark` wrote. Every cell
is computed with `benchmark.stats.compare`, the function of the per-run comparisons:

- a model's level ("mean") is the mean over prompts of its per-prompt mean (every prompt weighs
  the same, whatever its seeds), with the comparisons' cluster bootstrap interval resampling
  prompts (a prompt brings all its seeds): `compare` of the model against a constant 0;
- a fine-tuned model's difference from base is `compare` of the model against the base model of
  its own benchmark, paired by (prompt, seed): the numbers of that run's summary.csv;
- the pooled block takes the prompts of every culture as the clusters (each prompt weighs the
  same), and holds only the models benchmarked in every culture.

Rows are named by the run's SCoFT variant (`lora`, `M`, `MP`, `MPC`, read from its run.json),
so that india-MPC and korea-MPC share a row; a run whose run.json cannot be found, or two runs
of one culture with the same variant, are named by their run folder instead.

Benchmarks made with different CLIP scorers, generation settings or base models cannot share a
table (their numbers are not comparable): `TableError` says which differ. Different seeds are
allowed, with a warning. Set-level metrics (CMMD, KID, copy rate) have one value per model and
no interval; they stay in each run's summary.csv.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.evaluate import METRICS
from benchmark.metric_rows import MetricRow, read_rows
from benchmark.record import BENCHMARK_FILE, BenchmarkRecord
from ccub.recordfile import RecordError

POOLED = "pooled"
BASE = "base"
COLUMNS = ["culture", "model", "runs", "metric", "higher_is_better", "mean", "ci_low", "ci_high", "n_prompts",
           "difference", "diff_ci_low", "diff_ci_high", "p_value", "p_adjusted", "confidence", "random_weights"]
# Generation settings that change nothing an image shows (benchmark.generate.Settings.key).
_IRRELEVANT_SETTINGS = ("batch_size",)


class TableError(ValueError):
    """Benchmarks that cannot share one table; the message names them and the fix."""


@dataclass
class Source:
    """One benchmark folder, read."""

    folder: Path
    record: BenchmarkRecord
    rows: list[MetricRow]
    labels: dict[str, str] = field(default_factory=dict)  # model name in the benchmark -> row label


@dataclass
class Cell:
    """One (culture, model, metric) of the table; `culture` is POOLED for the pooled block."""

    culture: str
    model: str
    runs: str  # the run folders behind the row ("" for base), "; "-separated
    metric: str
    higher_is_better: bool
    mean: float
    ci_low: float
    ci_high: float
    n_prompts: int
    difference: float = math.nan  # model - base (nan for the base row)
    diff_ci_low: float = math.nan
    diff_ci_high: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    confidence: float = 0.95
    random_weights: bool = False


@dataclass
class CrossTable:
    cultures: list[str]  # block order; POOLED last when there are 2 or more cultures
    models: list[str]  # row order
    metrics: list[str]
    cells: list[Cell]
    smoke: bool
    clip: str
    settings: dict[str, Any]
    seeds: list[int]
    sources: list[Source]
    n_boot: int
    confidence: float
    correction: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, culture: str, model: str, metric: str) -> Cell | None:
        return next((c for c in self.cells if (c.culture, c.model, c.metric) == (culture, model, metric)), None)

    def block_models(self, culture: str) -> list[str]:
        present = {c.model for c in self.cells if c.culture == culture}
        return [m for m in self.models if m in present]

    def run_names(self, culture: str) -> dict[str, str]:
        """Row label -> run folder(s), for the fine-tuned rows of one culture's block."""
        return {c.model: c.runs for c in self.cells if c.culture == culture and c.runs and c.runs != c.model}


def benchmark_folder(path: Path) -> Path:
    """The benchmark folder of `path`: a run folder (runs/NAME) or its benchmark/ folder."""
    path = Path(path)
    for folder in (path, path / "benchmark"):
        if (folder / BENCHMARK_FILE).is_file() and (folder / "results.csv").is_file():
            return folder
    raise TableError(f"{path}: no {BENCHMARK_FILE} and results.csv here or in {path / 'benchmark'}; benchmark the "
                     f"run first (`ccub benchmark --model {path}`)")


def read_source(folder: Path) -> Source:
    folder = benchmark_folder(folder)
    try:
        record = BenchmarkRecord.read(folder / BENCHMARK_FILE)
        names = [m["name"] for m in record.models] + [p["id"] for p in record.prompts]
        rows = read_rows(folder / "results.csv", names, fix=BenchmarkRecord.FIX)
    except RecordError as exc:
        raise TableError(str(exc)) from exc
    return Source(folder, record, rows)


def _variant(folder: Path, model: dict[str, Any]) -> str | None:
    """The SCoFT variant of a benchmarked run, from its run.json: beside its LoRA file, or the run
    folder that holds the benchmark folder."""
    from finetune.run_record import RUN_FILE, RunRecord

    candidates = []
    if model.get("lora"):
        candidates.append(Path(model["lora"]).parent)
    if folder.resolve().parent.name == model["name"]:
        candidates.append(folder.resolve().parent)
    for run in candidates:
        if (run / RUN_FILE).is_file():
            try:
                return RunRecord.read_from(run).variant
            except RecordError:
                continue
    return None


def _label(sources: list[Source]) -> None:
    """Fill each source's row labels: base, the run's variant, or the run's name (see the module doc)."""
    for culture in dict.fromkeys(s.record.culture for s in sources):
        found = [(s, m["name"], _variant(s.folder, m)) for s in sources if s.record.culture == culture
                 for m in s.record.models if m["name"] != BASE]
        variants = [v for _, _, v in found if v]
        for s, name, variant in found:
            s.labels[name] = variant if variant and variants.count(variant) == 1 else name
        for s in sources:
            if s.record.culture == culture:
                s.labels[BASE] = BASE


def _check_comparable(sources: list[Source]) -> list[str]:
    """Refuse what makes numbers incomparable; return warnings for what only weakens the comparison."""
    first = sources[0]

    def differ(what: str, value) -> list[str]:
        groups: dict[str, list[str]] = {}
        for s in sources:
            groups.setdefault(str(value(s)), []).append(str(s.folder))
        if len(groups) == 1:
            return []
        return [f"{what} {k}: {', '.join(v)}" for k, v in groups.items()]

    clip = differ("CLIP", lambda s: s.record.clip)
    if clip:
        raise TableError("benchmarks made with different CLIP scorers cannot share a table (their scores are not "
                         "comparable): " + "; ".join(clip) + f". Rerun `ccub benchmark --clip {first.record.clip}` "
                         "on the others (cached images are reused)")
    settings = differ("settings", lambda s: _settings(s.record))
    if settings:
        raise TableError("benchmarks made with different generation settings cannot share a table: "
                         + "; ".join(settings) + ". Rerun `ccub benchmark` on them with one ccub.toml [benchmark] "
                         "section")
    base = differ("base model", lambda s: _base(s.record))
    if base:
        raise TableError("benchmarks of different base models cannot share a table (their base rows differ): "
                         + "; ".join(base))
    warnings = []
    seeds = differ("seeds", lambda s: s.record.seeds)
    if seeds:
        warnings.append("the benchmarks used different seeds (their images are not paired across cultures; each "
                        "culture's comparison with base still is): " + "; ".join(seeds))
    for culture in dict.fromkeys(s.record.culture for s in sources):
        same = [s for s in sources if s.record.culture == culture]
        prompts = {tuple(sorted(p["id"] for p in s.record.prompts)) for s in same}
        if len(prompts) > 1:
            warnings.append(f"{culture}: the benchmarks used different prompts ("
                            + ", ".join(str(s.folder) for s in same) + "); the base row is the first one's")
    return warnings


def _settings(record: BenchmarkRecord) -> dict[str, Any]:
    return {k: v for k, v in sorted(record.settings.items()) if k not in _IRRELEVANT_SETTINGS}


def _base(record: BenchmarkRecord) -> str:
    return next((str(m.get("base")) for m in record.models if m["name"] == BASE), "?")


def _values(source: Source, model: str, metric: str, prefix: str = "") -> dict[tuple[str, int], float]:
    """(prompt, seed) -> value of one model and metric; a prompt-level value has seed 0 (as run._compare)."""
    return {(prefix + r.prompt, 0 if r.seed is None else r.seed): r.value for r in source.rows
            if r.model == model and r.metric == metric}


def _level(metric: str, model: str, values: dict[tuple[str, int], float], n_boot: int, confidence: float):
    """The mean over prompts of per-prompt means, with its cluster-bootstrap interval: `compare` against 0."""
    from benchmark.stats import compare

    keys = sorted(values)
    return compare(metric, model, "0", [k[0] for k in keys], [k[1] for k in keys], [0.0] * len(keys),
                   [values[k] for k in keys], n_boot=n_boot, confidence=confidence)


def _difference(metric: str, model: str, base: dict, values: dict, n_boot: int, confidence: float):
    from benchmark.stats import compare

    shared = sorted(k for k in base if k in values)
    return compare(metric, model, BASE, [k[0] for k in shared], [k[1] for k in shared], [base[k] for k in shared],
                   [values[k] for k in shared], n_boot=n_boot, confidence=confidence,
                   higher_is_better=METRICS[metric].higher_is_better)


def _order(labels: Sequence[str]) -> list[str]:
    from finetune.config import VARIANTS

    known = [BASE, *VARIANTS]
    unique = list(dict.fromkeys(labels))
    return sorted(unique, key=lambda label: (known.index(label), "") if label in known else (len(known), label))


def cross_table(folders: Sequence[Path], n_boot: int = 10000, confidence: float = 0.95, correction: str = "holm",
                metrics: Sequence[str] | None = None) -> CrossTable:
    """Read every benchmark folder (or run folder) and assemble the table (see the module doc)."""
    from benchmark.stats import adjust

    if not folders:
        raise TableError("no benchmark given; name run folders benchmarked with `ccub benchmark`")
    seen: dict[Path, Source] = {}
    for folder in folders:
        source = read_source(folder)
        seen.setdefault(source.folder.resolve(), source)
    sources = list(seen.values())
    warnings = _check_comparable(sources)
    _label(sources)
    cultures = list(dict.fromkeys(s.record.culture for s in sources))
    present = {r.metric for s in sources for r in s.rows}
    if metrics:
        unknown = [m for m in metrics if m not in METRICS or METRICS[m].level == "set"]
        if unknown:
            raise TableError(f"no such metric with an interval: {', '.join(unknown)}; choose among "
                             + ", ".join(m for m, spec in METRICS.items() if spec.level != "set"))
        chosen = [m for m in metrics if m in present]
    else:
        chosen = [m for m, spec in METRICS.items() if spec.level != "set" and m in present]
    notes = []
    missing = [m for m in (metrics or []) if m not in present]
    if missing:
        notes.append(f"not in any benchmark: {', '.join(missing)}")

    # Per culture: which source each row comes from (the base row: the culture's first benchmark).
    rows: dict[str, dict[str, tuple[Source, str]]] = {}
    for culture in cultures:
        rows[culture] = {}
        for s in sources:
            if s.record.culture != culture:
                continue
            for m in s.record.models:
                label = s.labels[m["name"]]
                if label in rows[culture] and label != BASE:
                    raise TableError(f"{culture}: two benchmarks hold the run {m['name']!r} "
                                     f"({rows[culture][label][0].folder}, {s.folder}); give one of them")
                rows[culture].setdefault(label, (s, m["name"]))
    everywhere = [label for label in _order([lbl for r in rows.values() for lbl in r])
                  if all(label in rows[c] for c in cultures)]
    models = _order([lbl for r in rows.values() for lbl in r])
    smoke_of = {c: any(s.record.smoke_run for s in sources if s.record.culture == c) for c in cultures}

    cells: list[Cell] = []
    unpooled: set[str] = set()
    for metric in chosen:
        better = METRICS[metric].higher_is_better
        for culture in cultures:
            for label in _order(list(rows[culture])):
                source, name = rows[culture][label]
                values = _values(source, name, metric)
                if not values:
                    continue
                level = _level(metric, label, values, n_boot, confidence)
                cell = Cell(culture, label, "" if name == BASE else name, metric, better, level.difference,
                            level.ci_low, level.ci_high, level.n_prompts, confidence=confidence,
                            random_weights=smoke_of[culture])
                if name != BASE:
                    d = _difference(metric, label, _values(source, BASE, metric), values, n_boot, confidence)
                    cell.difference, cell.diff_ci_low, cell.diff_ci_high = d.difference, d.ci_low, d.ci_high
                    cell.p_value = d.p_value
                cells.append(cell)
        if len(cultures) < 2:
            continue
        for label in everywhere:
            pooled, pooled_base, everyone = {}, {}, True
            for culture in cultures:
                source, name = rows[culture][label]
                values = _values(source, name, metric, prefix=f"{culture}/")
                everyone = everyone and bool(values)
                pooled |= values
                pooled_base |= _values(source, BASE, metric, prefix=f"{culture}/")
            if not everyone:  # pooling a subset of the cultures would not be the pooled block
                unpooled.add(metric)
                continue
            level = _level(metric, label, pooled, n_boot, confidence)
            cell = Cell(POOLED, label, "; ".join(rows[c][label][1] for c in cultures) if label != BASE else "",
                        metric, better, level.difference, level.ci_low, level.ci_high, level.n_prompts,
                        confidence=confidence, random_weights=any(smoke_of.values()))
            if label != BASE:
                d = _difference(metric, label, pooled_base, pooled, n_boot, confidence)
                cell.difference, cell.diff_ci_low, cell.diff_ci_high = d.difference, d.ci_low, d.ci_high
                cell.p_value = d.p_value
            cells.append(cell)

    # Holm (or BH) across every difference of the table, as the per-run summary does across its own.
    tested = [c for c in cells if c.model != BASE]
    from benchmark.stats import Comparison

    shells = [Comparison(c.metric, c.model, BASE, c.n_prompts, 0, 0.0, 0.0, c.difference, c.diff_ci_low,
                         c.diff_ci_high, confidence, 0.0, c.p_value) for c in tested]
    for c, adjusted in zip(tested, adjust(shells, method=correction), strict=True):
        c.p_adjusted = adjusted.p_adjusted
    if len(cultures) >= 2:
        absent = [m for m in models if m not in everywhere]
        if absent:
            notes.append(f"not in the pooled block (not benchmarked in every culture): {', '.join(absent)}")
        if unpooled:
            notes.append("no pooled value (not measured in every culture): "
                         + ", ".join(m for m in chosen if m in unpooled))
        cultures = [*cultures, POOLED]
    first = sources[0].record
    seeds = sorted({s for src in sources for s in src.record.seeds})
    return CrossTable(cultures=cultures, models=models, metrics=chosen, cells=cells,
                      smoke=any(s.record.smoke_run for s in sources), clip=first.clip, settings=_settings(first),
                      seeds=seeds, sources=sources, n_boot=n_boot, confidence=confidence, correction=correction,
                      warnings=warnings, notes=notes)


# --------------------------------------------------------------------------- outputs

TABLE_FILES = ("table.md", "table.csv", "table.html")


def write_table(out: Path, table: CrossTable) -> list[Path]:
    """OUT/table.md, table.csv and table.html, each written whole (atomically)."""
    from ccub.files import atomic_write_bytes, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / name for name in TABLE_FILES]
    atomic_write_text(files[0], markdown(table))
    atomic_write_text(files[1], csv(table))
    atomic_write_bytes(files[2], html(table).encode("utf-8"))
    return files


def csv(table: CrossTable) -> str:
    from dataclasses import asdict

    from ccub.escape import csv_text

    return csv_text([asdict(c) for c in table.cells], COLUMNS)


def _arrow(metric: str) -> str:
    return "↑" if METRICS[metric].higher_is_better else "↓"


def _interval(value: float, low: float, high: float, digits: int, signed: bool = False) -> str:
    from benchmark.report import significant

    if math.isnan(value):
        return "-"
    text = significant(value, digits, signed)
    if math.isnan(low) or math.isnan(high):
        return text
    return f"{text} [{significant(low, digits, signed)}, {significant(high, digits, signed)}]"


def grid(table: CrossTable, differences: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows (culture shown on a block's first row) of the means or of the differences
    from base: the cells the Markdown and HTML tables share."""
    header = ["culture", "model", *(f"{m} {_arrow(m)}" for m in table.metrics)]
    rows = []
    for culture in table.cultures:
        models = [m for m in table.block_models(culture) if not (differences and m == BASE)]
        for i, model in enumerate(models):
            cells = []
            for metric in table.metrics:
                c = table.cell(culture, model, metric)
                if c is None:
                    cells.append("-")
                elif differences:
                    cells.append(_interval(c.difference, c.diff_ci_low, c.diff_ci_high, 2, signed=True))
                else:
                    cells.append(_interval(c.mean, c.ci_low, c.ci_high, 3))
            rows.append([culture if i == 0 else "", model, *cells])
    return header, rows


def explanation(table: CrossTable) -> list[str]:
    """The paragraphs every output opens with, after the smoke banner."""
    from benchmark.report import PROXY

    level = int(round(table.confidence * 100))
    cultures = [c for c in table.cultures if c != POOLED]
    pooled = (f" The pooled block takes the prompts of all {len(cultures)} cultures as the clusters (each prompt "
              f"weighs the same) and holds only the models benchmarked in every culture." if POOLED in table.cultures
              else "")
    return [
        PROXY,
        f"Means: each model's mean over prompts of its per-prompt mean (over seeds), with a {level}% cluster "
        f"bootstrap interval (symmetric bootstrap-t) resampling prompts ({table.n_boot} resamples; a prompt brings "
        f"all its seeds; none with fewer than 4 prompts). "
        f"Differences: fine-tuned minus the base model of the same benchmark, paired by (prompt, seed), with the same "
        f"interval (the numbers of each run's summary.csv); p-values in table.csv are sign-flip tests over prompts, "
        f"adjusted ({table.correction}) across the table's differences. ↑: higher is better; ↓: lower is "
        f"better." + pooled,
    ]


def titles(table: CrossTable) -> tuple[str, str]:
    level = f"{table.confidence * 100:g}% CI"
    return f"Means [{level}]", f"Fine-tuned minus base [{level}]"


def runs_line(table: CrossTable) -> list[str]:
    lines = []
    for culture in table.cultures:
        if culture == POOLED:
            continue
        names = table.run_names(culture)
        if names:
            lines.append(f"{culture}: " + ", ".join(f"{label} = {run}" for label, run in names.items()))
    return lines


def footer(table: CrossTable) -> str:
    s = table.settings
    setting = ", ".join(f"{k} {v}" for k, v in s.items())
    return (f"CLIP: {table.clip}. Generation: {setting}. Seeds: {', '.join(map(str, table.seeds))}. Benchmarks: "
            + ", ".join(str(src.folder) for src in table.sources) + ".")


def markdown(table: CrossTable) -> str:
    from benchmark.report import SMOKE, md_table
    from ccub.escape import markdown_text

    blocks = ", ".join(table.cultures)
    lines = [f"# ccub benchmark table: {markdown_text(blocks)}", ""]
    if table.smoke:
        lines += [f"> **{SMOKE}**", ""]
    lines += [*(markdown_text(p) + "\n" for p in explanation(table))]
    lines += [f"**Warning:** {markdown_text(w)}\n" for w in table.warnings]
    means, differences = titles(table)
    lines += [f"## {means}", ""]
    lines += md_table(*grid(table))
    lines += ["", f"## {differences}", ""]
    lines += md_table(*grid(table, differences=True))
    lines += ["", *(f"- runs: {markdown_text(line)}" for line in runs_line(table))]
    lines += [*(f"- {markdown_text(note)}" for note in table.notes)]
    lines += ["", markdown_text(footer(table)), ""]
    return "\n".join(lines)


HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ccub benchmark table: {{ title }}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:right}td:nth-child(-n+2){text-align:left}
tr.block td{border-top:2px solid #555}.smoke{background:#fff3cd;border:2px solid #d39e00;padding:1em;font-weight:bold}
.warning{color:#8a4b00}footer{color:#555;font-size:12px;margin-top:2em}</style></head><body>
<h1>ccub benchmark table: {{ title }}</h1>
{% if smoke %}<p class="smoke">{{ smoke_text }}</p>{% endif %}
{% for p in explanation %}<p>{{ p }}</p>{% endfor %}
{% for w in warnings %}<p class="warning">Warning: {{ w }}</p>{% endfor %}
{% for t in tables %}<h2>{{ t.title }}</h2><table><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr{% if row[0] %} class="block"{% endif %}>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}
</tr>{% endfor %}</table>{% endfor %}
<ul>{% for line in runs %}<li>runs: {{ line }}</li>{% endfor %}{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>
<footer>{{ footer }}</footer></body></html>"""


def html(table: CrossTable) -> str:
    import jinja2

    from benchmark.report import SMOKE

    means, differences = titles(table)
    tables = [{"title": means, "header": grid(table)[0], "rows": grid(table)[1]},
              {"title": differences, "header": grid(table, True)[0], "rows": grid(table, True)[1]}]
    env = jinja2.Environment(autoescape=True)
    return env.from_string(HTML).render(
        title=", ".join(table.cultures), smoke=table.smoke, smoke_text=SMOKE, explanation=explanation(table),
        warnings=table.warnings, tables=tables, runs=runs_line(table), notes=table.notes, footer=footer(table))
