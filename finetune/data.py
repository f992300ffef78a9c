"""SCoFT's training data in memory: images, negatives, cached text embeddings and VAE latents.

A dataset of ~140 images fits in memory many times over, so everything the loop needs is
prepared once: each image resized (shorter side = resolution) and centre-cropped, its
negatives through the same resize and crop (each flipped on its own draw, as the reference
code's transform does, or with its image: `negative_flip`), the frozen text
encoder's embeddings of every caption, generic caption and the empty prompt, and, when
`cache_latents`, the VAE's latent distribution (mean and std) of each image in both flips.
Latents are then drawn from the cached distribution with the step's own generator, exactly as
encoding on the fly would draw them.

Randomness never comes from global state: the order of each epoch, each image's flip, the
noise, timesteps and sampler noise all derive from (seed, epoch) and (seed, micro-batch,
process), so a resumed run replays exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ccub.config import Limits
from ccub.imaging.decode import open_image
from finetune.dataset import ScoftExample

# The pixel cap of ccub's default config, for callers without a config at hand.
DEFAULT_MAX_PIXELS = int(Limits.max_megapixels * 1_000_000)


def seeded(*parts: object) -> torch.Generator:
    """A CPU generator seeded from `parts` (hashing keeps nearby seeds independent)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))


def load_square(path, resolution: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """(3, R, R) uint8: shorter side resized to R (bilinear, antialiased), then centre-cropped.

    Only JPEG, PNG and WebP are opened, with at most `max_pixels` pixels (checked on the header)."""
    import numpy as np
    from PIL import Image, ImageOps

    with open_image(path, max_pixels) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = resolution / min(im.size)
        size = (max(resolution, round(im.width * scale)), max(resolution, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR)
        left, top = (im.width - resolution) // 2, (im.height - resolution) // 2
        im = im.crop((left, top, left + resolution, top + resolution))
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the VAE's and the backbones' input range."""
    return pixels.float() / 127.5 - 1.0


@dataclass
class Pick:
    """One training example at one stream position: which image, and how it and its negatives
    are flipped."""

    index: int
    flip: bool
    negative_flips: list[bool]


@dataclass
class Batch:
    indices: list[int]
    flips: list[bool]
    latents: torch.Tensor  # (B, 4, h, w), scaled by the VAE's scaling factor
    pixels: torch.Tensor  # (B, 3, R, R) in [-1, 1]
    negatives: torch.Tensor  # (B, K, 3, R, R) in [-1, 1], zero padded
    negative_mask: torch.Tensor  # (B, K) bool
    text: torch.Tensor  # (B, 77, D) embeddings of the community captions
    generic: torch.Tensor  # (B, 77, D) embeddings of the generic captions


class TrainingData:
    def __init__(self, examples: list[ScoftExample], resolution: int, random_flip: bool,
                 negative_flip: str = "independent", max_pixels: int = DEFAULT_MAX_PIXELS):
        self.examples = examples
        self.resolution = resolution
        self.random_flip = random_flip
        self.negative_flip = negative_flip
        self.pixels = torch.stack([load_square(e.image, resolution, max_pixels) for e in examples])
        self.negatives = [[load_square(n, resolution, max_pixels) for n in e.negatives] for e in examples]
        # Datasets without rows are refused when read (finetune.dataset).
        self.max_negatives = max(len(e.negatives) for e in examples)
        self.embeddings: dict[str, torch.Tensor] = {}
        self.latent_stats: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.examples)

    # ----------------------------------------------------------------- caches

    @torch.no_grad()
    def cache_text(self, tokenizer, text_encoder, device, dtype, progress=None) -> None:
        """Embed every distinct caption, generic caption and the empty prompt once;
        `progress(done, total)` after each chunk of prompts."""
        prompts = sorted({"", *(e.text for e in self.examples), *(e.generic for e in self.examples)})
        for start in range(0, len(prompts), 32):
            chunk = prompts[start:start + 32]
            ids = tokenizer(chunk, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(device)
            hidden = text_encoder(ids)[0].to(dtype)
            self.embeddings.update(zip(chunk, hidden, strict=True))
            if progress:
                progress(start + len(chunk), len(prompts))

    @torch.no_grad()
    def cache_latents(self, vae, device, dtype, progress=None) -> None:
        """The VAE's latent mean and std of every image, in both flips when flips are used;
        `progress(done, total)` after each chunk (counting images once per flip)."""
        flips = (False, True) if self.random_flip else (False,)
        done = 0
        for flip in flips:
            means, stds = [], []
            for start in range(0, len(self), 8):
                pixels = to_unit(self.pixels[start:start + 8])
                if flip:
                    pixels = pixels.flip(-1)
                dist = vae.encode(pixels.to(device, vae.dtype)).latent_dist
                means.append(dist.mean.to(dtype))
                stds.append(dist.std.to(dtype))
                done += len(pixels)
                if progress:
                    progress(done, len(self) * len(flips))
            self.latent_stats[flip] = (torch.cat(means), torch.cat(stds))

    # ----------------------------------------------------------------- sampling

    def epoch_plan(self, seed: int, epoch: int) -> list[Pick]:
        """Epoch `epoch` in order: each example with its flip and its negatives' flips."""
        generator = seeded("order", seed, epoch)
        order = torch.randperm(len(self), generator=generator).tolist()
        if not self.random_flip:
            return [Pick(i, False, [False] * len(self.negatives[i])) for i in order]
        flips = (torch.rand(len(self), generator=generator) < 0.5).tolist()
        own = (torch.rand(len(self), self.max_negatives, generator=generator) < 0.5).tolist()
        return [Pick(i, flip, own[at][:len(self.negatives[i])] if self.negative_flip == "independent"
                     else [flip] * len(self.negatives[i])) for at, (i, flip) in enumerate(zip(order, flips,
                                                                                               strict=True))]

    def positions(self, seed: int, positions: list[int]) -> list[Pick]:
        """The examples at global stream positions (epoch after epoch)."""
        picks, plans = [], {}
        for p in positions:
            epoch, at = divmod(p, len(self))
            if epoch not in plans:
                plans[epoch] = self.epoch_plan(seed, epoch)
            picks.append(plans[epoch][at])
        return picks

    def batch(self, picks: list[Pick], vae, generator: torch.Generator, device, dtype) -> Batch:
        indices, flips = [p.index for p in picks], [p.flip for p in picks]
        pixels = torch.stack([self._flip(self.pixels[p.index], p.flip) for p in picks])
        k = self.max_negatives
        negatives = torch.zeros(len(picks), k, 3, self.resolution, self.resolution, dtype=torch.uint8)
        mask = torch.zeros(len(picks), k, dtype=torch.bool)
        for row, pick in enumerate(picks):
            for slot, (negative, flip) in enumerate(zip(self.negatives[pick.index], pick.negative_flips,
                                                        strict=True)):
                negatives[row, slot] = self._flip(negative, flip)
                mask[row, slot] = True
        latents = self._latents(indices, flips, pixels, vae, generator, device, dtype)
        text = torch.stack([self.embeddings[self.examples[i].text] for i in indices]).to(device)
        generic = torch.stack([self.embeddings[self.examples[i].generic] for i in indices]).to(device)
        return Batch(indices, flips, latents, to_unit(pixels).to(device), to_unit(negatives).to(device),
                     mask.to(device), text, generic)

    @staticmethod
    def _flip(pixels: torch.Tensor, flip: bool) -> torch.Tensor:
        return pixels.flip(-1) if flip else pixels

    def _latents(self, indices, flips, pixels, vae, generator, device, dtype) -> torch.Tensor:
        if self.latent_stats:
            mean = torch.stack([self.latent_stats[f][0][i] for i, f in zip(indices, flips, strict=True)])
            std = torch.stack([self.latent_stats[f][1][i] for i, f in zip(indices, flips, strict=True)])
        else:
            with torch.no_grad():
                dist = vae.encode(to_unit(pixels).to(device, vae.dtype)).latent_dist
            mean, std = dist.mean, dist.std
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32).to(mean.device, mean.dtype)
        return ((mean + std * noise) * vae.config.scaling_factor).to(device, dtype)

