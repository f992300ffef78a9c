"""`ccub benchmark`: a fine-tuned run against its base model on the culture's prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ccub.commands.common import (
    ConfigOption,
    console,
    err,
    fail,
    load_config,
    main_process,
    model_stack,
    settings_block,
    smoke_banner,
    staged_progress,
)


def benchmark(
    model: Annotated[str | None, typer.Option("--model", metavar="REF", help=(
        "A model: a `ccub finetune` run folder (runs/NAME), base:MODEL (a hub id, folder or tiny preset) or "
        "lora:FILE.safetensors[@SCALE] (a diffusers/peft or kohya LoRA on --base); not with --images."))] = None,
    compare: Annotated[list[str] | None, typer.Option(
        metavar="REF", help="More models in the same table: --compare runs/y lora:z.safetensors (or repeat the "
                            "option).")] = None,
    more: Annotated[list[str] | None, typer.Argument(
        metavar="REF", help="Further models to compare (what follows --compare runs/y).", hidden=True,
        show_default=False)] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="Base model of lora: references (default: the first run's, or the first base:MODEL).")]
    = None,
    baseline: Annotated[str | None, typer.Option(
        help="Name of the model the others are compared with (default: base, the base model; with --images the "
             "model named 'base', else the map's first).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "--out", help="Output folder (default: RUN/benchmark for a run, benchmarks/NAME for other "
                                  "models, runs/FOLDER/benchmark for --images).", file_okay=False)] = None,
    culture: Annotated[str | None, typer.Option(help="Culture to benchmark (default: the run's).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="A prompt suite (TOML or CSV) instead of the built-in one.",
                                                 dir_okay=False)] = None,
    seeds: Annotated[int | None, typer.Option(help="Images per prompt and model.", min=1)] = None,
    clip: Annotated[str | None, typer.Option(help="CLIP scorer: MODEL:PRETRAINED (open_clip, local cache), a "
                                                  "checkpoint path, or 'tiny' (random weights).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Image cache (default: .ccub-benchmark-cache beside the run).")]
    = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when present).")] = None,
    allow_withdrawn: Annotated[bool, typer.Option(
        "--allow-withdrawn", help="Benchmark a run trained on data whose consent was withdrawn (`ccub withdraw` "
                                  "marked it).")] = False,
    images: Annotated[Path | None, typer.Option(
        "--images", help="Instead of --model: a folder of images made elsewhere, with a map (images.csv or "
                         "images.jsonl in it, or --map) naming each file's model, prompt, seed and culture.",
        file_okay=False)] = None,
    map_file: Annotated[Path | None, typer.Option(
        "--map", help="The map of --images (CSV or JSON lines; default FOLDER/images.csv).", dir_okay=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Compare a fine-tuned run with its base model on the culture's prompts (paired, with intervals),
    or score images made elsewhere (--images).

    Exit codes: 0 done; 2 the run could not start.
    """
    if images is not None or model is None:
        if model is not None or compare or more or images is None:
            fail("give either --model RUN (with --compare) or --images FOLDER")
        benchmark_images(images, map_file, culture, prompts, clip, device, baseline, output, config)
        return
    if map_file:
        fail("--map goes with --images")
    from benchmark.run import BenchmarkError, Options, plan_benchmark, run_benchmark, smoke_settings
    from benchmark.runs import RunError
    from ccub.models import ModelUnavailable
    from ccub.vocab import Vocabulary, unknown

    cfg = load_config(config)
    vocab = Vocabulary(cfg)
    if culture and vocab.culture(culture) is None:
        fail(unknown("culture", culture, vocab.cultures, "declare a new one in ccub.toml (see `ccub config --write`)"))
    if not allow_withdrawn:
        from ccub.steward.withdraw import refusal

        refused = refusal(Path(r) for r in (model, *(compare or []), *(more or [])) if Path(r).is_dir())
        if refused:
            fail(refused)
    model_stack()
    options = Options(run=model, compare=[*(compare or []), *(more or [])], culture=culture, prompts=prompts,
                      seeds=seeds, clip=clip, cache=cache, device=device, base=base, baseline=baseline,
                      output=output)
    # A --config file sets the steps and seeds exactly.
    if config is None and smoke_settings(options, cfg):
        smoke_banner(f"a model has RANDOM WEIGHTS (tiny); benchmarking with {cfg.benchmark.steps} steps "
                     f"and {options.seeds} seeds (a --config file sets them exactly).")
    try:
        plan = plan_benchmark(options, cfg)
    except (BenchmarkError, RunError, ModelUnavailable, ValueError) as exc:
        fail(exc, cause=exc)
    if main_process():
        from finetune.runtime import pick_device

        where = device or pick_device()
        settings_block("ccub benchmark", plan.rows(where, config))
        warning = generation_warning(plan, where)
        if warning:
            err.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    units = {"scoring": "images", "LPIPS": "images"} | {f"generating: {m.name}": "images" for m in plan.models}
    with staged_progress(units=units) as on_progress:
        try:
            outcome = run_benchmark(options, cfg, on_progress if main_process() else None, plan)
        except (BenchmarkError, RunError, ModelUnavailable, ValueError) as exc:
            fail(exc, cause=exc)
    if main_process():
        print_benchmark_summary(outcome)


