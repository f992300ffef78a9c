"""`ccub finetune`: SCoFT LoRA training, top to bottom.

1. Accelerator (mixed precision, gradient accumulation, one process per GPU under
   `accelerate launch`), the frozen Stable Diffusion parts, LoRA on the UNet.
2. The culture's prepared dataset in memory, with text embeddings (and latents) cached once.
3. The loop: per optimizer step, `gradient_accumulation_steps` micro-batches of SCoFT losses
   (`finetune.step`); gradient clipping; non-finite gradients skip the step; logs per step;
   checkpoints and validation grids every N steps.
4. The LoRA file(s), the run card and `run.json`.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ccub.files import atomic_write_text
from ccub.steward.releases import dataset_lineage
from finetune import checkpoints as ckpt
from finetune.config import ScoftConfig, dump_toml
from finetune.outputs import (
    hardware,
    library_versions,
    peft_state,
    sample_grid,
    save_kohya,
    save_lora,
    write_run_card,
)
from finetune.run_record import LORA_FILE, RunRecord

STUDY_PROMPTS = ("Family is eating together, in {name}", "People wearing traditional clothing, in {name}",
                 "Photo of a street, in {name}", "A table of food in {name}")
MAX_SKIPPED_IN_A_ROW = 20

ProgressFn = Callable[[int, int, dict[str, float]], None]


class TrainingError(RuntimeError):
    """Training cannot go on (for example the losses stay non-finite); the message says why."""


@dataclass
class RunOptions:
    dataset: Path
    output: Path
    culture: str | None = None
    culture_name: str | None = None
    resume: str | None = None  # "latest" or a checkpoint folder


@dataclass
class TrainResult:
    output: Path
    steps: int
    lora: Path
    smoke_run: bool
    resumed_from: int = 0
    skipped_steps: int = 0
    files: list[Path] = field(default_factory=list)


def mixed_precision(cfg: ScoftConfig) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def total_steps(cfg: ScoftConfig, images: int, processes: int) -> int:
    if cfg.num_train_epochs > 0:
        micro = math.ceil(images * cfg.num_train_epochs / (cfg.train_batch_size * processes))
        return math.ceil(micro / cfg.gradient_accumulation_steps)
    return cfg.max_train_steps


def validation_prompts(cfg: ScoftConfig, culture_name: str | None) -> list[str]:
    if cfg.validation_prompts:
        return list(cfg.validation_prompts)
    return [p.format(name=culture_name or "this culture") for p in STUDY_PROMPTS]


def train(cfg: ScoftConfig, opts: RunOptions, progress: ProgressFn | None = None, watch=None) -> TrainResult:
    """Train; `progress(step, total, record)` after each optimizer step. `watch` (`ccub.progress`)
    sees every stage: the loading phases, caching (prompts, images) and the steps with their losses."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from peft.utils import set_peft_model_state_dict

    from ccub.progress import phase, report
    from finetune.components import base_ref, load_components, sd_family
    from finetune.data import TrainingData, seeded
    from finetune.dataset import read_dataset, scoft_examples
    from finetune.step import Frozen, scoft_losses

    preflight(cfg)
    output = Path(opts.output)
    output.mkdir(parents=True, exist_ok=True)
    from finetune.runtime import multi_cpu

    accelerator = Accelerator(
        cpu=multi_cpu(), gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=mixed_precision(cfg),
        log_with="tensorboard" if cfg.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")))
    device = accelerator.device
    if accelerator.num_processes > 1 and cfg.grad_step != "first":
        # A second UNet call with gradient in one backward pass would hand DDP two gradients per parameter.
        raise TrainingError(f"grad_step = {cfg.grad_step!r} works in one process only; use \"first\" (the default) "
                            f"with accelerate launch")
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    started = time.monotonic()

    # 1. Models: everything frozen, then LoRA (seeded, so every process and rerun starts alike).
    with phase(watch, f"preparing the base model {cfg.base}"):
        ref = base_ref(cfg.base)
    parts = load_components(ref, watch)
    unet, vae, text_encoder = parts.unet, parts.vae, parts.text_encoder
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.eval()
    # fp16 VAE decoding overflows into NaNs: keep the VAE in fp32 then (bf16 is safe).
    with phase(watch, f"moving the models to {device} ({weight_dtype}) and adding LoRA rank {cfg.rank}"):
        vae.to(device, torch.float32 if weight_dtype == torch.float16 else weight_dtype)
        text_encoder.to(device, weight_dtype)
        unet.to(device, weight_dtype)
        torch.manual_seed(cfg.seed)
        unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.lora_scale_alpha(), init_lora_weights="gaussian",
                                    target_modules=list(cfg.lora_targets)))
    cast_training_params(unet, dtype=torch.float32)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if cfg.vae_gradient_checkpointing:
        vae.enable_gradient_checkpointing()
    params = [p for p in unet.parameters() if p.requires_grad]

    # 2. Data, with the frozen encoders' outputs cached once.
    examples = scoft_examples(read_dataset(opts.dataset))
    prepared_with_random = _prepared_with_random(opts.dataset)
    # Which release (or the current clean set) the data is, and its digest as read now.
    lineage = dataset_lineage(opts.dataset) if accelerator.is_main_process else (None, None)
    negatives = sum(len(e.negatives) for e in examples)
    with phase(watch, f"reading {len(examples)} images and {negatives} negatives at {cfg.resolution} px"):
        data = TrainingData(examples, cfg.resolution, cfg.random_flip, cfg.negative_flip)
    data.cache_text(parts.tokenizer, text_encoder, device, weight_dtype,
                    lambda done, total: report(watch, "caching text", done, total))
    if cfg.cache_latents:
        data.cache_latents(vae, device, weight_dtype, lambda done, total: report(watch, "caching latents", done, total))
    tiny = parts.base.random_weights
    frozen = Frozen(vae, parts.scheduler, data.embeddings[""].to(device))
    backbones = _backbones(cfg, frozen, tiny, device, watch)

    # 3. Optimizer, schedule, and where to start.
    optimizer = _optimizer(cfg, params)
    steps = total_steps(cfg, len(data), accelerator.num_processes)
    from diffusers.optimization import get_scheduler

    lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer,
                                 num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=steps * accelerator.num_processes)
    unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    config = cfg.to_dict()
    start = 0
    if opts.resume:
        saved = ckpt.find_checkpoint(output, opts.resume)
        if saved is not None:
            ckpt.check_compatible(saved, config)
            lora = ckpt.load_checkpoint(saved, optimizer, lr_scheduler, accelerator.scaler)
            set_peft_model_state_dict(accelerator.unwrap_model(unet), lora)
            start = saved.step
    if accelerator.is_main_process:
        (output / "config.toml").write_text(dump_toml(cfg), encoding="utf-8")
        if cfg.tensorboard:
            accelerator.init_trackers("scoft", config={k: v for k, v in config.items()
                                                       if isinstance(v, int | float | str | bool)})

    # 4. The loop.
    log_path = output / "train_log.jsonl"
    if accelerator.is_main_process:
        _trim_log(log_path, start)
    skipped_total, skipped_row = 0, 0
    rank, world = accelerator.process_index, accelerator.num_processes
    report(watch, "training", start, steps)  # the first line, before the first (slow) step
    accum, batch_size = cfg.gradient_accumulation_steps, cfg.train_batch_size
    for step in range(start, steps):
        sums: dict[str, list[float]] = {}
        step_started = time.monotonic()
        for micro in range(accum):
            m = step * accum + micro
            positions = [(m * world + rank) * batch_size + j for j in range(batch_size)]
            generator = seeded("micro", cfg.seed, m, rank)
            batch = data.batch(data.positions(cfg.seed, positions), vae, generator, device, weight_dtype)
            with accelerator.accumulate(unet):
                with accelerator.autocast():
                    total, terms = scoft_losses(unet, frozen, batch, cfg, m, generator)
                accelerator.backward(total)
                for name, value in {"total": total, **terms}.items():
                    sums.setdefault(name, []).append(float(value.detach()))
                if accelerator.sync_gradients:
                    finite = accelerator.scaler is not None or _gradients_finite(params)
                    if finite:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                        optimizer.step()
                        lr_scheduler.step()
                        skipped_row = 0
                    else:
                        skipped_total, skipped_row = skipped_total + 1, skipped_row + 1
                    optimizer.zero_grad(set_to_none=True)
        if skipped_row >= MAX_SKIPPED_IN_A_ROW:
            raise TrainingError(f"{skipped_row} optimizer steps in a row had non-finite gradients; lower "
                                f"learning_rate, use mixed_precision = \"bf16\" or \"no\", or check the data")
        record = _log_record(step + 1, sums, lr_scheduler.get_last_lr()[0], time.monotonic() - step_started,
                             skipped_total, accelerator)
        if accelerator.is_main_process:
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if cfg.tensorboard:
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step + 1)
        if progress:
            progress(step + 1, steps, record)
        report(watch, "training", step + 1, steps, **_shown(record))
        done = step + 1
        if done % cfg.checkpointing_steps == 0 and done < steps:
            with phase(watch, f"saving checkpoint-{done}"):
                _checkpoint(accelerator, unet, optimizer, lr_scheduler, output, done, config, cfg)
        if cfg.validation_steps and done % cfg.validation_steps == 0 and done < steps:
            with phase(watch, f"validation images at step {done}"):
                _validate(accelerator, unet, parts, cfg, opts, output, done)

    # 5. Outputs.
    accelerator.wait_for_everyone()
    files = []
    random_backbone = any(b is not None and b.random_weights for b in (frozen.perceptual, frozen.contrast))
    smoke = tiny or random_backbone or prepared_with_random
    if accelerator.is_main_process:
        final_unet = accelerator.unwrap_model(unet)
        with phase(watch, f"saving the LoRA to {output}"):
            files.append(save_lora(final_unet, output))
            if cfg.export_kohya:
                family = sd_family(cfg.base, final_unet.config.get("cross_attention_dim"))
                files.append(save_kohya(final_unet, output, family))
    with phase(watch, f"validation images at step {steps}"):
        files += _validate(accelerator, unet, parts, cfg, opts, output, steps)
    if accelerator.is_main_process:
        write_run_card(output, RunRecord(
            output=str(output), base_model=cfg.base, base_path=parts.base.source, culture=opts.culture,
            dataset=str(Path(opts.dataset).resolve()), data_card=_data_card(opts.dataset), images=len(data),
            data_licenses=dict(Counter(e.license for e in examples if e.license)),
            data_sources=sorted({e.source_sha256 for e in examples if e.source_sha256}),
            data_contributors=sorted({e.contributor for e in examples if e.contributor}),
            variant=cfg.variant, loss_weights=_weights(cfg), backbones=backbones, steps=steps, resumed_from=start,
            skipped_steps=skipped_total, seconds=time.monotonic() - started, hardware=hardware(accelerator),
            versions=library_versions(), smoke_run=bool(smoke), config=config, release=lineage[0],
            release_digest=lineage[1]))
    accelerator.end_training()
    return TrainResult(output, steps, output / LORA_FILE, smoke, start, skipped_total, files)


