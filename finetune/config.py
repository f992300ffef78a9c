"""Every hyperparameter of a SCoFT run, in one dataclass loadable from TOML (`--config scoft.toml`).

Defaults are the reference run's (see docs/method.md): SD 1.4, LoRA rank 64 on the
UNet attention projections, AdamW 1e-4 with a cosine schedule, batch 1 x 4 accumulation, 512 px,
seed 1024, loss weights 0.7 / 0.3 / 0.05 / 0.01 with the perceptual terms every 10th micro-batch.
The resolved config is written into every run as `config.toml`, and reading it back gives the
same config (tested), so a run can always be repeated.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccub.config import ConfigError, build_dataclass, setting_problems

# The study's ablations: which loss terms are on. "lora" is plain LoRA fine-tuning. MP is the
# reference code's --onlypositive run: L_C keeps only its positive part, D(x0_hat, x+).
VARIANTS: dict[str, tuple[str, ...]] = {
    "lora": ("ldm",),
    "M": ("ldm", "memorisation"),
    "MP": ("ldm", "memorisation", "perceptual", "contrastive"),
    "MPC": ("ldm", "memorisation", "perceptual", "contrastive"),
}
WITH_NEGATIVES = ("MPC",)
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
GRAD_STEPS = ("first", "last", "random")
SPACINGS = ("reference", "even")
NEGATIVE_FLIPS = ("independent", "with_image")
PERCEPTUAL = ("vgg", "lpips")
# The registry of contrastive and perceptual distances (finetune.backbones builds each); kept here so
# reading a config never imports torch.
BACKBONES = ("dreamsim", "clip", "dinov2", "blip2", "lpips", "vgg")


@dataclass
class ScoftConfig:
    # What to train.
    base: str = "CompVis/stable-diffusion-v1-4"
    variant: str = "MPC"
    # Distance of the contrastive term L_C (dreamsim, the reference's released choice; clip, dinov2,
    # blip2, lpips, vgg) and its weights (hub id, folder or CLIP spec; empty: the backbone's default).
    backbone: str = "dreamsim"
    backbone_weights: str = ""
    # Distance of L_P: "vgg", the reference's VGG16 feature distance (CLIPasso style, no learned
    # layers, full resolution), or "lpips", the lpips package's learned LPIPS at 224 px.
    perceptual: str = "vgg"
    # LoRA on the UNet's attention projections (self- and cross-attention).
    rank: int = 64
    lora_alpha: int = 0  # 0: equal to the rank, so reloading never changes the LoRA's strength
    lora_targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    # Loss weights and schedule.
    weight_ldm: float = 0.7
    weight_memorisation: float = 0.3
    weight_contrastive: float = 0.05
    weight_perceptual: float = 0.01
    perceptual_interval: int = 10  # L_C and L_P on every Nth micro-batch only
    # The guided sampler from z_t to 0 that produces x0_hat for L_C and L_P.
    sampler_steps: int = 20
    sampler_spacing: str = "reference"  # reference: t, t - s, ..., 0 with s = t // (steps - 1); even
    sampler_guidance: float = 4.5
    grad_step: str = "first"  # which UNet call of the sampler keeps its gradient: first, last, random
    min_timestep: int = 1  # t = 0 breaks the sampler's schedule
    max_timestep: int = 999
    snr_gamma: float = 0.0  # min-SNR weighting of L_LDM when > 0 (5.0 is the usual choice)
    # Optimisation.
    learning_rate: float = 1e-4
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    use_8bit_adam: bool = False
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 4
    max_train_steps: int = 1000  # optimizer steps; num_train_epochs wins when set
    num_train_epochs: int = 0
    # Data.
    resolution: int = 512
    random_flip: bool = True
    # independent: each negative gets its own random flip (the reference code's); with_image: it
    # follows its image's flip, keeping the layout the depth ControlNet gave it aligned.
    negative_flip: str = "independent"
    cache_latents: bool = True
    # Precision and memory.
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that supports it, else fp16; no on CPU
    gradient_checkpointing: bool = False
    vae_gradient_checkpointing: bool = False
    seed: int = 1024
    # Outputs.
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 3
    validation_steps: int = 250  # 0: only at the end
    validation_prompts: list[str] = field(default_factory=list)  # empty: the culture's study-style prompts
    validation_seeds: list[int] = field(default_factory=lambda: [0, 1])
    validation_inference_steps: int = 25
    validation_guidance: float = 4.5
    export_kohya: bool = False
    tensorboard: bool = True

    def lora_scale_alpha(self) -> int:
        return self.lora_alpha or self.rank

    def terms(self) -> tuple[str, ...]:
        return VARIANTS[self.variant]

    def uses_negatives(self) -> bool:
        return self.variant in WITH_NEGATIVES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check(cfg: ScoftConfig, where: str = "SCoFT config") -> ScoftConfig:
    """Raise ConfigError naming `where` and every setting that cannot work; return `cfg` otherwise."""
    problems = setting_problems(
        cfg, {"variant": VARIANTS, "grad_step": GRAD_STEPS, "mixed_precision": MIXED_PRECISION,
              "sampler_spacing": SPACINGS, "negative_flip": NEGATIVE_FLIPS, "perceptual": PERCEPTUAL,
              "backbone": BACKBONES},
        dict.fromkeys(("rank", "train_batch_size", "gradient_accumulation_steps", "perceptual_interval",
                       "resolution", "checkpointing_steps", "validation_inference_steps"), 1)
        | {"sampler_steps": 2})  # the sampler's schedule runs from t to 0
    if not 1 <= cfg.min_timestep <= cfg.max_timestep:
        problems.append(f"timesteps [{cfg.min_timestep}, {cfg.max_timestep}]: need 1 <= min_timestep <= max_timestep")
    if cfg.max_train_steps < 1 and cfg.num_train_epochs < 1:
        problems.append("set max_train_steps or num_train_epochs to at least 1")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return cfg


def load_scoft_config(path: Path | None = None, ccub_toml: Any = None, **overrides: Any) -> ScoftConfig:
    """Defaults, then the [scoft] table of `ccub_toml` (a loaded `ccub.config.Config`), then the TOML
    file at `path` (top-level keys or a [scoft] table), then `overrides`."""
    data: dict[str, Any] = {}
    where = "defaults"
    if ccub_toml is not None and ccub_toml.scoft:
        data, where = dict(ccub_toml.scoft), f"{ccub_toml.source} [scoft]"
    if path is not None:
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data_of_file = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc
        data = data | data_of_file.get("scoft", data_of_file)
    data = data | {k: v for k, v in overrides.items() if v is not None}
    return check(build_dataclass(ScoftConfig, data, where), where)


def dump_toml(cfg: ScoftConfig) -> str:
    import tomli_w

    return "# resolved SCoFT config of this run; `ccub finetune --config` reads it back\n" + tomli_w.dumps(
        {"scoft": cfg.to_dict()})
