"""`ccub benchmark`: a fine-tuned run against its base model on the culture's prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ccub.commands.common import (
    ConfigOption,
    console,
    fail,
    load_config,
    main_process,
    model_stack,
    smoke_banner,
    staged_progress,
)


def benchmark(
    model: Annotated[Path, typer.Option("--model", help="A `ccub finetune` run folder (runs/NAME).")],
    compare: Annotated[list[Path] | None, typer.Option(
        help="More runs in the same table: --compare runs/y runs/z (or repeat the option).")] = None,
    more: Annotated[list[Path] | None, typer.Argument(
        help="Further runs to compare (what follows --compare runs/y).", show_default=False)] = None,
    culture: Annotated[str | None, typer.Option(help="Culture to benchmark (default: the run's).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="A prompt suite (TOML or CSV) instead of the built-in one.",
                                                 dir_okay=False)] = None,
    seeds: Annotated[int | None, typer.Option(help="Images per prompt and model.", min=1)] = None,
    clip: Annotated[str | None, typer.Option(help="CLIP scorer: MODEL:PRETRAINED (open_clip, local cache), a "
                                                  "checkpoint path, or 'tiny' (random weights).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Image cache (default: .ccub-benchmark-cache beside the run).")]
    = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when present).")] = None,
    config: ConfigOption = None,
) -> None:
    """Compare a fine-tuned run with its base model on the culture's prompts (paired, with intervals).

    Exit codes: 0 done; 2 the run could not start.
    """
    from benchmark.run import BenchmarkError, Options, run_benchmark, smoke_settings
    from benchmark.runs import RunError
    from ccub.models import ModelUnavailable

    cfg = load_config(config)
    model_stack()
    options = Options(run=model, compare=[*(compare or []), *(more or [])], culture=culture, prompts=prompts,
                      seeds=seeds, clip=clip, cache=cache, device=device)
    # A --config file sets the steps and seeds exactly.
    if config is None and smoke_settings(options, cfg):
        smoke_banner(f"{model} was trained with RANDOM WEIGHTS; benchmarking it with {cfg.benchmark.steps} steps "
                     f"and {options.seeds} seeds (a --config file sets them exactly).")
    with staged_progress() as on_progress:
        try:
            outcome = run_benchmark(options, cfg, on_progress)
        except (BenchmarkError, RunError, ModelUnavailable, ValueError) as exc:
            fail(exc, cause=exc)
    if main_process():
        print_benchmark_summary(outcome)


def print_benchmark_summary(outcome: Any) -> None:
    from benchmark.report import PROXY, SET_DIGITS, SMOKE, difference_text, significant

    if outcome.smoke_run:
        console.print(f"[bold yellow]{SMOKE}[/]", highlight=False)
    # Means per model and sample sizes are in summary.md; the console keeps what fits 80 columns.
    table = Table(title="fine-tuned minus base, paired by (prompt, seed)")
    for column in ("metric", "model", "difference [95% CI]", "win", "p adj."):
        table.add_column(column, no_wrap=True)
    for c in outcome.comparisons:
        sign = "↑" if c.higher_is_better else "↓"
        table.add_row(f"{c.metric} {sign}", c.model, difference_text(c), f"{c.win_rate:.2f}",
                      significant(c.p_adjusted))
    console.print(table)
    for metric, per_model in outcome.sets.items():
        values = ", ".join(f"{m} {significant(v, SET_DIGITS)}" for m, v in per_model.items())
        console.print(f"{metric}: {values}", highlight=False)
    for note in outcome.notes:
        console.print(note, highlight=False, markup=False)
    counts = ", ".join(f"{v} {k}" for k, v in outcome.counts.items())
    console.print(f"{counts}; {outcome.generated} image(s) generated now, the rest from the cache.", highlight=False)
    console.print(PROXY, highlight=False)
    console.print(f"outputs: {outcome.output} (results.csv, summary.csv, summary.md, report.html)", highlight=False)