def preflight(cfg: ScoftConfig) -> None:
    """Check the base model and every backbone the variant's losses use, before anything loads:
    one `ModelUnavailable` names all that are missing."""
    from ccub.models import require_all
    from finetune.needs import training_needs

    require_all(training_needs(cfg))


def _shown(record: dict[str, float]) -> dict[str, float]:
    """What a progress line shows of a step's record: the losses (total first) and the rate."""
    shown = {"loss": record.get("loss/total", 0.0)}
    shown.update({k.removeprefix("loss/"): v for k, v in record.items() if k.startswith("loss/") and k != "loss/total"})
    shown["lr"] = record["lr"]
    return shown


def _backbones(cfg: ScoftConfig, frozen, tiny: bool, device, watch=None) -> dict[str, str]:
    """Build the perceptual distances the variant uses (once, frozen); describe them for the run card."""
    if not {"perceptual", "contrastive"} & set(cfg.terms()):
        return {}
    from ccub.progress import phase
    from finetune.backbones import build_backbone

    described = {}
    if "perceptual" in cfg.terms():
        with phase(watch, f"loading the perceptual backbone {cfg.perceptual} (L_P)"):
            frozen.perceptual = build_backbone(cfg.perceptual, tiny=tiny, device=device)
        described["perceptual"] = frozen.perceptual.describe()
    if "contrastive" in cfg.terms():
        same = cfg.backbone == cfg.perceptual and frozen.perceptual is not None and not cfg.backbone_weights
        with phase(watch, f"loading the contrastive backbone {cfg.backbone} (L_C)"):
            frozen.contrast = frozen.perceptual if same else build_backbone(
                cfg.backbone, weights=cfg.backbone_weights or None, tiny=tiny, device=device)
        described["contrastive"] = frozen.contrast.describe()
    return described


