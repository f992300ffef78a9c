"""ccub from Python (ccub/api.py, docs/python.md): the docs' example runs as written, `ccub.validate` is
`ccub validate`, and every frame has its exact column types and keeps its flags when filtered."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import documented_columns
from typer.testing import CliRunner

import ccub
from ccub.cli import app

pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
SMOKE = ROOT / "examples" / "smoke"
CAT, STR = "category", "str"


def kinds(frame) -> list[tuple[str, str]]:
    """(column, dtype) in order: "category", "str" (pandas' text), "Int64", "int64", "float64", "bool", "object"."""
    return [(column, str(dtype)) for column, dtype in frame.dtypes.items()]


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> ccub.ValidationResult:
    out = tmp_path_factory.mktemp("api") / "data"
    return ccub.validate(EXAMPLES, out=out, workers=1)


def test_the_docs_example_runs_as_written(monkeypatch):
    """Every ```python block of docs/python.md, in order, in one namespace, from the repository root."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "docs_python"}
    try:
        for block in blocks:
            exec(compile(block, str(ROOT / "docs" / "python.md"), "exec"), namespace)  # noqa: S102
        work = namespace["work"]
        assert (work / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (work / "data" / "reports" / "report.json").is_file()
    finally:
        if "work" in namespace:
            shutil.rmtree(namespace["work"], ignore_errors=True)


def test_validate_writes_what_the_command_writes(validated, tmp_path):
    """Same code path: the command's report.json and issues.csv hold the same findings and records."""
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["validate", str(EXAMPLES), "--out", str(out), "--workers", "1"])
    assert result.exit_code == validated.exit_code == 1, result.output
    cli = json.loads((out / "reports" / "report.json").read_text(encoding="utf-8"))
    api = json.loads((validated.folder / "reports" / "report.json").read_text(encoding="utf-8"))
    for key in ("summary", "records", "issues", "notes", "duplicate_groups"):
        assert cli[key] == api[key], key
    assert (out / "reports" / "issues.csv").read_bytes() == (validated.folder / "reports" / "issues.csv").read_bytes()
    assert sorted(p.relative_to(out).as_posix() for p in (out / "clean").rglob("*")) == sorted(
        p.relative_to(validated.folder).as_posix() for p in (validated.folder / "clean").rglob("*"))


