"""Paired generation: every model draws every (prompt, seed) from the same initial latents.

The base model and each fine-tuned run share the scheduler, steps, guidance and size, and the
initial latent of a seed is drawn once (CPU generator) and handed to every model, so the
images of one (prompt, seed) differ only by the model. Images are cached on disk, keyed by
the model (base weights and LoRA file digest), the settings, the prompt and the seed: an
interrupted benchmark resumes where it stopped, and a later benchmark of another run reuses
the base model's images. Under `accelerate launch`, each process draws its share of the
(prompt, seed) pairs into the shared cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ccub.files import atomic_write, atomic_write_text


@dataclass(frozen=True)
class Settings:
    """How every model generates (the study's inference settings by default)."""

    scheduler: str = "dpm-solver"
    steps: int = 50
    guidance: float = 4.5
    resolution: int = 512
    lora_scale: float = 1.0
    dtype: str = "auto"
    batch_size: int = 8

    def key(self) -> str:
        # batch_size changes nothing an image shows, so it is not part of the key.
        data = {k: v for k, v in asdict(self).items() if k != "batch_size"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Model:
    """One model under comparison: a base Stable Diffusion, optionally with a run's LoRA."""

    name: str  # "base" or the run's folder name
    base: str  # hub id, folder or tiny preset, as the run recorded it
    base_source: str  # what from_pretrained gets
    lora: Path | None = None
    random_weights: bool = False
    release: str | None = None  # the data release the run trained on (its run.json), None for the base
    release_digest: str | None = None
    kind: str = "run"  # "run" (a ccub run's LoRA), "base" (no LoRA) or "lora" (a LoRA file from anywhere)
    scale: float | None = None  # the LoRA's scale; None: the settings' lora_scale
    lora_format: str | None = None  # "peft" or "kohya" for a LoRA file from anywhere

    def lora_sha256(self) -> str | None:
        if self.lora is None:
            return None
        digest = hashlib.sha256()
        with Path(self.lora).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def key(self) -> str:
        """Stable across benchmarks: the base model, the LoRA file's content and its scale when the model
        gives one (otherwise the settings' lora_scale, part of the settings' key)."""
        parts = [self.base]
        if self.lora is not None:
            parts.append(self.lora_sha256())
        if self.lora is not None and self.scale is not None:
            parts.append(f"scale={self.scale!r}")
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def prompt_key(text: str) -> str:
    # Folder names come from a digest, never from the prompt text (user suites are untrusted).
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ImageCache:
    """`<root>/<model key>-<settings key>/<prompt key>/<seed>.png`, each written atomically."""

    def __init__(self, root: Path, settings: Settings):
        self.root = Path(root)
        self.settings = settings

    def path(self, model: Model, prompt: str, seed: int) -> Path:
        return self.root / f"{model.key()}-{self.settings.key()}" / prompt_key(prompt) / f"{seed}.png"

    def missing(self, model: Model, pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        return [(p, s) for p, s in pairs if not self.path(model, p, s).is_file()]

    def store(self, model: Model, prompt: str, seed: int, image: Any) -> Path:
        path = self.path(model, prompt, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        about = path.parent.parent / "model.json"
        if not about.exists():  # says, for people browsing the cache, what a folder holds
            atomic_write_text(about, json.dumps({"model": model.name, "base": model.base,
                                                 "lora": str(model.lora) if model.lora else None,
                                                 "scale": model.scale, "settings": asdict(self.settings)}, indent=2))
        atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
        return path


def initial_latents(seed: int, shape: tuple[int, ...]):
    """The seed's initial latent, drawn on the CPU so every device and model gets the same one."""
    import torch

    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def load_pipeline(model: Model, settings: Settings, device: str):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline, UniPCMultistepScheduler

    from ccub.models import ModelRef, load_pretrained
    from finetune.runtime import pick_dtype

    dtype = pick_dtype(settings.dtype, device)
    ref = ModelRef(model.base, model.base_source, model.random_weights, local=Path(model.base_source).is_dir())
    pipe = load_pretrained(ref, "base model", StableDiffusionPipeline.from_pretrained, safety_checker=None,
                requires_safety_checker=False, dtype=dtype)
    schedulers = {"dpm-solver": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler, "ddim": DDIMScheduler}
    if settings.scheduler != "model":
        pipe.scheduler = schedulers[settings.scheduler].from_config(pipe.scheduler.config)
    if model.lora is not None:
        pipe.load_lora_weights(str(Path(model.lora).parent), weight_name=Path(model.lora).name)
        pipe.fuse_lora(lora_scale=settings.lora_scale if model.scale is None else model.scale)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(model: Model, pairs: list[tuple[str, int]], cache: ImageCache, device: str,
             progress: Callable[[float], None] | None = None, watch: Any = None) -> int:
    """Draw the (prompt, seed) pairs not cached yet; returns how many were drawn. `progress(images
    done)` counts the cached ones first, then advances with every denoising step (in fractions of
    the batch's images); `watch` (`ccub.progress`) sees the pipeline load as a phase."""
    import torch

    from ccub.progress import phase

    todo = cache.missing(model, pairs)
    cached = len(pairs) - len(todo)
    if progress:
        progress(cached)
    if not todo:
        return 0
    settings = cache.settings
    scale = f" at scale {model.scale:g}" if model.scale is not None else ""
    lora = f" + LoRA {model.lora}{scale}" if model.lora is not None else ""
    random = " (RANDOM WEIGHTS)" if model.random_weights else ""
    with phase(watch, f"loading {model.name}: {model.base_source}{lora}{random}"):
        pipe = load_pipeline(model, settings, device)
    factor = pipe.vae_scale_factor
    side = settings.resolution // factor
    shape = (1, pipe.unet.config.in_channels, side, side)
    for start in range(0, len(todo), settings.batch_size):
        batch = todo[start:start + settings.batch_size]
        latents = torch.cat([initial_latents(seed, shape) for _, seed in batch]).to(device, pipe.unet.dtype)

        before, n = cached + start, len(batch)

        def on_step(_pipe, i, _t, kwargs, before=before, n=n):
            if progress:  # the batch's images are (i + 1) / steps done
                progress(before + n * (i + 1) / (settings.steps + 1))
            return kwargs

        images = pipe([p for p, _ in batch], latents=latents, num_inference_steps=settings.steps,
                      guidance_scale=settings.guidance, height=settings.resolution,
                      width=settings.resolution, callback_on_step_end=on_step).images
        for (prompt, seed), image in zip(batch, images, strict=True):
            cache.store(model, prompt, seed, image)
        if progress:
            progress(cached + start + len(batch))
    del pipe
    return len(todo)
