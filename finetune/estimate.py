"""Estimates, not measurements: the peak GPU memory and the time of a `ccub finetune` run, from
the base model's architecture (its configs; no weights are loaded).

Parameters are counted by building the UNet, VAE and text encoder from their configs on PyTorch's
meta device (no memory, no weights). Then:

* weights = UNet + text encoder at the training precision (bytes per parameter: 4 fp32, 2
  fp16/bf16), the VAE at that precision too (fp32 when fp16: fp16 VAE decoding overflows), and
  the perceptual backbones of the variant in fp32 (`BACKBONE_PARAMS`);
* LoRA = rank x sum(in + out) over the LoRA's target linear layers, kept in fp32 with its
  gradients and AdamW's two moments: 16 bytes per LoRA parameter;
* activations per image (bytes per element as the weights) = `UNET_SAVED` elements per UNet
  feature element, where the UNet has sum_i block_out_channels[i] / 4^i feature elements per latent
  position; on SCoFT's perceptual micro-batches (MP, MPC) also the VAE decode with gradient
  (`VAE_SAVED` per decoder feature element, none with VAE gradient checkpointing) and the
  backbones (`BACKBONE_SAVED` fp32 elements at 512 px, in proportion to the pixels); times the batch;
* peak = weights + LoRA state + activations + `CUDA_OVERHEAD` (context and allocator slack).

The activation constants are fitted to `bench/finetune_memory.py`'s counted micro-batches of
the SD 1.x architecture at 512 px (README, "Peak memory per configuration"); they carry over to
other sizes only roughly. Time: a UNet forward costs about 2 x parameters x latent positions /
`UNET_REUSE` FLOPs (an SD-shaped UNet keeps most weights at its coarse levels; torch's
FlopCounterMode gives 0.80 TFLOPs for SD 1.5 at 64 x 64 latents, this 0.88); a micro-batch costs
3 forwards (forward and backward) for L_LDM, 1.5 more for L_M, and (2 x (sampler_steps - 1) + 16)
forwards every `perceptual_interval` micro-batches for the guided sampler, the VAE decode and the
backbones (fitted to bench/finetune_step.py's CPU timings); divided by an assumed sustained
throughput (`CPU_FLOPS_PER_CORE`, `GPU_CLASSES`: guesses).

    python -m finetune.estimate --table     # the table of docs/gpu.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass
from typing import Any

GB = 1e9
BYTES = {"no": 4, "fp32": 4, "fp16": 2, "bf16": 2}
UNET_SAVED = 168  # kept-for-backward elements per UNet feature element (SD 1.x, 512 px: 1.6 GB fp32)
UNET_CHECKPOINTED = 0.3  # share of them left with UNet gradient checkpointing (a guess, not fitted)
VAE_SAVED = 19  # per decoder feature element, decoding x0_hat with gradient (SD 1.x VAE, 512 px: 4.7 GB fp32)
BACKBONE_SAVED = 825e6  # elements per image at 512 px: the backbones and the sampler's kept tensors (3.3 GB fp32)
LORA_STATE_BYTES = 16  # fp32 parameter, its gradient, AdamW's two moments
CUDA_OVERHEAD = 1.0 * GB  # CUDA context, cuDNN workspace, caching-allocator slack: a round guess
UNET_REUSE = 8
CPU_FLOPS_PER_CORE = 70e9  # sustained fp32, fitted to a 2-core CPU's plain LoRA micro-batch (19 s)
# Backbone parameters of the real (not tiny) models, as published.
BACKBONE_PARAMS = {"vgg": 14.7e6, "lpips": 14.7e6, "clip": 151e6, "dinov2": 304e6, "dreamsim": 258e6,
                   "blip2": 1.17e9}
# (memory class, example GPU, GB, precision, assumed sustained FLOP/s at batch 1): guesses from the
# iterations per second commonly reported for SD 1.5 LoRA training at 512 px, not measured here.
GPU_CLASSES = (
    ("16 GB", "T4", 16, "fp16", 4e12),
    ("24 GB", "RTX 3090, A10G", 24, "bf16", 7e12),
    ("40 GB", "A100 40 GB", 40, "bf16", 25e12),
    ("80 GB", "A100 80 GB", 80, "bf16", 25e12),
    ("80 GB", "H100 80 GB", 80, "bf16", 50e12),
)

SD15 = {
    "unet": {"sample_size": 64, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
             "cross_attention_dim": 768, "attention_head_dim": 8},
    "vae": {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
            "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4},
    "text_encoder": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768},
}
SD21 = {
    "unet": {"sample_size": 96, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
             "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20], "use_linear_projection": True},
    "vae": SD15["vae"],
    "text_encoder": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23,
                     "num_attention_heads": 16, "max_position_embeddings": 77, "projection_dim": 512,
                     "hidden_act": "gelu"},
}
# Hub ids whose architecture is one of the above (so --dry-run works before a download).
KNOWN = {"CompVis/stable-diffusion-v1-4": ("SD 1.x", SD15), "CompVis/stable-diffusion-v1-5": ("SD 1.x", SD15),
         "runwayml/stable-diffusion-v1-5": ("SD 1.x", SD15),
         "stable-diffusion-v1-5/stable-diffusion-v1-5": ("SD 1.x", SD15),
         "stabilityai/stable-diffusion-2-1": ("SD 2.1", SD21),
         "stabilityai/stable-diffusion-2-1-base": ("SD 2.1", SD21)}


@dataclass(frozen=True)
class Architecture:
    """What the estimates need of a base model, counted from its configs."""

    name: str
    unet_params: int
    vae_params: int
    text_params: int
    lora_per_rank: int  # sum(in + out) of the LoRA's target linear layers
    unet_features: float  # sum_i block_out_channels[i] / 4^i (UNet feature elements per latent position)
    vae_features: float  # the same for the VAE decoder, per image pixel
    vae_factor: int  # image pixels per latent position along a side
    random_weights: bool = False

    def lora_params(self, rank: int) -> int:
        return rank * self.lora_per_rank


@dataclass(frozen=True)
class Memory:
    """Bytes, each part an estimate."""

    weights: float
    lora: float
    activations: float
    overhead: float

    @property
    def peak(self) -> float:
        return self.weights + self.lora + self.activations + self.overhead


def _features(channels) -> float:
    return sum(c / 4 ** i for i, c in enumerate(channels))


def count_architecture(name: str, configs: dict[str, dict[str, Any]], targets=("to_q", "to_k", "to_v", "to_out.0"),
                       random_weights: bool = False) -> Architecture:
    """Build the UNet, VAE and text encoder of `configs` on the meta device and count them."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        text = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))

    def params(model) -> int:
        return sum(p.numel() for p in model.parameters())

    lora = sum(m.in_features + m.out_features for n, m in unet.named_modules()
               if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in targets))
    return Architecture(name, params(unet), params(vae), params(text), lora,
                        _features(unet.config.block_out_channels), _features(vae.config.block_out_channels),
                        2 ** (len(vae.config.block_out_channels) - 1), random_weights)


