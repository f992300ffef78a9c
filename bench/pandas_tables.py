"""Would pandas make ccub's hand-written tables simpler or faster? Seconds of each table's current code
path and of a pandas version of it, in the same run, on a realistic size.

The pandas versions live here only: they are what a change would have put in place. The two
candidates are the tables that are pivots of rows:

- `benchmark/table.py` `cross_table`'s per-(model, metric) value lookup (`_values`, a scan of the
  benchmark's rows per cell) against one pandas groupby per benchmark; the whole `cross_table`
  (whose time is the bootstrap of each cell) is timed beside them, for scale;
- `benchmark/study/outputs.py` `proxy_matrix` (metrics x questions) against `DataFrame.pivot`.

    python bench/pandas_tables.py                        # 4 cultures, 50 prompts, 8 seeds, 3 models
    python bench/pandas_tables.py --prompts 200 --repeat 5

Measured when the Python API came (pandas 3.1.1, a shared 2-core machine, the defaults): the lookup
0.028 s in ccub, 0.065 s with pandas (x2.3), 1.9% of a 1.5 s cross_table; proxy_matrix 0.03 ms
against 2 ms (x65). Neither pandas version is shorter than the code it would replace, so ccub
keeps its code: pandas is used by the Python API (ccub/api.py) only.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def write_benchmarks(top: Path, cultures: int, prompts: int, seeds: int, models: list[str]) -> list[Path]:
    """Benchmark folders as `ccub benchmark` writes them, with every image- and prompt-level metric."""
    from benchmark.evaluate import METRICS
    from benchmark.generate import Settings
    from benchmark.metric_rows import RESULTS_COLUMNS, MetricRow, write_rows
    from benchmark.record import BenchmarkRecord

    rng = np.random.default_rng(0)
    folders = []
    for c in range(cultures):
        culture = ["india", "korea", "nigeria", "mexico", "china", "brazil"][c % 6]
        ids = [f"{culture}-{i}" for i in range(prompts)]
        record = BenchmarkRecord(
            culture=culture, clip="ViT-B-32", clip_random_weights=False, smoke_run=False, suite="built-in",
            settings=asdict(Settings()), seeds=list(range(seeds)),
            models=[{"name": m, "key": m, "base": "sd-1.5", "lora": None, "random_weights": False} for m in models],
            prompts=[{"id": p, "text": p} for p in ids], images=[])
        folder = top / culture / "benchmark"
        folder.mkdir(parents=True)
        record.write(folder / "benchmark.json")
        rows = []
        for metric, spec in METRICS.items():
            if spec.level == "set":
                continue
            for m in models:
                for p in ids:
                    for s in (range(seeds) if spec.level == "image" else [None]):
                        rows.append(MetricRow(m, p, s, metric, float(rng.normal())))
        write_rows(folder / "results.csv", rows, RESULTS_COLUMNS)
        folders.append(folder)
    return folders


def values_loop(sources, metrics: list[str]) -> dict:
    """ccub's path: `_values` of every (source, model, metric), as cross_table asks for them."""
    from benchmark.table import _values

    return {(id(s), m["name"], metric): _values(s, m["name"], metric)
            for s in sources for m in s.record.models for metric in metrics}


def values_pandas(sources, metrics: list[str]) -> dict:
    """The pandas version: one frame and one groupby per benchmark, then the same dicts."""
    import pandas as pd

    out = {}
    for s in sources:
        frame = pd.DataFrame({"model": [r.model for r in s.rows], "metric": [r.metric for r in s.rows],
                              "prompt": [r.prompt for r in s.rows],
                              "seed": [0 if r.seed is None else r.seed for r in s.rows],
                              "value": [r.value for r in s.rows]})
        for (model, metric), group in frame.groupby(["model", "metric"], sort=False):
            out[(id(s), model, metric)] = dict(zip(zip(group["prompt"], group["seed"], strict=True), group["value"],
                                                   strict=True))
    return out


def analysis(metrics: list[str], questions: list[str]):
    from types import SimpleNamespace

    rng = np.random.default_rng(1)
    correlations = [SimpleNamespace(question=q, metric=m, tau=float(rng.uniform(-1, 1)), low=-0.5, high=0.5, items=30)
                    for m in metrics for q in questions]
    return SimpleNamespace(questions=questions, correlations=correlations)


def proxy_pandas(a) -> tuple[list[str], list[list[str]]]:
    """`proxy_matrix(a, intervals=False)` through DataFrame.pivot."""
    import pandas as pd

    from benchmark.report import fmt

    frame = pd.DataFrame([{"metric": c.metric, "question": c.question, "tau": c.tau, "low": c.low, "high": c.high}
                          for c in a.correlations])
    frame["cell"] = [("-" if math.isnan(t) else fmt(t, 2) + ("*" if lo > 0 or hi < 0 else ""))
                     for t, lo, hi in zip(frame["tau"], frame["low"], frame["high"], strict=True)]
    grid = frame.pivot(index="metric", columns="question", values="cell").reindex(
        index=list(dict.fromkeys(frame["metric"])), columns=a.questions).fillna("-")
    return ["proxy", *a.questions], [[m, *row] for m, row in zip(grid.index, grid.to_numpy().tolist(), strict=True)]


def best_of(repeat: int, fn, *args):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cultures", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=2000, help="cross_table's resamples, for scale")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    import pandas  # noqa: F401

    import_s = time.perf_counter() - start
    from benchmark.evaluate import METRICS
    from benchmark.study.outputs import proxy_matrix
    from benchmark.table import cross_table, read_source

    models = ["base", *("M", "MP", "MPC", "lora")[: args.models - 1]]
    metrics = [m for m, spec in METRICS.items() if spec.level != "set"]
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_benchmarks(Path(tmp), args.cultures, args.prompts, args.seeds, models)
        sources = [read_source(f) for f in folders]
        rows = sum(len(s.rows) for s in sources)
        old_s, old = best_of(args.repeat, values_loop, sources, metrics)
        new_s, new = best_of(args.repeat, values_pandas, sources, metrics)
        assert old == new, "the pandas version gives other values"
        table_s, _ = best_of(1, cross_table, folders, args.bootstrap)

    a = analysis(metrics, ["alignment", "representation", "stereotypes", "offensiveness"])
    old_p, old_grid = best_of(args.repeat * 100, proxy_matrix, a, False)
    new_p, new_grid = best_of(args.repeat * 100, proxy_pandas, a)
    assert old_grid == new_grid, "the pandas pivot gives another table"

    print(f"importing pandas: {import_s:.3f} s (once per process; `ccub validate` never pays it)")
    print(f"cross_table value lookup, {args.cultures} benchmarks, {rows} rows: ccub {old_s:.4f} s, "
          f"pandas {new_s:.4f} s, ratio pandas/ccub {new_s / old_s:.2f}")
    print(f"  the whole cross_table ({args.bootstrap} bootstrap resamples per cell): {table_s:.2f} s; the lookup is "
          f"{100 * old_s / table_s:.1f}% of it")
    print(f"proxy_matrix, {len(metrics)} metrics x 4 questions: ccub {old_p * 1e3:.3f} ms, "
          f"pandas {new_p * 1e3:.3f} ms, ratio pandas/ccub {new_p / old_p:.2f}")


if __name__ == "__main__":
    main()
