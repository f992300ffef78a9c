"""`ccub benchmark-table`: benchmarks of several cultures as one table (models x metrics, a block per culture)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers import undocumented_columns
from typer.testing import CliRunner

from benchmark import stats
from benchmark.generate import Settings
from benchmark.metric_rows import RESULTS_COLUMNS, MetricRow, write_rows
from benchmark.record import BenchmarkRecord
from benchmark.table import POOLED, TableError, cross_table
from ccub.cli import app

HOSTILE = '=HYPERLINK("http://x")<img src=x onerror=alert(1)>|*'


def make_benchmark(folder: Path, culture: str, values: dict[str, dict[str, list[float]]], *, clip: str = "ViT-B-32",
                   smoke: bool = False, seeds: tuple[int, ...] = (0, 1), vendi: dict | None = None) -> Path:
    """A benchmark folder as `ccub benchmark` writes it: values[model][prompt] = clip_score per seed;
    vendi[model][prompt] = one prompt-level value."""
    prompts = sorted({p for per in values.values() for p in per})
    record = BenchmarkRecord(
        culture=culture, clip=clip, clip_random_weights=smoke, smoke_run=smoke, suite="built-in",
        settings=asdict(Settings()), seeds=list(seeds),
        models=[{"name": m, "key": m, "base": "sd-1.5", "lora": None if m == "base" else f"/nowhere/{m}/lora",
                 "random_weights": smoke} for m in values],
        prompts=[{"id": p, "text": f"{p} in {culture}"} for p in prompts], images=[])
    folder.mkdir(parents=True)
    record.write(folder / "benchmark.json")
    rows = [MetricRow(model=m, prompt=p, seed=s, metric="clip_score", value=v, random_weights=smoke)
            for m, per in values.items() for p, seeded in per.items() for s, v in zip(seeds, seeded, strict=True)]
    rows += [MetricRow(model=m, prompt=p, seed=None, metric="vendi", value=v, random_weights=smoke)
             for m, per in (vendi or {}).items() for p, v in per.items()]
    write_rows(folder / "results.csv", rows, RESULTS_COLUMNS)
    return folder


# Four prompts in India: the interval needs at least four (benchmark.stats); Korea's two have none.
INDIA = {"base": {"p1": [30.0, 32.0], "p2": [20.0, 22.0], "p3": [25.0, 25.0], "p4": [28.0, 28.0]},
         "MPC": {"p1": [33.0, 35.0], "p2": [21.0, 21.0], "p3": [28.0, 30.0], "p4": [30.0, 30.0]}}
KOREA = {"base": {"q1": [10.0, 12.0], "q2": [14.0, 14.0]},
         "MPC": {"q1": [15.0, 15.0], "q2": [16.0, 18.0]},
         "M": {"q1": [11.0, 11.0], "q2": [14.0, 16.0]}}


@pytest.fixture
def two_cultures(tmp_path: Path) -> list[Path]:
    return [make_benchmark(tmp_path / "india" / "MPC" / "benchmark", "india", INDIA,
                           vendi={"base": {"p1": 1.5, "p2": 1.2, "p3": 1.9, "p4": 1.4},
                                  "MPC": {"p1": 1.6, "p2": 1.3, "p3": 2.0, "p4": 1.5}}),
            make_benchmark(tmp_path / "korea" / "MPC" / "benchmark", "korea", KOREA)]


def test_means_and_pooled_block_match_hand_computed_numbers(two_cultures):
    table = cross_table(two_cultures, n_boot=2000)
    assert table.cultures == ["india", "korea", POOLED]
    assert table.models == ["base", "M", "MPC"], "base first, then the variants in the paper's order"
    assert table.metrics == ["clip_score", "vendi"]
    cell = table.cell("india", "base", "clip_score")
    # per-prompt means 31, 21, 25, 28 -> 26.25
    assert cell.mean == pytest.approx(105 / 4) and cell.n_prompts == 4
    assert cell.ci_low <= cell.mean <= cell.ci_high
    assert table.cell("india", "MPC", "clip_score").mean == pytest.approx((34 + 21 + 29 + 30) / 4)
    assert table.cell("korea", "MPC", "clip_score").mean == pytest.approx((15 + 17) / 2)
    # Pooled: the 6 prompts weigh the same (not the mean of the two culture means).
    pooled = table.cell(POOLED, "base", "clip_score")
    assert pooled.mean == pytest.approx((31 + 21 + 25 + 28 + 11 + 14) / 6) and pooled.n_prompts == 6
    mpc = table.cell(POOLED, "MPC", "clip_score")
    assert mpc.mean == pytest.approx((34 + 21 + 29 + 30 + 15 + 17) / 6)
    # Differences: per prompt 3, 0, 4, 2 (india) and 4, 3 (korea).
    assert mpc.difference == pytest.approx((3 + 0 + 4 + 2 + 4 + 3) / 6)
    assert mpc.runs == "MPC; MPC" and table.cell("india", "base", "clip_score").runs == ""
    # M is benchmarked in Korea only: in its block, not in the pooled one.
    assert table.cell("korea", "M", "clip_score") is not None and table.cell(POOLED, "M", "clip_score") is None
    assert any("not in the pooled block" in n and "M" in n for n in table.notes)
    # vendi (prompt level) is measured in India only: no pooled value (it would be India's).
    assert table.cell("india", "MPC", "vendi").mean == pytest.approx((1.6 + 1.3 + 2.0 + 1.5) / 4)
    assert table.cell(POOLED, "MPC", "vendi") is None and table.cell(POOLED, "base", "vendi") is None
    assert any("no pooled value" in n and "vendi" in n for n in table.notes)


def test_differences_are_the_per_run_comparisons(two_cultures):
    """A culture's difference and interval are `stats.compare` of the run against its base, as summary.csv."""
    table = cross_table(two_cultures, n_boot=500)
    keys = [(p, s) for p in ("p1", "p2", "p3", "p4") for s in (0, 1)]
    expected = stats.compare("clip_score", "MPC", "base", [k[0] for k in keys], [k[1] for k in keys],
                             [INDIA["base"][p][s] for p, s in keys], [INDIA["MPC"][p][s] for p, s in keys], n_boot=500)
    cell = table.cell("india", "MPC", "clip_score")
    assert (cell.difference, cell.diff_ci_low, cell.diff_ci_high, cell.p_value) == pytest.approx(
        (expected.difference, expected.ci_low, expected.ci_high, expected.p_value))
    assert math.isnan(table.cell("india", "base", "clip_score").difference)
    assert all(0 <= c.p_adjusted <= 1 for c in table.cells if c.model != "base" and c.n_prompts >= 2)


