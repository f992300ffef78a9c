"""ccub from Python: run `ccub validate` and read what ccub wrote as pandas DataFrames (docs/python.md).

    import ccub

    result = ccub.validate("examples/submissions", out="data")   # what `ccub validate` does
    result.findings, result.records, result.summary               # DataFrames
    ccub.load_report("data")                                      # the same, from report.json
    ccub.load_benchmark("runs/x").summary                         # results.csv, summary.csv
    ccub.load_study("study/analysis").rankings                    # rankings, win_rates, proxies, ...

Nothing here computes anything of its own: `validate` runs `ccub.outputs.run_validate`, the
function the command runs, and the loaders read the files through the readers the commands use
(`ValidationReport`, `BenchmarkRecord`, `benchmark.metric_rows.read_rows`) or, for the CSV files
no command reads back, with the columns and types docs/outputs.md lists.

Columns are typed: counts are integers (pandas' nullable `Int64` where a cell may be empty, such as
`seed` and `line`), flags booleans, names that repeat (culture, model, metric, check, severity,
status, ...) categories, other text pandas' `str`. Every frame carries the flags that say its
numbers mean nothing (`random_weights`, `smoke_run`, `simulated`), as columns, so that a filtered
or concatenated frame never loses them. pandas is imported here only, when a frame is built: the
command line does not load it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from benchmark.record import BenchmarkRecord
    from ccub.pipeline import ProgressFn
    from ccub.report.record import ValidationReport

__all__ = ["BenchmarkTables", "StudyTables", "ValidationResult", "load_benchmark", "load_report", "load_study",
           "validate"]

STATUSES = ("accepted", "review", "rejected")
LEVELS = ("image", "prompt", "set")


# --------------------------------------------------------------------------- column types


def _categories(values: Any, order: list[str] | tuple[str, ...] | None = None, ordered: bool = False):
    """A categorical dtype: `order` first (when given), then the other values in order of appearance."""
    import pandas as pd

    seen = [v for v in dict.fromkeys(values) if isinstance(v, str)]
    known = list(order or [])
    return pd.CategoricalDtype(pd.Index([*known, *(v for v in seen if v not in known)], dtype="str"), ordered=ordered)


def _typed(rows: list[dict[str, Any]] | pd.DataFrame, types: dict[str, Any], where: str) -> pd.DataFrame:
    """A frame of exactly the columns of `types` (in that order), each converted to its type:
    "str", "Int64", "int64", "float64", "bool", "object", "category" (values in order of appearance)
    or ("category", ORDER[, ordered]) (ORDER first, then any other value: none becomes missing).
    `rows`: dicts of Python values, or a frame of CSV text cells."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(types))
    missing = [c for c in types if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: no column {', '.join(missing)}")
    out = {}
    for column, kind in types.items():
        values = frame[column]
        text = values.dtype == object or isinstance(values.dtype, pd.StringDtype)
        try:
            if kind == "object":
                out[column] = values.astype(object)
            elif kind == "float64":  # "nan", "inf" and the empty cell (no value: NaN) included
                out[column] = (values.replace("", "nan") if text else values).astype(kind)
            elif kind in ("Int64", "int64"):
                out[column] = (pd.to_numeric(values.replace("", None)) if text else values).astype(kind)
            elif kind == "bool":
                if text:
                    flags = values.map({"True": True, "False": False, True: True, False: False})
                    if flags.isna().any():
                        bad = values[flags.isna()].iloc[0]
                        raise ValueError(f"{bad!r} is not True or False")
                    values = flags
                out[column] = values.astype(bool)
            elif kind == "str":
                out[column] = (values.replace("", None) if text else values).astype("str")
            elif kind == "category" or isinstance(kind, tuple):
                order, ordered = (kind[1], kind[2] if len(kind) > 2 else False) if isinstance(kind, tuple) else ((),
                                                                                                              False)
                values = values.replace("", None) if text else values
                out[column] = values.astype(_categories(values, order, ordered))
            else:
                raise ValueError(f"unknown column type {kind!r}")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: column {column}: {exc}") from exc
    return pd.DataFrame(out, index=frame.index)


def _read_csv(path: Path, types: dict[str, Any], names: dict[str, str] | None = None,
              empty: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV file ccub wrote, every cell read as text, then typed. Text columns (`text`, and every
    "str" or category column) get back the names written through `ccub.escape.spreadsheet_cell`:
    from `names` (written cell -> name) when the writer's names are known, else by dropping the
    added apostrophe."""
    import pandas as pd

    from ccub.escape import unescape_cell

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if frame.empty:
        for column in empty:  # a file with no row may have only its common columns (conflicts.csv)
            frame[column] = pd.Series(dtype=str)
    for column, kind in types.items():
        if column in frame.columns and (kind in ("str", "category") or isinstance(kind, tuple)):
            frame[column] = frame[column].map(lambda cell: (names or {}).get(cell, unescape_cell(cell)))
    return _typed(frame, types, str(path))


# --------------------------------------------------------------------------- ccub validate


FINDING_TYPES: dict[str, Any] = {
    "contributor": "str", "culture": "category", "file": "str", "record": "str", "line": "Int64", "field": "str",
    "check": "category", "severity": "severity", "message": "str", "fixed": "str", "fix": "str",
    "random_weights": "bool"}
RECORD_TYPES: dict[str, Any] = {
    "key": "str", "origin": "str", "image": "str", "url": "str", "status": "status", "output": "str",
    "caption": "str", "caption_chars": "int64", "culture": "category", "category": "category", "license": "category",
    "creator": "str", "contributor": "str", "consent": "category", "language": "category", "split": "category",
    "sources": "object", "width": "Int64", "height": "Int64", "export": "category", "issues": "object",
    "image_sha256": "str", "caption_sha256": "str", "random_weights": "bool"}
SUMMARY_TYPES: dict[str, Any] = {"culture": "category", **dict.fromkeys(STATUSES, "int64"), "random_weights": "bool"}


def _resolve(types: dict[str, Any]) -> dict[str, Any]:
    from ccub.records import SEVERITIES

    fixed = {"severity": ("category", SEVERITIES, True),  # ordered worst first: error < review < warning < info
             "status": ("category", STATUSES)}
    return {c: fixed.get(k, k) for c, k in types.items()}


@dataclass
class ValidationResult:
    """What one `ccub validate` run found: report.json (`report`, the typed record) as DataFrames.

    `findings`: one row per finding (issues.csv's columns), indexed by its position in the report
    (a record's `issues` lists these positions); `records`: one row per submitted record;
    `summary`: records accepted, held for review and rejected per culture (the console's table).
    Each frame has `random_weights`: True when semantic duplicates were found with a random CLIP
    (`clip="tiny"`), whose similarities mean nothing."""

    report: ValidationReport
    folder: Path | None = None  # the --out folder (None when report.json was read elsewhere)

    @property
    def exit_code(self) -> int:
        """What `ccub validate` exits with: 0 all accepted, 1 some rejected or held for review."""
        return int(self.report.summary["exit_code"])

    @property
    def random_weights(self) -> bool:
        from ccub.report.record import random_weights

        return random_weights(self.report.notes)

    @cached_property
    def findings(self) -> pd.DataFrame:
        rows = [{**issue, "random_weights": self.random_weights} for issue in self.report.issues]
        frame = _typed(rows, _resolve(FINDING_TYPES), "report.json issues")
        frame.index.name = "issue"
        return frame

    @cached_property
    def records(self) -> pd.DataFrame:
        rows = [{**record, "random_weights": self.random_weights} for record in self.report.records]
        for row in rows:  # report.json version 2: held records lack their digests
            row.setdefault("image_sha256", None)
            row.setdefault("caption_sha256", None)
        return _typed(rows, _resolve(RECORD_TYPES), "report.json records")

    @cached_property
    def summary(self) -> pd.DataFrame:
        rows = [{"culture": culture, **{s: counts.get(s, 0) for s in STATUSES}, "random_weights": self.random_weights}
                for culture, counts in self.report.summary["status"].items()]
        return _typed(rows, SUMMARY_TYPES, "report.json summary")


def validate(submissions: str | Path, out: str | Path = "data", *, config: str | Path | None = None,
             culture: str | None = None, category: str | None = None, license: str | None = None,
             creator: str | None = None, contributor: str | None = None, consent: str | None = None,
             language: str | None = None, include_review: bool = False, workers: int | None = None,
             clip: str | None = None, test_fraction: float | None = None, against: str | Path | None = None,
             meta: str | Path | None = None, wait: bool = False, decisions: str | Path | None = None,
             progress: ProgressFn | None = None) -> ValidationResult:
    """Run `ccub validate SUBMISSIONS --out OUT` (the same options, the same files written: the clean
    set, the reports, the data cards) and return its findings as DataFrames.

    `config`: a ccub.toml (default: ./ccub.toml when present, as the command); `workers`: processes
    decoding images (default: every core); `progress(stage, done, total)` is called as images are
    analysed. Raises `ccub.pipeline.UsageError` (and `ccub.config.ConfigError`,
    `ccub.outdir.OutputBusy`, `OutputError`, `ccub.readers.RootError`) where the command exits
    with code 2. Records rejected or held for review are no error: see `.exit_code`."""
    import os

    from ccub.config import load_config
    from ccub.outputs import run_validate

    cfg = load_config(Path(config) if config is not None else None)
    flags = {"culture": culture, "category": category, "license": license, "creator": creator,
             "contributor": contributor, "consent": consent, "language": language}
    run_validate(Path(submissions), Path(out), cfg, flags, meta=Path(meta) if meta else None, progress=progress,
                 include_review=include_review, workers=workers or os.cpu_count() or 1, clip=clip,
                 test_fraction=test_fraction, against=Path(against) if against else None, wait=wait,
                 decisions=Path(decisions) if decisions else None)
    return load_report(out)


def load_report(path: str | Path) -> ValidationResult:
    """report.json of a `ccub validate` run: PATH is the --out folder, its reports/ folder or the file."""
    from ccub.report.record import REPORT_FILE, ValidationReport

    path = Path(path)
    for candidate in (path / "reports" / REPORT_FILE, path / REPORT_FILE, path):
        if candidate.is_file():
            folder = candidate.parent.parent if candidate.parent.name == "reports" else None
            return ValidationResult(ValidationReport.read(candidate), folder)
    return ValidationResult(ValidationReport.read(path / "reports" / REPORT_FILE))  # raises: names the file


# --------------------------------------------------------------------------- ccub benchmark


def _metric_order() -> list[str]:
    from benchmark.evaluate import METRICS

    return list(METRICS)


RESULT_TYPES: dict[str, Any] = {
    "culture": "category", "model": "category", "prompt": "category", "prompt_text": "str", "level": "level",
    "seed": "Int64", "metric": "metric", "value": "float64", "random_weights": "bool", "smoke_run": "bool"}
BENCHMARK_SUMMARY_TYPES: dict[str, Any] = {
    "culture": "category", "level": "level", "metric": "metric", "model": "category", "baseline": "category",
    "n_prompts": "Int64", "n_pairs": "Int64", "base_mean": "float64", "model_mean": "float64",
    "difference": "float64", "ci_low": "float64", "ci_high": "float64", "confidence": "float64",
    "interval_method": "category", "pairing": "category", "win_rate": "float64", "p_value": "float64",
    "p_adjusted": "float64", "higher_is_better": "bool", "random_weights": "bool", "smoke_run": "bool"}


def _benchmark_types(types: dict[str, Any], record: BenchmarkRecord) -> dict[str, Any]:
    """Categories in the benchmark's order: models as benchmark.json lists them (base first), prompts
    as the suite does, metrics as docs/outputs.md does."""
    models = ("category", [m["name"] for m in record.models])
    fixed = {"level": ("category", LEVELS), "metric": ("category", _metric_order()),
             "culture": ("category", [record.culture])}
    types = {c: fixed.get(k, k) for c, k in types.items()}
    for column in ("model", "baseline"):
        if column in types:
            types[column] = models
    if "prompt" in types:
        types["prompt"] = ("category", [p["id"] for p in record.prompts])
    return types


@dataclass
class BenchmarkTables:
    """A `ccub benchmark` folder: `results` (results.csv, one row per value), `summary` (summary.csv,
    one row per comparison with base), `record` (benchmark.json). Both frames add `culture` and
    `smoke_run` (benchmark.json's) to the file's columns; `random_weights` is the file's own."""

    folder: Path
    record: BenchmarkRecord
    results: pd.DataFrame
    summary: pd.DataFrame


def load_benchmark(path: str | Path) -> BenchmarkTables:
    """The benchmark of a run: PATH is the run folder (runs/NAME) or its benchmark/ folder."""
    from benchmark.table import read_source
    from ccub.escape import spreadsheet_cell

    source = read_source(Path(path))  # what `ccub benchmark-table` reads: benchmark.json, then results.csv
    record = source.record
    flags = {"culture": record.culture, "smoke_run": record.smoke_run}
    rows = [{"model": r.model, "prompt": r.prompt, "prompt_text": r.prompt_text, "level": r.level, "seed": r.seed,
             "metric": r.metric, "value": r.value, "random_weights": r.random_weights, **flags} for r in source.rows]
    results = _typed(rows, _benchmark_types(RESULT_TYPES, record), str(source.folder / "results.csv"))
    names = {spreadsheet_cell(m["name"]): m["name"] for m in record.models}
    summary_types = _benchmark_types(BENCHMARK_SUMMARY_TYPES, record)
    with (source.folder / "summary.csv").open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    # Written before images made elsewhere (no `pairing` column): every comparison was paired.
    old = "pairing" not in header
    frame = _read_csv(source.folder / "summary.csv", {c: k for c, k in summary_types.items()
                                                      if c not in flags and not (old and c == "pairing")}, names)
    if old:
        frame["pairing"] = [None if level == "set" else "paired" for level in frame["level"]]
    for column, value in flags.items():
        frame[column] = value
    summary = _typed(frame, summary_types, str(source.folder / "summary.csv"))
    return BenchmarkTables(source.folder, record, results, summary)


# --------------------------------------------------------------------------- ccub study analyze


COMMON_TYPES: dict[str, Any] = {"culture": "category", "study_id": "str", "group": "category", "smoke_run": "bool",
                                "simulated": "bool"}
STUDY_TYPES: dict[str, dict[str, Any]] = {
    "rankings": {"question": "category", "model": "category", "rank": "int64", "theta": "float64",
                 "ci_low": "float64", "ci_high": "float64", "reference": "category",
                 "p_beats_reference": "float64", "p_low": "float64", "p_high": "float64", "mean_rank": "float64",
                 "rankings": "int64", "participants": "int64"},
    "win_rates": {"question": "category", "model": "category", "opponent": "category", "wins": "int64",
                  "comparisons": "int64", "win_rate": "float64"},
    "agreement": {"question": "category", "kendall_w": "float64", "chance": "float64", "items": "int64",
                  "mean_raters": "float64"},
    "proxies": {"question": "category", "metric": "metric", "tau": "float64", "ci_low": "float64",
                "ci_high": "float64", "items": "int64", "prompts": "int64"},
    "conflicts": {"participant": "str", "file": "str", "finished": "str", "counted": "category",
                  "resubmission": "category"},
}


@dataclass
class StudyTables:
    """A `ccub study analyze` folder, a frame per CSV file. Every frame starts with the files' five
    common columns, flags included (`smoke_run`: random-weight models; `simulated`: responses made by
    `ccub study simulate`)."""

    folder: Path
    rankings: pd.DataFrame
    win_rates: pd.DataFrame
    agreement: pd.DataFrame
    proxies: pd.DataFrame
    conflicts: pd.DataFrame


def load_study(path: str | Path) -> StudyTables:
    """The analysis of a ranking study: PATH is the analysis folder (`ccub study analyze --out`) or the
    study bundle holding it in analysis/."""

    path = Path(path)
    folder = path / "analysis" if not (path / "rankings.csv").is_file() and (path / "analysis").is_dir() else path
    if not (folder / "rankings.csv").is_file():
        raise FileNotFoundError(f"{path}: no rankings.csv here or in {path / 'analysis'}; run `ccub study analyze`")
    frames = {}
    for name, own in STUDY_TYPES.items():
        types = {**COMMON_TYPES, **own}
        types = {c: ("category", _metric_order()) if k == "metric" else k for c, k in types.items()}
        frames[name] = _read_csv(folder / f"{name}.csv", types, empty=tuple(own) if name == "conflicts" else ())
    wins = frames["win_rates"]  # one set of models on both sides, so that model == opponent compares
    models = list(dict.fromkeys([*wins["model"].cat.categories, *wins["opponent"].cat.categories]))
    for column in ("model", "opponent"):
        wins[column] = wins[column].cat.set_categories(models)
    return StudyTables(folder, **frames)