def read_configs(base: str) -> tuple[str, dict[str, dict[str, Any]], bool] | None:
    """(name, configs, random weights) of a base model from its config files only: a tiny preset, a
    local folder, the hub cache, or a known hub id; None when none of these has them."""
    from finetune.tiny import TINY_PRESETS, is_tiny

    if is_tiny(base):
        preset = TINY_PRESETS[base]
        return base, {k: preset[k] for k in ("unet", "vae", "text_encoder")}, True
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from ccub.models import ModelUnavailable, random_marker, resolve

    # Configs read locally when they are there; else the published architecture of a known base.
    with contextlib.suppress(OSError, ValueError, ModelUnavailable):
        ref = resolve(base, "base model")
        source, local = ref.source, ref.local
        configs = {"unet": dict(UNet2DConditionModel.load_config(source, subfolder="unet", local_files_only=True)),
                   "vae": dict(AutoencoderKL.load_config(source, subfolder="vae", local_files_only=True)),
                   "text_encoder": CLIPTextConfig.from_pretrained(source, subfolder="text_encoder",
                                                                  local_files_only=True).to_dict()}
        return base, configs, bool(local and random_marker(source))
    if base in KNOWN:
        name, configs = KNOWN[base]
        return f"{base} ({name} architecture, published config)", configs, False
    return None


def read_architecture(base: str, targets=("to_q", "to_k", "to_v", "to_out.0")) -> Architecture | None:
    found = read_configs(base)
    if found is None:
        return None
    name, configs, random = found
    return count_architecture(name, configs, tuple(targets), random)


def real_size(base: str) -> bool:
    """Whether `base` is a real-size model (not a tiny smoke-run preset)."""
    from finetune.tiny import is_tiny

    return not is_tiny(base)


def training_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_precision(mixed_precision: str) -> str:
    """The precision a run uses on a GPU: `auto` is bf16 where supported (fp16 on older GPUs)."""
    return "bf16" if mixed_precision == "auto" else mixed_precision


def memory(arch: Architecture, cfg: Any, precision: str) -> Memory:
    """Peak memory of training `arch` with the ScoftConfig `cfg` at `precision` (no, fp16, bf16)."""
    weight = BYTES[precision]
    terms = cfg.terms()
    perceptual = "perceptual" in terms or "contrastive" in terms
    vae_bytes = 4 if precision == "fp16" else weight
    backbones = set()
    if "perceptual" in terms:
        backbones.add(cfg.perceptual)
    if "contrastive" in terms:
        backbones.add(cfg.backbone)
    backbone_params = 0 if arch.random_weights else sum(BACKBONE_PARAMS[b] for b in backbones)
    weights = (arch.unet_params + arch.text_params) * weight + arch.vae_params * vae_bytes + backbone_params * 4
    lora = arch.lora_params(cfg.rank) * LORA_STATE_BYTES
    latent_positions = (cfg.resolution / arch.vae_factor) ** 2
    per_image = latent_positions * arch.unet_features * UNET_SAVED
    if cfg.gradient_checkpointing:
        per_image *= UNET_CHECKPOINTED
    if perceptual and not cfg.vae_gradient_checkpointing:
        per_image += cfg.resolution ** 2 * arch.vae_features * VAE_SAVED
    activations = per_image * weight
    if perceptual:  # the backbones run in fp32 (DreamSim only works in fp32)
        activations += BACKBONE_SAVED * (cfg.resolution / 512) ** 2 * 4
    return Memory(weights, lora, activations * cfg.train_batch_size, CUDA_OVERHEAD)


