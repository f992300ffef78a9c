"""Self-generated negatives (SCoFT's ``negative_imgpath``): the base model's own stereotyped
rendering of each community image's scene.

For each community image: estimate its depth map, then let the frozen base Stable Diffusion,
steered by a depth ControlNet, draw K images from the community caption. They keep the
photo's layout but show the base model's cultural priors, which the contrastive loss pushes
away from. Every negative has its own seed, derived from the run seed, the image's path and
its index, so a rerun (of one image or of all) draws the same noise whatever the batching.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ccub.models import ModelRef, load_pretrained

SCHEDULERS = ("dpm-solver", "unipc", "ddim", "model")


def negative_seed(seed: int, image_key: str, k: int) -> int:
    """A 32-bit seed for negative `k` of `image_key`, independent of order and batching."""
    digest = hashlib.sha256(f"{seed}:{image_key}:{k}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def generation_size(width: int, height: int, resolution: int, multiple: int = 8) -> tuple[int, int]:
    """Output size keeping the aspect ratio: the shorter side `resolution`, the longer at most twice it.

    Sides are rounded to `multiple` (the VAE's downsampling factor) since Stable Diffusion needs it.
    """
    short, long = min(width, height), max(width, height)
    scale = min(resolution / short, 2 * resolution / long)

    def side(value: int) -> int:
        return max(multiple, round(value * scale / multiple) * multiple)

    return side(width), side(height)


class DepthEstimator:
    """A transformers depth-estimation model; returns ControlNet conditioning images."""

    def __init__(self, ref: ModelRef, device: str, dtype: Any):
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.device, self.dtype = device, dtype
        self.processor = load_pretrained(ref, "depth model", AutoImageProcessor.from_pretrained)
        self.model = load_pretrained(ref, "depth model", AutoModelForDepthEstimation.from_pretrained, dtype=dtype)
        self.model.to(device).eval()

    def __call__(self, images: list, size: tuple[int, int]) -> list:
        """Depth maps of `images` as RGB images of `size` (width, height), near is bright."""
        import torch
        import torch.nn.functional as F
        from PIL import Image

        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            depth = self.model(**inputs).predicted_depth.float()
        depth = F.interpolate(depth[:, None], size=(size[1], size[0]), mode="bicubic", align_corners=False)[:, 0]
        # Relative depth models (MiDaS, DPT, Depth Anything) predict disparity up to scale and
        # shift: normalise each map to [0, 1], as the depth ControlNets were trained.
        low = depth.amin(dim=(1, 2), keepdim=True)
        high = depth.amax(dim=(1, 2), keepdim=True)
        depth = (depth - low) / (high - low).clamp_min(1e-6)
        maps = (depth * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return [Image.fromarray(m).convert("RGB") for m in maps]


class ControlNetGenerator:
    """Base Stable Diffusion with a depth ControlNet, loaded once."""

    def __init__(self, base: ModelRef, controlnet: ModelRef, scheduler: str, device: str, dtype: Any):
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

        net = load_pretrained(controlnet, "ControlNet", ControlNetModel.from_pretrained, dtype=dtype)
        # No safety checker: negatives are training signal, never shown as results, and the
        # checker's weights are one more download that is often absent offline.
        self.pipe = load_pretrained(base, "base model", StableDiffusionControlNetPipeline.from_pretrained,
                                    controlnet=net, safety_checker=None, requires_safety_checker=False, dtype=dtype)
        self.pipe.scheduler = _scheduler(scheduler, self.pipe.scheduler)
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device

    @property
    def vae_factor(self) -> int:
        return self.pipe.vae_scale_factor

    def __call__(self, prompts: list[str], controls: list, seeds: list[int], size: tuple[int, int], *,
                 steps: int, guidance: float, control_scale: float, negative_prompt: str) -> list:
        import torch

        # One generator per image: the noise of each negative depends on its seed alone.
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        out = self.pipe(prompts, image=controls, num_inference_steps=steps, guidance_scale=guidance,
                        controlnet_conditioning_scale=control_scale, generator=generators,
                        negative_prompt=[negative_prompt] * len(prompts) if negative_prompt else None,
                        width=size[0], height=size[1], output_type="pil")
        return list(out.images)


def _scheduler(name: str, current):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    if name not in SCHEDULERS:
        raise ValueError(f"scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}")
    classes = {"dpm-solver": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler, "ddim": DDIMScheduler}
    return current if name == "model" else classes[name].from_config(current.config)