def test_cli_writes_markdown_csv_and_html(two_cultures, tmp_path):
    out = tmp_path / "table"
    result = CliRunner().invoke(app, ["benchmark-table", *map(str, two_cultures), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "blocks: india, korea, pooled" in result.output
    md = (out / "table.md").read_text()
    assert "| culture | model | clip\\_score ↑ | vendi ↑ |" in md
    assert "| india | base | 26.2 \\[" in md and "| pooled | base | 21.7 \\[" in md
    assert "SMOKE RUN" not in md and "## Means [95% CI]" in md and "## Fine-tuned minus base [95% CI]" in md
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert list(rows[0]) == ["culture", "model", "runs", "metric", "higher_is_better", "mean", "ci_low", "ci_high",
                             "n_prompts", "difference", "diff_ci_low", "diff_ci_high", "p_value", "p_adjusted",
                             "confidence", "random_weights"]
    pooled = next(r for r in rows if (r["culture"], r["model"], r["metric"]) == ("pooled", "base", "clip_score"))
    assert float(pooled["mean"]) == pytest.approx(130 / 6) and pooled["n_prompts"] == "6"
    assert "<table>" in (out / "table.html").read_text()
    assert undocumented_columns(out) == {}, "docs/outputs.md lacks these columns"


def test_mixed_clip_scorers_are_refused(tmp_path):
    a = make_benchmark(tmp_path / "a" / "benchmark", "india", INDIA)
    b = make_benchmark(tmp_path / "b" / "benchmark", "korea", KOREA, clip="ViT-L-14")
    with pytest.raises(TableError, match="different CLIP scorers"):
        cross_table([a, b])
    result = CliRunner().invoke(app, ["benchmark-table", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2 and "different CLIP scorers" in result.output and "ViT-L-14" in result.output
    assert not (tmp_path / "out").exists()
    steps = make_benchmark(tmp_path / "steps" / "benchmark", "korea", KOREA)
    record = BenchmarkRecord.read(steps / "benchmark.json")
    record.settings = {**record.settings, "steps": 4, "batch_size": 2}
    record.write(steps / "benchmark.json")
    with pytest.raises(TableError, match="different generation settings.*steps.: 4"):
        cross_table([a, steps])
    batch = make_benchmark(tmp_path / "batch" / "benchmark", "korea", KOREA)
    record = BenchmarkRecord.read(batch / "benchmark.json")
    record.settings = {**record.settings, "batch_size": 2}  # changes nothing an image shows
    record.write(batch / "benchmark.json")
    assert cross_table([a, batch], n_boot=100).cultures == ["india", "korea", POOLED]
    c = make_benchmark(tmp_path / "c" / "benchmark", "korea", KOREA, seeds=(3, 4))
    assert any("different seeds" in w for w in cross_table([a, c], n_boot=100).warnings)
    missing = CliRunner().invoke(app, ["benchmark-table", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "ccub benchmark --model" in missing.output


def test_hostile_run_names_are_escaped_and_smoke_is_carried(tmp_path):
    values = {"base": INDIA["base"], HOSTILE: INDIA["MPC"]}
    folder = make_benchmark(tmp_path / "x" / "benchmark", "india", values, smoke=True)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["benchmark-table", str(folder), "--out", str(out), "--metric", "clip_score"])
    assert result.exit_code == 0, result.output
    assert "RANDOM WEIGHTS" in result.output
    md = (out / "table.md").read_text()
    assert "SMOKE RUN" in md and "<img" not in md.replace("\\<", "") and "\\<img src=x onerror=alert(1)\\>\\|\\*" in md
    html = (out / "table.html").read_text()
    assert "SMOKE RUN" in html and "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    text = (out / "table.csv").read_text()
    assert "'=HYPERLINK" in text and "\n=" not in text and ",=" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and all(r["random_weights"] == "True" for r in rows)


# --------------------------------------------------------------------------- end to end, tiny models

try:
    import diffusers  # noqa: F401
except ImportError:  # the benchmark's own tests skip then too
    HAS_DIFFUSERS = False
else:
    HAS_DIFFUSERS = True
    from test_benchmark_run import runs  # noqa: F401  (the module's tiny runs fixture)

INDIA_SUITE = """
[[prompt]]
culture = "india"
category = "FOOD"
text = "A table of food in India"
generic = "A table of food"

[[prompt]]
culture = "india"
category = "CITIES"
text = "Photo of a street, in India"
generic = "Photo of a street"
"""


@pytest.mark.skipif(not HAS_DIFFUSERS, reason="diffusers is not installed")
def test_two_cultures_end_to_end_on_tiny_models(runs, tmp_path):  # noqa: F811
    """`ccub benchmark` of two runs for Korea, then for India; `ccub benchmark-table` of both."""
    import shutil

    toml = tmp_path / "ccub.toml"
    toml.write_text("[benchmark]\nsteps = 2\nclip = \"tiny\"\nbootstrap = 200\n")
    (tmp_path / "india.toml").write_text(INDIA_SUITE)
    common = ["--seeds", "2", "--cache", str(tmp_path / "cache"), "--config", str(toml), "--device", "cpu",
              "--compare", str(runs["lora"])]
    done = CliRunner().invoke(app, ["benchmark", "--model", str(runs["M"]), "--prompts", str(runs["suite"]), *common])
    assert done.exit_code == 0, done.output
    korea = tmp_path / "korea-benchmark"
    shutil.copytree(runs["M"] / "benchmark", korea)
    done = CliRunner().invoke(app, ["benchmark", "--model", str(runs["M"]), "--culture", "india", "--prompts",
                                    str(tmp_path / "india.toml"), *common])
    assert done.exit_code == 0, done.output
    out = tmp_path / "table"
    done = CliRunner().invoke(app, ["benchmark-table", str(korea), str(runs["M"]), "--out", str(out), "--config",
                                    str(toml)])
    assert done.exit_code == 0, done.output
    assert "RANDOM WEIGHTS" in done.output and "blocks: korea, india, pooled" in done.output
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    # Rows are named by the runs' variants (from run.json), so both cultures share them and pool.
    assert {(r["culture"], r["model"]) for r in rows} == {
        (c, m) for c in ("korea", "india", "pooled") for m in ("base", "lora", "M")}
    assert all(r["random_weights"] == "True" for r in rows)
    pooled = [r for r in rows if r["culture"] == "pooled" and r["metric"] == "clip_score"]
    assert {r["n_prompts"] for r in pooled} == {"5"}, "3 Korean + 2 Indian prompts"
    # A culture's differences are its summary.csv's (same bootstrap settings).
    summary = list(csv.DictReader((runs["M"] / "benchmark" / "summary.csv").open()))
    for s in (s for s in summary if s["level"] != "set"):
        label = {"korea-M": "M", "korea-lora": "lora"}[s["model"]]
        cell = next(r for r in rows if (r["culture"], r["model"], r["metric"]) == ("india", label, s["metric"]))
        assert float(cell["difference"]) == pytest.approx(float(s["difference"]), nan_ok=True)
        assert float(cell["diff_ci_low"]) == pytest.approx(float(s["ci_low"]), nan_ok=True)
    md = (out / "table.md").read_text()
    assert "SMOKE RUN" in md and "| korea | base |" in md and "| pooled | base |" in md
    assert "runs: korea: lora = korea-lora, M = korea-M" in md
    assert "SMOKE RUN" in (out / "table.html").read_text()


def test_a_benchmark_marked_withdrawn_is_refused_unless_allowed(tmp_path):
    from ccub.steward.withdraw import AFFECTED_FILE, AffectedMark

    folder = make_benchmark(tmp_path / "india-MPC" / "benchmark", "india", INDIA)
    AffectedMark(kind="benchmark", marked_at="2025-01-01T00:00:00", items=1, contributors=0).write(
        folder / AFFECTED_FILE)
    args = ["benchmark-table", str(tmp_path / "india-MPC"), "--out", str(tmp_path / "out")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "withdrawn" in refused.output and not (tmp_path / "out").exists()
    assert CliRunner().invoke(app, [*args, "--allow-withdrawn"]).exit_code == 0