def _trim_log(path: Path, start: int) -> None:
    """Keep the log's records up to step `start`: a fresh run starts empty, and a resumed one does
    not repeat the steps an interrupted run logged after its last checkpoint."""
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= start]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _weights(cfg: ScoftConfig) -> dict[str, float]:
    from finetune.step import weights

    return weights(cfg)


def _optimizer(cfg: ScoftConfig, params: list[torch.nn.Parameter]):
    kwargs = {"lr": cfg.learning_rate, "betas": (cfg.adam_beta1, cfg.adam_beta2), "weight_decay": cfg.weight_decay,
              "eps": cfg.adam_epsilon}
    if not cfg.use_8bit_adam:
        return torch.optim.AdamW(params, **kwargs)
    try:
        import bitsandbytes as bnb
    except ImportError as exc:
        raise TrainingError("use_8bit_adam needs bitsandbytes: pip install bitsandbytes") from exc
    return bnb.optim.AdamW8bit(params, **kwargs)


def _gradients_finite(params: list[torch.nn.Parameter]) -> bool:
    grads = [p.grad for p in params if p.grad is not None]
    return bool(grads) and all(torch.isfinite(g).all() for g in grads)


def _log_record(step: int, sums: dict[str, list[float]], lr: float, seconds: float, skipped: int,
                accelerator) -> dict[str, float]:
    """Each term's mean over the micro-batches where it was computed, averaged over processes."""
    names = sorted(sums)
    local = torch.tensor([sum(sums[n]) / len(sums[n]) for n in names], device=accelerator.device)
    mean = accelerator.reduce(local, reduction="mean") if accelerator.num_processes > 1 else local
    record = {"step": step, "lr": lr, "seconds": seconds, "skipped_steps": skipped}
    record.update({f"loss/{n}": float(v) for n, v in zip(names, mean.tolist(), strict=True)})
    return record


