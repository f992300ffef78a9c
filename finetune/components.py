"""Stable Diffusion's parts for training, loaded once from a hub id, a folder or a tiny preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ccub.models import ModelRef, ensure_available, load_pretrained, resolve


@dataclass
class Components:
    base: ModelRef
    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    scheduler: Any  # the training noise scheduler (DDPM on the base model's schedule)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type


def base_ref(base: str) -> ModelRef:
    """The base model's `ModelRef`; a tiny preset name builds (once) and points at its folder."""
    from finetune.tiny import is_tiny, tiny_models

    if is_tiny(base):
        return ModelRef(base, str(tiny_models(base).base), random_weights=True, local=True)
    return resolve(base, "base model")


# Stable Diffusion families by the UNet's cross_attention_dim: SD 1.x reads CLIP ViT-L/14 (768 wide),
# SD 2.x OpenCLIP ViT-H/14 (1024). Names as kohya-ss writes `ss_base_model_version`.
FAMILY_BY_CROSS_ATTENTION = {768: "sd_v1", 1024: "sd_v2"}


def sd_family(base: str, cross_attention_dim: int | list[int] | None) -> str | None:
    """"sd_v1" or "sd_v2" for base model `base` (a tiny preset says it in its `family`; any other
    model is told by its UNet's `cross_attention_dim`); None when neither tells."""
    from finetune.tiny import TINY_PRESETS, is_tiny

    if is_tiny(base):
        return TINY_PRESETS[base].get("family")
    if isinstance(cross_attention_dim, list | tuple):  # one per block: a family has one width
        widths = set(cross_attention_dim)
        cross_attention_dim = widths.pop() if len(widths) == 1 else None
    return FAMILY_BY_CROSS_ATTENTION.get(cross_attention_dim)


def load_components(ref: ModelRef, progress: Any = None) -> Components:
    """Tokenizer, text encoder, VAE, UNet and a DDPM training scheduler of an SD 1.x/2.x model,
    each load a phase of `progress` (`ccub.progress`)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from ccub.progress import phase

    ensure_available(ref, "base model", "model_index.json")
    role = "base model"
    where = ref.source + (" (RANDOM WEIGHTS)" if ref.random_weights else "")

    def load(what: str, cls: Any, subfolder: str) -> Any:
        with phase(progress, f"loading {what} from {where}"):
            return load_pretrained(ref, role, cls.from_pretrained, subfolder=subfolder)

    return Components(
        base=ref,
        tokenizer=load("tokenizer", CLIPTokenizer, "tokenizer"),
        text_encoder=load("text encoder", CLIPTextModel, "text_encoder"),
        vae=load("VAE", AutoencoderKL, "vae"),
        unet=load("UNet", UNet2DConditionModel, "unet"),
        scheduler=load("noise scheduler", DDPMScheduler, "scheduler"),
    )
