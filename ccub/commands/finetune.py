"""`ccub finetune`: train a SCoFT LoRA for one culture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ccub.commands.common import (
    Reporter,
    console,
    culture_dataset,
    err,
    fail,
    load_config,
    main_process,
    model_stack,
    settings_block,
    smoke_banner,
)
from ccub.commands.prepare import refuse_release, run_prepare

UNITS = {"training": "steps", "caching text": "prompts", "caching latents": "images"}


def finetune(
    culture: Annotated[str | None, typer.Option(help="Culture slug: trains on DATA/clean/CULTURE/.")] = None,
    data: Annotated[Path, typer.Option(help="The `ccub validate --out` folder.")] = Path("data"),
    dataset: Annotated[Path | None, typer.Option(help="A prepared imagefolder instead of DATA/clean/CULTURE/.")]
    = None,
    base: Annotated[str | None, typer.Option(
        help="Base Stable Diffusion 1.x/2.x (hub id or folder; default CompVis/stable-diffusion-v1-4); 'tiny' "
             "(or 'tiny-v', v-prediction) builds a tiny random one for a smoke run on CPU.")] = None,
    variant: Annotated[str | None, typer.Option(help="lora, M, MP or MPC (SCoFT, the default).")] = None,
    backbone: Annotated[str | None, typer.Option(help="Distance of the contrastive loss: dreamsim (the "
                                                      "reference's, default), clip, dinov2, blip2, lpips, "
                                                      "vgg.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps.", min=1)] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (instead of --steps).", min=1)] = None,
    config: Annotated[Path | None, typer.Option(help="SCoFT config TOML (every hyperparameter; a run's "
                                                     "config.toml works).", dir_okay=False)] = None,
    ccub_config: Annotated[Path | None, typer.Option(
        "--ccub-config", help="ccub.toml for the cultures, the prepare settings and a [scoft] table under "
                              "--config (default: ./ccub.toml when present).", dir_okay=False)] = None,
    output: Annotated[Path | None, typer.Option(help="Run folder (default runs/CULTURE-VARIANT).")] = None,
    resume: Annotated[str | None, typer.Option(help="'latest' or a checkpoint-N folder.")] = None,
    export: Annotated[str | None, typer.Option(help="Also write kohya (A1111/ComfyUI) LoRA weights: kohya.")]
    = None,
    prepare_missing: Annotated[bool, typer.Option(
        "--prepare/--no-prepare", help="Run `ccub prepare` first when captions or negatives are missing.")] = True,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the resolved settings, dataset size, steps and estimated peak GPU memory; "
                          "load no weights, train nothing, write nothing.")] = False,
    log_every: Annotated[int | None, typer.Option(
        "--log-every", help="Without a terminal: a log line every N steps (and at least every 30 s; default: "
                            "every tenth of the run).", min=1)] = None,
) -> None:
    """Train a SCoFT LoRA for one culture (run with `accelerate launch -m ccub finetune ...` on several GPUs).

    Exit codes: 0 trained; 2 the run could not start (bad options, missing data or models).
    """
    from ccub.config import ConfigError
    from finetune.config import load_scoft_config
    from finetune.prepare import Options, culture_of, needs_preparing, prepare_if_missing
    from finetune.tiny import is_tiny, smoke_training

    overrides = {"base": base, "variant": variant, "backbone": backbone, "max_train_steps": steps,
                 "num_train_epochs": epochs, "export_kohya": True if export == "kohya" else None}
    if export not in (None, "kohya"):
        fail(f"--export {export}: the only export format is kohya")
    ccub_cfg = load_config(ccub_config)
    try:
        cfg = load_scoft_config(config, ccub_cfg, **overrides)
    except ConfigError as exc:
        fail(exc, "config error", exc)
    tiny = cfg.base if is_tiny(cfg.base) else None
    if tiny:
        cfg = smoke_training(cfg, given={k for k, v in overrides.items() if v is not None},
                             from_file=config is not None or bool(ccub_cfg.scoft))
        if main_process() and config is None:
            smoke_banner(f"--base {cfg.base} trains a tiny model with RANDOM WEIGHTS ({cfg.resolution} px, "
                         f"{cfg.max_train_steps} steps); its LoRA and samples mean nothing.")
    if dataset is None:
        if not culture:
            fail("give --culture (reads DATA/clean/CULTURE/) or --dataset FOLDER")
        dataset = culture_dataset(ccub_cfg, culture, data)
        culture = dataset.name
    elif not dataset.is_dir():
        fail(f"--dataset {dataset}: no such folder")
    model_stack()
    output = output or Path("runs") / f"{culture or dataset.name}-{cfg.variant}"
    culture = culture or culture_of(dataset, ccub_cfg)
    if main_process():
        plan = training_plan(cfg, dataset, output, culture, ccub_cfg, config, ccub_config)
        settings_block("ccub finetune" + (" --dry-run" if dry_run else ""), plan.rows)
        if plan.warning:
            err.print(f"[bold yellow]warning:[/] {plan.warning}", highlight=False)
        if dry_run:
            for line in plan.estimate_lines:
                console.print(line, highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(0)
    if main_process() and needs_preparing(dataset):
        refuse_release(dataset, "it lacks generic captions or negatives (`ccub prepare` would write them)")
    _preflight(cfg, ccub_cfg, dataset, prepare_missing and main_process() and not tiny)
    # Under `accelerate launch` the dataset must be prepared beforehand (the trainer checks).
    if prepare_missing and main_process():
        options = Options(root=dataset, culture=culture, tiny=tiny)
        run_prepare(lambda progress: prepare_if_missing(options, ccub_cfg, progress,
                                                        lambda message: err.print(message, highlight=False)))
    run_training(cfg, dataset, output, culture, resume, ccub_cfg, log_every)


class Plan:
    """What a run will do, from configs only: the settings block, a CPU warning, the estimates."""

    def __init__(self) -> None:
        self.rows: dict[str, object] = {}
        self.warning: str | None = None
        self.estimate_lines: list[str] = []


def _weights(random: bool) -> str:
    return " (RANDOM WEIGHTS)" if random else ""


def training_plan(cfg: Any, dataset: Path, output: Path, culture: str | None, ccub_cfg: Any,
                  config: Path | None, ccub_config: Path | None) -> Plan:
    from finetune import estimate as est
    from finetune.dataset import DatasetError, read_dataset, scoft_examples
    from finetune.train import mixed_precision, total_steps

    plan = Plan()
    try:
        examples = scoft_examples(read_dataset(dataset))
        images = len(examples)
        negatives = sum(len(e.negatives) for e in examples)
        size = f"{images} images, {negatives} negatives"
    except DatasetError:  # not prepared yet (prepare runs first), or broken: training says which
        try:
            images = sum(1 for _ in read_dataset(dataset).rows())
            size = f"{images} images, not ready for SCoFT yet (generic captions or negatives missing)"
        except DatasetError:
            images, size = 0, "not readable"
    steps = total_steps(cfg, max(images, 1), 1)
    device = est.training_device()
    precision = mixed_precision(cfg)
    try:
        arch = est.read_architecture(cfg.base, cfg.lora_targets)
    except Exception as exc:  # noqa: BLE001 - an estimate must never stop a run
        arch, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "its configs are not in a local folder or the Hugging Face cache"
    random = arch.random_weights if arch is not None else False
    name = ccub_cfg.cultures[culture].name if culture in ccub_cfg.cultures else None
    plan.rows = {
        "base": f"{cfg.base}{_weights(random)}",
        "culture": f"{culture} ({name})" if name else (culture or "none given"),
        "dataset": f"{dataset} ({size})",
        "variant": f"{cfg.variant} (backbone {cfg.backbone}, perceptual {cfg.perceptual}), LoRA rank {cfg.rank}",
        "steps": f"{steps} optimizer steps of {cfg.train_batch_size} x {cfg.gradient_accumulation_steps} images, "
                 f"lr {cfg.learning_rate:g} ({cfg.lr_scheduler}), {cfg.resolution} px",
        "precision": f"{precision}" + (" (auto)" if cfg.mixed_precision == "auto" else ""),
        "device": device,
        "output": str(output),
        "config": f"{config or 'defaults (no --config)'}; ccub.toml: {ccub_config or _default_toml()}",
    }
    if arch is None:
        plan.estimate_lines = [f"steps: {steps}", f"estimated peak GPU memory: unknown ({cfg.base}: {why})"]
        if device == "cpu" and est.real_size(cfg.base):
            plan.warning = (f"training {cfg.base} on a CPU: a real-size model takes days there; use a GPU "
                            "(docs/gpu.md)")
        return plan
    gpu = est.gpu_precision(cfg.mixed_precision)
    m = est.memory(arch, cfg, gpu)
    plan.estimate_lines = [
        f"dataset: {size}",
        f"steps: {steps}",
        f"estimated peak GPU memory ({gpu}, batch {cfg.train_batch_size}, {cfg.resolution} px; an estimate, not a "
        f"measurement): {est.gb(m.peak)} = weights {est.gb(m.weights)} + LoRA with AdamW {est.gb(m.lora)} + "
        f"activations {est.gb(m.activations)} + CUDA overhead {est.gb(m.overhead)}",
        f"parameters: UNet {arch.unet_params / 1e6:.1f} M, VAE {arch.vae_params / 1e6:.1f} M, text encoder "
        f"{arch.text_params / 1e6:.1f} M, LoRA {arch.lora_params(cfg.rank) / 1e6:.2f} M",
    ]
    if device == "cpu":
        seconds = est.training_seconds(arch, cfg, steps, est.cpu_flops())
        plan.estimate_lines.append(f"estimated time on this CPU: {est.duration(seconds)} (an estimate)")
        if est.real_size(cfg.base):
            plan.warning = (f"training {cfg.base} on a CPU (no CUDA GPU found): about {est.duration(seconds)} for "
                            f"{steps} steps (an estimate from its {arch.unet_params / 1e6:.0f} M-parameter UNet); "
                            f"use a GPU (docs/gpu.md), or --base tiny for a smoke run")
    return plan


def _default_toml() -> str:
    return "./ccub.toml" if Path("ccub.toml").is_file() else "none (built-in defaults)"


def _preflight(cfg: Any, ccub_cfg: Any, dataset: Path, may_prepare: bool) -> None:
    """Every model training needs, and those of `ccub prepare` when it will run first, checked at
    once: one error names all that are missing before hours of preparing."""
    from ccub.models import ModelUnavailable, require_all
    from finetune.needs import prepare_needs, training_needs
    from finetune.prepare import STAGES, needs_preparing

    needs = training_needs(cfg)
    if may_prepare and needs_preparing(dataset):
        needs += prepare_needs(ccub_cfg.prepare, STAGES)
    try:
        require_all(needs)
    except ModelUnavailable as exc:
        fail(exc, cause=exc)


def run_training(cfg: Any, dataset: Path, output: Path, culture: str | None, resume: str | None,
                 ccub_cfg: Any, log_every: int | None = None) -> None:
    from ccub.models import ModelUnavailable
    from finetune.checkpoints import ResumeError
    from finetune.dataset import DatasetError
    from finetune.train import RunOptions, TrainingError, train

    name = ccub_cfg.cultures[culture].name if culture in ccub_cfg.cultures else None
    options = RunOptions(dataset=dataset, output=output, culture=culture, culture_name=name, resume=resume)
    with Reporter(units=UNITS, every=log_every) as reporter:
        try:
            result = train(cfg, options, watch=reporter if main_process() else None)
        except (DatasetError, ModelUnavailable, ResumeError, TrainingError, ImportError) as exc:
            fail(exc, cause=exc)
    if not main_process():
        return
    console.print(f"LoRA: {result.lora}" + (f" (resumed from step {result.resumed_from})" if result.resumed_from
                                             else ""), highlight=False)
    console.print(f"run folder: {result.output} (config.toml, train_log.jsonl, logs/, samples/, README.md, "
                  "run.json)", highlight=False)
    if result.skipped_steps:
        console.print(f"[yellow]{result.skipped_steps} optimizer step(s) skipped for non-finite gradients[/]")
    if result.smoke_run:
        console.print("[bold yellow]SMOKE RUN:[/] made with RANDOM WEIGHTS (tiny models); do not use or report it.")