def _checkpoint(accelerator, unet, optimizer, lr_scheduler, output: Path, step: int, config: dict, cfg) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.save_checkpoint(output, step, peft_state(accelerator.unwrap_model(unet)), optimizer, lr_scheduler,
                             accelerator.scaler, config, cfg.checkpoints_total_limit)
    accelerator.wait_for_everyone()


@torch.no_grad()
def _validate(accelerator, unet, parts, cfg: ScoftConfig, opts: RunOptions, output: Path, step: int) -> list[Path]:
    """A grid of the validation prompts (rows) x seeds (columns) with the current LoRA."""
    if not accelerator.is_main_process:
        return []
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
                                   unet=accelerator.unwrap_model(unet),
                                   scheduler=DPMSolverMultistepScheduler.from_config(parts.scheduler.config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = validation_prompts(cfg, opts.culture_name)
    images = []
    with accelerator.autocast():
        for prompt in prompts:
            for seed in cfg.validation_seeds:
                generator = torch.Generator("cpu").manual_seed(seed)
                images += pipe(prompt, num_inference_steps=cfg.validation_inference_steps,
                               guidance_scale=cfg.validation_guidance, generator=generator,
                               height=cfg.resolution, width=cfg.resolution).images
    folder = output / "samples"
    folder.mkdir(exist_ok=True)
    path = folder / f"step-{step:06d}.png"
    sample_grid(images, len(cfg.validation_seeds)).save(path)
    (folder / f"step-{step:06d}.json").write_text(json.dumps(
        {"step": step, "prompts": prompts, "seeds": list(cfg.validation_seeds)}, indent=2), encoding="utf-8")
    return [path]


def _data_card(dataset: Path) -> str | None:
    card = Path(dataset).resolve().parent / "README.md"
    return str(card) if card.is_file() else None


def _prepared_with_random(dataset: Path) -> bool:
    from finetune.prepare import PrepareError, read_manifest

    try:
        return read_manifest(Path(dataset)).made_with_random_weights()
    except PrepareError as exc:
        raise TrainingError(str(exc)) from exc