def test_validate_refuses_what_the_command_refuses(tmp_path):
    from ccub.pipeline import UsageError

    with pytest.raises(UsageError, match="unknown culture"):
        ccub.validate(EXAMPLES, out=tmp_path / "x", culture="nowhere-land", workers=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no submissions found"):
        ccub.validate(tmp_path / "empty", out=tmp_path / "y", workers=1)


def test_validation_frames_have_exact_types(validated):
    from ccub.report import ISSUE_COLUMNS

    findings = validated.findings
    assert kinds(findings) == [
        ("contributor", STR), ("culture", CAT), ("file", STR), ("record", STR), ("line", "Int64"), ("field", STR),
        ("check", CAT), ("severity", CAT), ("message", STR), ("fixed", STR), ("fix", STR), ("random_weights", "bool")]
    assert list(findings.columns[:-1]) == list(ISSUE_COLUMNS), "issues.csv's columns, then the flag"
    assert findings.index.name == "issue" and list(findings.index) == list(range(len(validated.report.issues)))
    assert list(findings["severity"].cat.categories) == ["error", "review", "warning", "info"]
    assert findings["severity"].cat.ordered
    lines = findings["line"]
    assert lines.notna().any() and lines.isna().any(), "the examples have findings with and without a line"
    assert all(isinstance(v, int) for v in lines.dropna().tolist())
    assert kinds(validated.records) == [
        ("key", STR), ("origin", STR), ("image", STR), ("url", STR), ("status", CAT), ("output", STR),
        ("caption", STR), ("caption_chars", "int64"), ("culture", CAT), ("category", CAT), ("license", CAT),
        ("creator", STR), ("contributor", STR), ("consent", CAT), ("language", CAT), ("split", CAT),
        ("sources", "object"), ("width", "Int64"), ("height", "Int64"), ("export", CAT), ("issues", "object"),
        ("image_sha256", STR), ("caption_sha256", STR), ("random_weights", "bool")]
    assert list(validated.records["status"].cat.categories) == ["accepted", "review", "rejected"]
    assert kinds(validated.summary) == [("culture", CAT), ("accepted", "int64"), ("review", "int64"),
                                        ("rejected", "int64"), ("random_weights", "bool")]
    counts = validated.summary.set_index("culture")[["accepted", "review", "rejected"]].sum()
    assert counts.sum() == len(validated.records) == validated.report.input["records"]
    assert validated.records["status"].value_counts(sort=False).to_dict() == counts.to_dict()


def test_a_record_points_at_its_findings(validated):
    records, findings = validated.records, validated.findings
    held = records[records["issues"].map(len) > 0].iloc[0]
    assert set(findings.loc[held["issues"], "record"]) == {held["key"]}


def test_load_report_reads_the_folder_reports_and_file(validated):
    folder = validated.folder
    for path in (folder, folder / "reports", folder / "reports" / "report.json"):
        again = ccub.load_report(path)
        assert again.findings.equals(validated.findings) and again.records.equals(validated.records)
    from ccub.recordfile import RecordError

    with pytest.raises(RecordError, match="not found"):
        ccub.load_report(folder / "nowhere")


def test_benchmark_frames_have_exact_types():
    bench = ccub.load_benchmark(SMOKE / "benchmark")
    assert kinds(bench.results) == [
        ("culture", CAT), ("model", CAT), ("prompt", CAT), ("prompt_text", STR), ("level", CAT), ("seed", "Int64"),
        ("metric", CAT), ("value", "float64"), ("random_weights", "bool"), ("smoke_run", "bool")]
    assert kinds(bench.summary) == [
        ("culture", CAT), ("level", CAT), ("metric", CAT), ("model", CAT), ("baseline", CAT), ("n_prompts", "Int64"),
        ("n_pairs", "Int64"), ("base_mean", "float64"), ("model_mean", "float64"), ("difference", "float64"),
        ("ci_low", "float64"), ("ci_high", "float64"), ("confidence", "float64"), ("interval_method", CAT),
        ("pairing", CAT), ("win_rate", "float64"), ("p_value", "float64"), ("p_adjusted", "float64"),
        ("higher_is_better", "bool"), ("random_weights", "bool"), ("smoke_run", "bool")]
    results = bench.results
    assert list(results["model"].cat.categories) == ["base", "korea-MPC", "korea-M"], "benchmark.json's order"
    images, prompts = results[results["level"] == "image"], results[results["level"] == "prompt"]
    assert len(images) and len(prompts) and images["seed"].notna().all() and prompts["seed"].isna().all()
    summary = bench.summary
    sets = summary[summary["level"] == "set"]
    assert len(sets) and sets["n_prompts"].isna().all()
    assert summary.loc[summary["level"] != "set", "n_prompts"].notna().all()
    # The files' columns, in docs/outputs.md's order, plus what the frame adds.
    documented = documented_columns()
    assert [c for c in results.columns if c not in ("culture", "smoke_run")] == documented["results.csv"]
    assert [c for c in summary.columns if c not in ("culture", "smoke_run")] == documented["summary.csv"]
    # The API reads what `ccub benchmark-table` reads: the same values.
    from benchmark.table import read_source

    rows = read_source(SMOKE / "benchmark").rows
    assert results["value"].tolist() == [r.value for r in rows]


def test_study_frames_have_exact_types():
    study = ccub.load_study(SMOKE / "analysis")
    common = [("culture", CAT), ("study_id", STR), ("group", CAT), ("smoke_run", "bool"), ("simulated", "bool")]
    assert kinds(study.rankings) == [*common, ("question", CAT), ("model", CAT), ("rank", "int64"),
                                     ("theta", "float64"), ("ci_low", "float64"), ("ci_high", "float64"),
                                     ("reference", CAT), ("p_beats_reference", "float64"), ("p_low", "float64"),
                                     ("p_high", "float64"), ("mean_rank", "float64"), ("rankings", "int64"),
                                     ("participants", "int64")]
    assert kinds(study.win_rates) == [*common, ("question", CAT), ("model", CAT), ("opponent", CAT),
                                      ("wins", "int64"), ("comparisons", "int64"), ("win_rate", "float64")]
    assert kinds(study.agreement) == [*common, ("question", CAT), ("kendall_w", "float64"), ("chance", "float64"),
                                      ("items", "int64"), ("mean_raters", "float64")]
    assert kinds(study.proxies) == [*common, ("question", CAT), ("metric", CAT), ("tau", "float64"),
                                    ("ci_low", "float64"), ("ci_high", "float64"), ("items", "int64"),
                                    ("prompts", "int64")]
    assert study.conflicts.empty, "the smoke study has no resubmission: a header of the common columns only"
    assert kinds(study.conflicts) == [*common, ("participant", STR), ("file", STR), ("finished", STR),
                                      ("counted", CAT), ("resubmission", CAT)]
    documented = documented_columns()
    for name in ("rankings", "win_rates", "agreement", "proxies", "conflicts"):
        assert list(getattr(study, name).columns) == documented[f"{name}.csv"], name
    wins = study.win_rates
    assert list(wins["model"].cat.categories) == list(wins["opponent"].cat.categories), "comparable sides"
    assert not (wins["model"] == wins["opponent"]).any()
    assert study.proxies["tau"].isna().any(), "`nan` (could not be computed) reads as NaN"


def test_flags_survive_filtering_grouping_and_concatenation(validated):
    bench = ccub.load_benchmark(SMOKE / "benchmark")
    study = ccub.load_study(SMOKE / "analysis")
    frames = {"findings": (validated.findings, "check", ["random_weights"]),
              "records": (validated.records, "status", ["random_weights"]),
              "summary": (validated.summary, "culture", ["random_weights"]),
              "results": (bench.results, "metric", ["random_weights", "smoke_run"]),
              "benchmark summary": (bench.summary, "metric", ["random_weights", "smoke_run"]),
              "rankings": (study.rankings, "question", ["smoke_run", "simulated"]),
              "win_rates": (study.win_rates, "question", ["smoke_run", "simulated"]),
              "proxies": (study.proxies, "metric", ["smoke_run", "simulated"])}
    for name, (frame, key, flags) in frames.items():
        first = frame[key].dropna().iloc[0]
        view = frame[frame[key] == first].head(3)
        assert len(view) and all(f in view.columns for f in flags), name
        assert all(view[f].dtype == bool for f in flags), name
        grouped = view.groupby(key, observed=True)[flags].any()
        assert list(grouped.columns) == flags, name
    assert bench.results["smoke_run"].all() and bench.summary["random_weights"].all()
    assert study.rankings["simulated"].all() and study.rankings["smoke_run"].all()
    assert not validated.findings["random_weights"].any()
    both = pd.concat([bench.results.head(2), bench.results.tail(2)])
    assert both["random_weights"].dtype == bool and both["smoke_run"].all()


def test_names_written_spreadsheet_escaped_come_back(tmp_path):
    from ccub.escape import spreadsheet_cell, unescape_cell

    for name in ("=HYPERLINK(\"http://x\")", "+1 run", "-lora", "@a", "plain", "-0.5", "'quoted"):
        assert unescape_cell(str(spreadsheet_cell(name))) == name
    analysis = shutil.copytree(SMOKE / "analysis", tmp_path / "analysis")
    hostile = '=HYPERLINK("http://x")'
    for path in analysis.glob("*.csv"):
        path.write_text(path.read_text(encoding="utf-8").replace("korea-MPC", spreadsheet_cell(hostile)
                                                                  .replace('"', '""').join('""')),
                        encoding="utf-8")
    study = ccub.load_study(tmp_path)  # the bundle folder holding analysis/
    assert hostile in set(study.rankings["model"]) and "korea-MPC" not in set(study.rankings["model"])


def test_a_wrong_cell_is_refused_naming_file_and_column(tmp_path):
    analysis = shutil.copytree(SMOKE / "analysis", tmp_path / "analysis")
    rankings = analysis / "rankings.csv"
    rankings.write_text(rankings.read_text(encoding="utf-8").replace(",True,True,", ",yes,True,", 1),
                        encoding="utf-8")
    with pytest.raises(ValueError, match=r"rankings\.csv: column smoke_run: 'yes' is not True or False"):
        ccub.load_study(analysis)
    from benchmark.table import TableError

    with pytest.raises(TableError, match="benchmark the run first"):
        ccub.load_benchmark(tmp_path)
    with pytest.raises(FileNotFoundError, match="ccub study analyze"):
        ccub.load_study(tmp_path / "nowhere")


def test_the_command_line_does_not_import_pandas(tmp_path):
    """`ccub validate` must not pay for pandas: the API imports it when a frame is built."""
    script = textwrap.dedent(f"""
        import contextlib, sys
        import ccub
        from ccub.cli import app
        with contextlib.suppress(SystemExit):
            app(["validate", {str(EXAMPLES)!r}, "--out", {str(tmp_path / "out")!r}, "--workers", "1"],
                standalone_mode=False)
        print("PANDAS=" + str("pandas" in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "PANDAS=False" in done.stdout, done.stdout + done.stderr