def benchmark_images(images: Path, map_file: Path | None, culture: str | None, prompts: Path | None,
                     clip: str | None, device: str | None, baseline: str | None, out: Path | None,
                     config: Path | None) -> None:
    """`ccub benchmark --images FOLDER`: score images made elsewhere (benchmark/external.py)."""
    from benchmark.external import ExternalOptions, external_out, run_external
    from benchmark.run import BenchmarkError
    from ccub.models import ModelUnavailable
    from ccub.vocab import Vocabulary, unknown

    cfg = load_config(config)
    vocab = Vocabulary(cfg)
    if culture and vocab.culture(culture) is None:
        fail(unknown("culture", culture, vocab.cultures, "declare a new one in ccub.toml (see `ccub config --write`)"))
    model_stack()
    options = ExternalOptions(images=images, map=map_file, culture=culture, prompts=prompts, clip=clip,
                              device=device, out=out, baseline=baseline)
    clip_name = clip or cfg.benchmark.clip
    settings_block("ccub benchmark", {
        "images": f"{images} (made elsewhere; no generator, no random-weights claim for it)",
        "map": str(map_file or "images.csv or images.jsonl in the folder"),
        "scorer": f"CLIP {clip_name}" + (" (RANDOM WEIGHTS)" if clip_name == "tiny" else ""),
        "output": str(external_out(options)),
        "config": str(config or ("./ccub.toml" if Path("ccub.toml").is_file() else "none (built-in defaults)"))})
    with staged_progress(units={"scoring": "images", "LPIPS": "images"}) as on_progress:
        try:
            outcome = run_external(options, cfg, on_progress)
        except (BenchmarkError, ModelUnavailable, ValueError) as exc:
            fail(exc, cause=exc)
    for problem in outcome.problems:
        err.print("map row not used: " + problem, highlight=False, markup=False)
    print_benchmark_summary(outcome)


def generation_warning(plan: Any, device: str) -> str | None:
    """On a CPU with a real-size base model: how long generation will take (an estimate)."""
    from finetune import estimate as est

    base = plan.models[0]
    if not device.startswith("cpu") or base.random_weights or not est.real_size(base.base):
        return None
    images = len(plan.prompts) * len(plan.seeds) * len(plan.models)
    try:
        arch = est.read_architecture(base.base_source)
    except Exception:  # noqa: BLE001 - an estimate must never stop a run
        arch = None
    if arch is None:
        return f"generating {images} images with {base.base} on a CPU: hours at least; use a GPU (docs/gpu.md)"
    s = plan.settings
    seconds = est.generation_seconds(arch, images, s.steps, s.resolution, est.cpu_flops())
    return (f"generating {images} images with {base.base} on a CPU: about {est.duration(seconds)} (an estimate from "
            f"its {arch.unet_params / 1e6:.0f} M-parameter UNet, {s.steps} steps each; cached images are skipped); "
            f"use a GPU (docs/gpu.md)")


def print_benchmark_summary(outcome: Any) -> None:
    from benchmark.report import PROXY, SET_DIGITS, SMOKE, significant

    if outcome.smoke_run:
        console.print(f"[bold yellow]{SMOKE}[/]", highlight=False)
    # Means per model and sample sizes are in summary.md. Within 80 columns names wrap, never
    # cut, and the numbers keep two significant digits (full precision in the CSV files).
    unpaired = any(getattr(c, "pairing", "paired") != "paired" for c in outcome.comparisons)
    baseline = outcome.comparisons[0].baseline if outcome.comparisons else "base"
    title = (f"each model minus {baseline}, paired by (prompt, seed) or unpaired" if unpaired
             else "fine-tuned minus base, paired by (prompt, seed)")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("metric", "model"):
        table.add_column(column, overflow="fold", ratio=1)
    for column in ("diff.", "95% CI", "win", "p adj.", *(("pairing",) if unpaired else ())):
        table.add_column(column, no_wrap=True, justify="right")
    previous = None
    for c in outcome.comparisons:
        sign = "↑" if c.higher_is_better else "↓"
        table.add_row(f"{c.metric} {sign}" if c.metric != previous else "", c.model,
                      significant(c.difference, signed=True),
                      f"[{significant(c.ci_low, signed=True)}, {significant(c.ci_high, signed=True)}]",
                      f"{c.win_rate:.2f}", significant(c.p_adjusted), *((c.pairing,) if unpaired else ()))
        previous = c.metric
    console.print(table)
    for metric, per_model in outcome.sets.items():
        values = ", ".join(f"{m} {significant(v, SET_DIGITS)}" for m, v in per_model.items())
        console.print(f"{metric}: {values}", highlight=False)
    for note in outcome.notes:
        console.print(note, highlight=False, markup=False)
    counts = ", ".join(f"{v} {k}" for k, v in outcome.counts.items())
    made = (f"{outcome.generated} image(s) generated now, the rest from the cache" if "map rows" not in outcome.counts
            else "images made elsewhere")
    console.print(f"{counts}; {made}.", highlight=False)
    console.print(PROXY, highlight=False)
    console.print(f"outputs: {outcome.output} (results.csv, summary.csv, summary.md, report.html)", highlight=False)
