"""`ccub benchmark-table`: several cultures' benchmarks as one table (models x metrics, a block per culture)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ccub.commands.common import ConfigOption, console, err, fail, load_config, smoke_banner


def benchmark_table(
    runs: Annotated[list[Path], typer.Argument(
        metavar="RUN", help="Run folders benchmarked with `ccub benchmark` (runs/NAME), or their benchmark/ "
                            "folders.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder for table.md, table.csv and table.html.")]
    = Path("runs/benchmark-table"),
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", metavar="METRIC", help="Only these metrics, in this order (repeat the option; default: "
                                           "every metric with an interval).")] = None,
    allow_withdrawn: Annotated[bool, typer.Option(
        "--allow-withdrawn", help="Use benchmarks of data whose consent was withdrawn (`ccub withdraw` marked "
                                  "them).")] = False,
    config: ConfigOption = None,
) -> None:
    """One table of existing benchmarks: models as rows, metrics as columns, a block per culture and a pooled block.

    Reads each run's benchmark/benchmark.json and results.csv; generates and scores nothing.
    Exit codes: 0 done; 2 the table could not be made.
    """
    from benchmark.table import TableError, cross_table, write_table

    cfg = load_config(config)
    if not allow_withdrawn:
        from ccub.steward.withdraw import refusal

        refused = refusal(runs)
        if refused:
            fail(refused)
    b = cfg.benchmark
    try:
        table = cross_table(runs, n_boot=b.bootstrap, confidence=b.confidence, correction=b.correction,
                            metrics=metric or None)
        files = write_table(out, table)
    except (TableError, OSError) as exc:
        fail(exc, cause=exc)
    if table.smoke:
        smoke_banner("some benchmarks were made with RANDOM WEIGHTS (tiny models or a random CLIP); the table's "
                     "numbers mean nothing.")
    for warning in table.warnings:
        err.print("warning: " + warning, highlight=False, markup=False)
    blocks = ", ".join(table.cultures)
    console.print(f"{len(table.models)} models x {len(table.metrics)} metrics; blocks: {blocks}", highlight=False,
                  markup=False)
    for note in table.notes:
        console.print(note, highlight=False, markup=False)
    console.print(f"outputs: {out} ({', '.join(f.name for f in files)})", highlight=False, markup=False)