def unet_forward_flops(arch: Architecture, resolution: int) -> float:
    return 2 * arch.unet_params * (resolution / arch.vae_factor) ** 2 / UNET_REUSE


def step_flops(arch: Architecture, cfg: Any) -> float:
    """FLOPs of one optimizer step (all its micro-batches)."""
    forward = unet_forward_flops(arch, cfg.resolution) * cfg.train_batch_size
    forwards = 3.0
    terms = cfg.terms()
    if "memorisation" in terms:
        forwards += 1.5
    if "perceptual" in terms or "contrastive" in terms:
        forwards += (2 * (cfg.sampler_steps - 1) + 16) / cfg.perceptual_interval
    return forward * forwards * cfg.gradient_accumulation_steps


def cpu_flops() -> float:
    return CPU_FLOPS_PER_CORE * (os.cpu_count() or 1)


def training_seconds(arch: Architecture, cfg: Any, steps: int, flops_per_second: float) -> float:
    return step_flops(arch, cfg) * steps / flops_per_second


def generation_seconds(arch: Architecture, images: int, steps: int, resolution: int,
                       flops_per_second: float) -> float:
    """Sampling with classifier-free guidance: two UNet forwards per step and image."""
    return unet_forward_flops(arch, resolution) * 2 * steps * images / flops_per_second


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def gb(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / 1e6:.1f} MB"


# --------------------------------------------------------------------------- the table of docs/gpu.md


def _fitting(arch: Architecture, cfg: Any, precision: str, limit: float) -> tuple[str, Any, Memory]:
    """The first memory setting that fits `limit` bytes: the defaults, then VAE, then also UNet
    gradient checkpointing; the last one when none fits."""
    from dataclasses import replace

    options = [("defaults", cfg), ("VAE ckpt", replace(cfg, vae_gradient_checkpointing=True)),
               ("VAE + UNet ckpt", replace(cfg, vae_gradient_checkpointing=True, gradient_checkpointing=True))]
    for label, option in options:
        est = memory(arch, option, precision)
        if est.peak <= limit:
            return label, option, est
    return "does not fit", options[-1][1], memory(arch, options[-1][1], precision)


def table(models: list[tuple[str, Architecture, int]] | None = None) -> str:
    """The Markdown table of docs/gpu.md: default settings (MPC, batch 1 x 4, rank 64, 1000 steps)."""
    from dataclasses import replace

    from finetune.config import ScoftConfig

    if models is None:
        sd15 = count_architecture("SD 1.5", SD15)
        sd21 = count_architecture("SD 2.1", SD21)
        models = [("SD 1.5", sd15, 512), ("SD 2.1", sd21, 512), ("SD 2.1", sd21, 768)]
    lines = ["| base | px | GPU class (examples) | precision | memory setting | est. peak | est. time, 1000 steps |",
             "|---|---|---|---|---|---|---|"]
    for label, arch, resolution in models:
        cfg = replace(ScoftConfig(), resolution=resolution)
        for name, examples, size, precision, flops in GPU_CLASSES:
            setting, used, est = _fitting(arch, cfg, precision, size * GB)
            time = duration(training_seconds(arch, used, cfg.max_train_steps, flops))
            lines.append(f"| {label} | {resolution} | {name} ({examples}) | {precision} | {setting} | "
                         f"{gb(est.peak)} | {time if setting != 'does not fit' else '-'} |")
    return "\n".join(lines)


def parameters_table() -> str:
    rows = ["| base | UNet | VAE | text encoder | LoRA rank 64 |", "|---|---|---|---|---|"]
    for label, configs in (("SD 1.5", SD15), ("SD 2.1", SD21)):
        a = count_architecture(label, configs)
        rows.append(f"| {label} | {a.unet_params / 1e6:.0f} M | {a.vae_params / 1e6:.1f} M | "
                    f"{a.text_params / 1e6:.0f} M | {a.lora_params(64) / 1e6:.1f} M |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m finetune.estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="print the tables of docs/gpu.md")
    args = parser.parse_args(argv)
    if args.table:
        import logging

        logging.getLogger("diffusers").setLevel(logging.ERROR)
        print(parameters_table())
        print()
        print(table())
        return
    parser.print_help()


if __name__ == "__main__":
    main()
