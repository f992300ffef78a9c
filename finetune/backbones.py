"""The perceptual distances D of SCoFT's losses: L_P = D_P(x0_hat, x+) and
L_C = D(x0_hat, x+) - mean_k D(x0_hat, x-_k), each chosen by name from `BACKBONES`.

One entry point, `build_backbone(name, ...)`, and a dict of builders (as in open_clip's factory).
Every backbone is built once, frozen (eval mode, no parameter requires grad, and it stays in
eval mode when a parent module calls ``.train()``), and is called as
``backbone(x, y, generator=None) -> (B,)`` with x, y of shape (B, 3, H, W) in [-1, 1], the VAE's
range; gradients flow to x (and y). Distances come back in float32 whatever the backbone's dtype.

The defaults compute what the reference code (cmubig/SCoFT, ``utilities/*_loss.py``) computes,
with the preprocessing of the torchvision it ran on (0.15: tensor resizes without antialiasing).
Its loss modules assume batch 1; here every image pair of a batch gets its own distance.

* ``vgg`` (default for L_P; ``lpips_loss.py``, CLIPasso's VGG distance): images mapped to [0, 1]
  (no clamp), ImageNet mean/std, full resolution (no resize), torchvision's ImageNet VGG16 trunk.
  Features at five taps; the reference slices the trunk just before the ReLUs that follow conv1_2,
  conv2_2, conv3_3, conv4_3 and conv5_3 ("pre_relu"), but torchvision's ReLUs are in place, so the
  next slice's first ReLU overwrites the stored tensor: what it compares is relu1_2, relu2_2,
  relu3_3, relu4_3 (after ReLU) and conv5_3 (before ReLU). Computed here as it computes them.
  Per tap: each position's channel vector divided by (its L2 norm + 1e-10), squared differences
  summed over channels, averaged over positions; the five taps summed. No learned weights, and
  no augmentation (the reference calls it with mode "not_train").
* ``lpips``: ccub's former L_P, the `lpips` package's LPIPS v0.1 (learned linear layers on a
  VGG16 trunk) on images resized to 224 px (bilinear, no antialiasing).
* ``clip`` (``clipconv_loss.py``, CLIPConvFeatureLoss with its defaults): an open_clip ViT-B/32
  with OpenAI weights. Images mapped to [0, 1] and clamped. 11 views of each pair: the image
  resized (shorter side, bicubic) and centre-cropped to 224, and 10 random views, each a
  RandomPerspective (distortion 0.5, always applied, bilinear, black fill) of the full image then
  a RandomResizedCrop to 224 (area 0.8, aspect 1, bilinear); x and y of a pair share each view's
  parameters; all views normalised with CLIP's mean/std. Features: every token (class and
  patches) output by the last residual block (before ln_post). Per view, 1 - cosine similarity
  over the token axis for each channel; the mean over channels and views is D. The random
  parameters are drawn from the ``generator`` passed to the call (or, without one, from the
  backbone's own generator, seeded at build), in the order torchvision's RandomPerspective and
  RandomResizedCrop draw them, so a seeded CPU generator gives torchvision's views for the same
  seed. Pass the training step's generator for runs that reproduce from their seed.
* ``dinov2`` (``dino_loss.py``): DINOv2 ViT-L/14 (transformers' port of the hub model). Images
  mapped to [0, 1] and clamped, resized (shorter side, bicubic) and centre-cropped to 224,
  ImageNet mean/std. Features: ``x_prenorm``, every token after the last block, before the final
  layer norm. D = mean squared difference over tokens and channels. The position embeddings are
  interpolated as the hub model does it (bicubic with scale factor (16 + 0.1) / 37), not as
  transformers' port does (to size 16).
* ``dreamsim`` (default for L_C; ``dreamsim_loss.py``): the `dreamsim` package's ensemble model
  (DINO ViT-B/16, CLIP ViT-B/16, OpenCLIP ViT-B/16 with its LoRA), from its cache folder. Images
  mapped to [0, 1] (no clamp), resized (shorter side, bicubic) and centre-cropped to 224; the
  package normalises per sub-model, concatenates the embeddings, centres and unit-normalises
  them; D = 1 - cosine similarity. Float32 only.
* ``blip2`` (``blip2_loss.py``): the BLIP-2 Q-Former (LAVIS ``blip2`` "pretrain", the weights
  transformers publishes as Salesforce/blip2-itm-vit-g) through `Blip2VisionModelWithProjection`.
  Images mapped to [0, 1] (no clamp), resized to 224 x 224 (bicubic, aspect not kept), CLIP
  mean/std. Features: the 32 query embeddings (EVA ViT-g, its final layer norm, Q-Former with
  the learned query tokens, vision projection), each unit-normalised. D = mean squared
  difference over queries and channels. The vision tower's final layer norm gets LAVIS's epsilon
  (1e-5; transformers' config says 1e-6).

``tiny=True`` builds random stand-ins (a random VGG16 trunk; the tiny open_clip preset; small
DINOv2, BLIP-2 and DreamSim models built in code from the same libraries' classes, the DreamSim
one from the dreamsim package's own model and ViT classes), which work at 32 px where the real
ones work at 224 (vgg at full resolution either way), so tests and smoke runs need no download;
`Backbone.describe` says RANDOM WEIGHTS for them.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import math
import os
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccub.models import ModelUnavailable, model_cache
from finetune.config import BACKBONES
from finetune.needs import (  # the default weights and how to get them, read without torch too
    DEFAULT_WEIGHTS,
    DREAMSIM_FILES,
    DREAMSIM_MISSING,
    dreamsim_hint,
    dreamsim_missing_files,
    vgg16_hint,
    vgg16_missing,
)

__all__ = ["BACKBONES", "DEFAULT_CONTRASTIVE", "DEFAULT_PERCEPTUAL", "DEFAULT_WEIGHTS", "DREAMSIM_FILES", "Backbone",
           "Blip2Backbone", "ClipBackbone", "DinoV2Backbone", "DreamSimBackbone", "LpipsBackbone", "VggBackbone",
           "build_backbone", "clip_views", "vgg16_checkpoint"]

DEFAULT_PERCEPTUAL = "vgg"  # L_P in the reference code
DEFAULT_CONTRASTIVE = "dreamsim"  # L_C in the reference's released configuration
REFERENCE_SIZE = 224
TINY_SIZE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# clipconv_loss.py: num_augs=10 views besides the plain one; RandomPerspective(distortion_scale=0.5,
# p=1.0, fill=0); RandomResizedCrop(224, scale=(0.8, 0.8), ratio=(1.0, 1.0)).
CLIP_AUGMENTATIONS = 10
CLIP_DISTORTION = 0.5
CLIP_CROP_AREA = 0.8
CLIP_CROP_RATIO = 1.0
# lpips_loss.py: _l2_normalize_features(x, eps=1e-10).
VGG_EPS = 1e-10
# The taps of torchvision's vgg16().features that the reference ends up comparing (see the module
# docstring): relu1_2, relu2_2, relu3_3, relu4_3 and conv5_3.
VGG16_TAPS = (3, 8, 15, 22, 28)
# Indices of the 13 convolutions in torchvision's vgg16().features.
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# The hub DINOv2 model interpolates its position embeddings with this offset (interpolate_offset).
DINOV2_HUB_OFFSET = 0.1
# LAVIS's ln_vision is a torch LayerNorm with the default epsilon.
BLIP2_LN_VISION_EPS = 1e-5
RANDOM_NOTE = "RANDOM WEIGHTS: a test backbone, its distances mean nothing"


class Backbone(nn.Module, abc.ABC):
    """A frozen perceptual distance: ``backbone(x, y, generator=None)`` -> (B,) float32, differentiable.

    Subclasses set `name` and implement `distance` on the [-1, 1] images, preprocessing included.
    `input_size` is the square side the images are brought to, or None for full resolution.
    """

    name: str = "backbone"

    def __init__(self, *, source: str, input_size: int | None, random_weights: bool, detail: str) -> None:
        super().__init__()
        self.source = source
        self.input_size = input_size
        self.random_weights = random_weights
        self.detail = detail

    def describe(self) -> str:
        """One line for run cards and logs; says RANDOM WEIGHTS for the tiny versions."""
        size = "full resolution" if self.input_size is None else f"{self.input_size}x{self.input_size} px"
        line = f"{self.name}: {self.source}; {self.detail}; {size}"
        return f"{line} ({RANDOM_NOTE})" if self.random_weights else line

    def extra_repr(self) -> str:
        return self.describe()

    def train(self, mode: bool = True) -> Backbone:
        # Frozen for good: a parent's .train() must not switch on dropout (LPIPS has some).
        return super().train(False)

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.float32

    def unit(self, x: Tensor, clamp: bool = False) -> Tensor:
        """[-1, 1] -> [0, 1] in this backbone's dtype, clamped where the reference clamps."""
        x = (x.to(self.dtype) + 1) / 2
        return x.clamp(0, 1) if clamp else x

    def forward(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape != y.shape:
            raise ValueError(f"{self.name} distance: expected two (B, 3, H, W) images of the same shape, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.distance(x, y, generator).reshape(x.shape[0]).float()

    @abc.abstractmethod
    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """(B,) distances between [-1, 1] images; each backbone defines its own."""


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """Random tiny weights that are the same on every build, without touching the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # lpips still calls torchvision's deprecated `pretrained=`; the warning says nothing to users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.")
        yield


def _normalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def _resize_centre_crop(x: Tensor, size: int) -> Tensor:
    """torchvision's Resize(size, BICUBIC) + CenterCrop(size) on tensors, as in torchvision 0.15
    (no antialiasing): the shorter side to `size`, then the centre square."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    x = TF.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=False)
    return TF.center_crop(x, [size, size])


def _resize_square(x: Tensor, size: int, mode: str) -> Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=False)


# --------------------------------------------------------------------------- vgg


def vgg16_checkpoint() -> Path:
    """Where torchvision keeps the ImageNet VGG16 weights: <torch hub dir>/checkpoints/vgg16-397923af.pth."""
    from torchvision.models import VGG16_Weights

    filename = os.path.basename(urlsplit(VGG16_Weights.IMAGENET1K_V1.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename



def _read_vgg16(path: Path) -> dict[str, Tensor]:
    """The torchvision VGG16 state dict in `path`, checked before anything is built."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelUnavailable(f"cannot read the VGG16 checkpoint {path} ({type(exc).__name__}: {exc}); "
                               f"{vgg16_hint(path)}") from exc
    wanted = [f"features.{i}.{kind}" for i in VGG16_CONVS for kind in ("weight", "bias")]
    missing = [key for key in wanted if not isinstance(state, dict) or key not in state]
    if missing:
        raise ModelUnavailable(f"{path} is not a torchvision VGG16 checkpoint (no {', '.join(missing[:3])}); "
                               f"{vgg16_hint(path)}")
    return state


def _load_vgg16_trunk(trunk: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Copy torchvision VGG16 weights (``features.N.*``) into a trunk named ``N.*`` or ``sliceK.N.*``.

    lpips keeps torchvision's layer indices inside its five slices, so the names map one to one.
    """
    mapped = {name: state["features." + name.split(".")[-2] + "." + name.split(".")[-1]]
              for name in trunk.state_dict()}
    try:
        trunk.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:  # shapes differ: another VGG
        raise ModelUnavailable(f"{path} does not hold VGG16 weights ({exc}); {vgg16_hint(path)}") from exc


def _vgg16_state(weights: str | None, backbone: str) -> tuple[dict[str, Tensor], Path]:
    path = Path(weights).expanduser() if weights else vgg16_checkpoint()
    if not path.is_file():
        # Checked here, before anything is built: torchvision would try to download it and hang offline.
        raise ModelUnavailable(vgg16_missing(path, backbone))
    return _read_vgg16(path), path


class VggBackbone(Backbone):
    """The reference's L_P: channel-normalised VGG16 features compared at full resolution."""

    name = "vgg"

    def __init__(self, features: nn.Sequential, *, source: str, random_weights: bool) -> None:
        super().__init__(source=source, input_size=None, random_weights=random_weights,
                         detail="VGG16 relu1_2, relu2_2, relu3_3, relu4_3, conv5_3 (CLIPasso/SCoFT reference); "
                                "channel-normalised, squared differences summed over channels, averaged over "
                                "positions, summed over layers")
        self.features = features[:VGG16_TAPS[-1] + 1]

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        maps = []
        for index, layer in enumerate(self.features):
            images = layer(images)
            if index in VGG16_TAPS:
                maps.append(images)
        return maps

    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images = _normalise(self.unit(torch.cat([x, y])), IMAGENET_MEAN, IMAGENET_STD)  # one pass for x and y
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for features in self.feature_maps(images):
            # float32: in float16 the 1e-10 would be 0 and an all-zero vector 0/0.
            features = features.float()
            features = features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + VGG_EPS)
            fx, fy = features.chunk(2)
            total = total + (fx - fy).pow(2).sum(dim=1).mean(dim=(1, 2))
        return total


def _vgg16_features() -> nn.Sequential:
    """torchvision's VGG16 convolution trunk alone (its classifier, 120M parameters, is never built),
    initialised as torchvision initialises its convolutions."""
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"], batch_norm=False)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return features


def _build_vgg(weights: str | None, tiny: bool, **_: Any) -> Backbone:
    state = path = None
    if not tiny:
        state, path = _vgg16_state(weights, "vgg")
    with _seeded():
        features = _vgg16_features()
    if state is not None:
        _load_vgg16_trunk(features, state, path)
        return VggBackbone(features, source=f"VGG16 trunk from {path}", random_weights=False)
    return VggBackbone(features, source="random VGG16 trunk", random_weights=True)


# --------------------------------------------------------------------------- lpips


class LpipsBackbone(Backbone):
    """The lpips package's learned LPIPS v0.1 on images resized to 224 px (ccub's former L_P)."""

    name = "lpips"

    def __init__(self, model: nn.Module, *, source: str, input_size: int, random_weights: bool) -> None:
        super().__init__(source=source, input_size=input_size, random_weights=random_weights,
                         detail="LPIPS v0.1 (VGG16 trunk, calibrated linear layers)")
        self.lpips = model

    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = _resize_square(self.unit(x), self.input_size, "bilinear")
        y = _resize_square(self.unit(y), self.input_size, "bilinear")
        # x, y are in [0, 1]: normalize=True maps them to the [-1, 1] that LPIPS expects.
        return self.lpips(x, y, normalize=True)


def _build_lpips(weights: str | None, tiny: bool, dtype: torch.dtype, **_: Any) -> Backbone:
    if dtype == torch.float16:
        # lpips divides by (norm + 1e-10); 1e-10 is 0 in float16, so an all-zero feature gives 0/0.
        raise ValueError("the lpips backbone cannot run in float16 (its normalisation divides by zero); "
                         "use float32 or bfloat16")
    import lpips

    state = path = None
    if not tiny:
        state, path = _vgg16_state(weights, "lpips")
    # pnet_rand=True: a trunk without weights (never downloads), here torchvision's convolutions
    # alone instead of its whole VGG16, whose classifier would be built only to be thrown away;
    # pretrained=True: the calibrated linear layers, which ship inside the lpips package.
    trunk_only = types.SimpleNamespace(vgg16=lambda **_: types.SimpleNamespace(features=_vgg16_features()))
    with _quiet(), _seeded(), mock.patch.object(lpips.pretrained_networks, "tv", trunk_only):
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        _load_vgg16_trunk(model.net, state, path)
    source = "random VGG16 trunk" if tiny else f"VGG16 trunk from {path}"
    return LpipsBackbone(model, source=source, input_size=TINY_SIZE if tiny else REFERENCE_SIZE,
                         random_weights=tiny)


# --------------------------------------------------------------------------- clip


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (1,), generator=generator, device=generator.device).item())


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return torch.empty(1, device=generator.device).uniform_(low, high, generator=generator).item()


def _draw_perspective(generator: torch.Generator, height: int, width: int,
                      distortion: float) -> tuple[list[list[int]], list[list[int]]]:
    """Corner points of a RandomPerspective(distortion, p=1): the same draws, in the same order, as
    torchvision's (its p test first, then the eight corner coordinates)."""
    torch.rand(1, generator=generator, device=generator.device)  # the p < 1 test; p = 1 always applies
    dx, dy = int(distortion * (width // 2)), int(distortion * (height // 2))
    top_left = [_randint(generator, 0, dx + 1), _randint(generator, 0, dy + 1)]
    top_right = [_randint(generator, width - dx - 1, width), _randint(generator, 0, dy + 1)]
    bottom_right = [_randint(generator, width - dx - 1, width), _randint(generator, height - dy - 1, height)]
    bottom_left = [_randint(generator, 0, dx + 1), _randint(generator, height - dy - 1, height)]
    start = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
    return start, [top_left, top_right, bottom_right, bottom_left]


def _draw_crop(generator: torch.Generator, height: int, width: int, area: float,
               ratio: float) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a RandomResizedCrop(scale=(area, area), ratio=(ratio, ratio)), drawn as
    torchvision draws it (ten tries, then the centre crop of the closest aspect)."""
    log_ratio = math.log(ratio)
    for _ in range(10):
        target = height * width * _uniform(generator, area, area)
        aspect = math.exp(_uniform(generator, log_ratio, log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return _randint(generator, 0, height - h + 1), _randint(generator, 0, width - w + 1), h, w
    if width / height < ratio:
        w, h = width, int(round(width / ratio))
    elif width / height > ratio:
        w, h = int(round(height * ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def clip_views(x: Tensor, y: Tensor, size: int, augmentations: int,
               generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The reference CLIP loss's views of each pair, in [0, 1], view-major: (V * B, 3, size, size) each.

    View 0: Resize(size, bicubic) + CenterCrop(size). Views 1..augmentations: RandomPerspective
    (distortion 0.5, black fill) of the full image, then RandomResizedCrop(size, area 0.8, aspect 1),
    bilinear, no antialiasing; x[b] and y[b] share each view's parameters; pairs are drawn in batch
    order, each pair's views in turn.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    height, width = x.shape[-2:]
    xs, ys = [_resize_centre_crop(x, size)], [_resize_centre_crop(y, size)]
    per_pair: list[list[Tensor]] = []
    for b in range(x.shape[0]):
        pair = torch.stack([x[b], y[b]])
        views = []
        for _ in range(augmentations):
            start, end = _draw_perspective(generator, height, width, CLIP_DISTORTION)
            warped = TF.perspective(pair, start, end, interpolation=InterpolationMode.BILINEAR,
                                    fill=[0.0] * pair.shape[1])
            top, left, h, w = _draw_crop(generator, height, width, CLIP_CROP_AREA, CLIP_CROP_RATIO)
            views.append(TF.resized_crop(warped, top, left, h, w, [size, size],
                                         interpolation=InterpolationMode.BILINEAR, antialias=False))
        per_pair.append(views)
    for v in range(augmentations):
        xs.append(torch.stack([per_pair[b][v][0] for b in range(x.shape[0])]))
        ys.append(torch.stack([per_pair[b][v][1] for b in range(x.shape[0])]))
    return torch.cat(xs), torch.cat(ys)


class ClipBackbone(Backbone):
    """The reference's CLIP conv distance: last block's tokens, cosine over tokens, 11 views."""

    name = "clip"

    def __init__(self, visual: nn.Module, *, source: str, random_weights: bool,
                 augmentations: int = CLIP_AUGMENTATIONS, seed: int = 0) -> None:
        blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if not isinstance(blocks, nn.ModuleList):
            raise ValueError(f"the clip backbone needs an open_clip ViT image tower (transformer.resblocks); "
                             f"{source} has a {type(visual).__name__}")
        if augmentations < 0:
            raise ValueError(f"clip augmentations must be 0 or more, got {augmentations}")
        size = visual.image_size
        size = size if isinstance(size, int) else size[0]
        super().__init__(source=source, input_size=int(size), random_weights=random_weights,
                         detail=f"1 - cos over tokens of block {len(blocks)}'s outputs, mean over channels and "
                                f"{augmentations + 1} views ({augmentations} random perspective + crop)")
        self.visual = visual
        self.augmentations = augmentations
        # Used only when a call passes no generator.
        self.generator = torch.Generator().manual_seed(seed)
        # Older towers run sequence-first (L, N, D); the hook sees whatever the block returns.
        self.batch_first = getattr(visual.transformer, "batch_first", True)

    def last_block_tokens(self, images: Tensor) -> Tensor:
        """(N, tokens, width): every token after the last residual block (a hook, removed right after)."""
        outputs: list[Tensor] = []
        handle = self.visual.transformer.resblocks[-1].register_forward_hook(
            lambda _m, _a, out: outputs.append(out))
        try:
            self.visual(images)
        finally:
            handle.remove()
        return outputs[0] if self.batch_first else outputs[0].transpose(0, 1)

    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        xs, ys = clip_views(self.unit(x, clamp=True), self.unit(y, clamp=True), self.input_size,
                            self.augmentations, self.generator if generator is None else generator)
        images = _normalise(torch.cat([xs, ys]), CLIP_MEAN, CLIP_STD)  # one pass for every view of x and y
        fx, fy = self.last_block_tokens(images).float().chunk(2)  # float32: cosines of bf16 are off by 1e-3
        per_view = (1 - F.cosine_similarity(fx, fy, dim=1)).mean(dim=1)  # over tokens, then channels
        return per_view.view(self.augmentations + 1, x.shape[0]).mean(dim=0)


def _build_clip(weights: str | None, tiny: bool, device: torch.device, seed: int = 0,
                clip_augmentations: int = CLIP_AUGMENTATIONS, **_: Any) -> Backbone:
    from ccub.models import TINY_CLIP_PRESETS, load_clip, parse_clip

    spec = parse_clip("tiny" if tiny else (weights or DEFAULT_WEIGHTS["clip"]), model_cache())
    model, _ = load_clip(spec, device=str(device))
    # Only the image tower is needed; the text tower is dropped with `model`.
    name = spec.model if spec.pretrained is None or spec.model in TINY_CLIP_PRESETS else \
        f"{spec.model}:{spec.pretrained}"
    return ClipBackbone(model.visual, source=f"open_clip {name}", random_weights=spec.random_weights,
                        augmentations=clip_augmentations, seed=seed)


# --------------------------------------------------------------------------- dinov2


def _hub_position_encoding(self: nn.Module, embeddings: Tensor, height: int, width: int) -> Tensor:
    """Position embeddings for a (height, width) input as the hub DINOv2 model interpolates them:
    bicubic in float32 with scale factors (grid + 0.1) / M, no antialiasing.

    Bound to a transformers `Dinov2Embeddings` in place of its own method, which interpolates to
    the target size and so samples slightly different positions.
    """
    position = self.position_embeddings
    patches, known = embeddings.shape[1] - 1, position.shape[1] - 1
    if patches == known and height == width:
        return position
    patch = self.patch_size if isinstance(self.patch_size, int) else self.patch_size[0]
    side = int(math.sqrt(known))
    h0, w0 = height // patch, width // patch
    grid = position[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    # The hub passes the width's factor for the first spatial axis: the same for square inputs.
    grid = F.interpolate(grid, scale_factor=((w0 + DINOV2_HUB_OFFSET) / side, (h0 + DINOV2_HUB_OFFSET) / side),
                         mode="bicubic", antialias=False)
    if tuple(grid.shape[-2:]) != (w0, h0):
        raise ValueError(f"DINOv2 position grid {tuple(grid.shape[-2:])} for a {height}x{width} input")
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, grid.shape[1])
    return torch.cat([position[:, :1].float(), grid], dim=1).to(embeddings.dtype)


class DinoV2Backbone(Backbone):
    """Mean squared difference of DINOv2's ``x_prenorm`` tokens (before the final layer norm)."""

    name = "dinov2"

    def __init__(self, model: nn.Module, *, source: str, input_size: int, random_weights: bool) -> None:
        super().__init__(source=source, input_size=input_size, random_weights=random_weights,
                         detail="MSE of x_prenorm tokens (last block, before the final layer norm)")
        model.embeddings.interpolate_pos_encoding = types.MethodType(_hub_position_encoding, model.embeddings)
        self.model = model

    def prenorm(self, pixels: Tensor) -> Tensor:
        """(N, tokens, width): what enters the model's final layer norm."""
        captured: list[Tensor] = []
        handle = self.model.layernorm.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.model(pixel_values=pixels)
        finally:
            handle.remove()
        return captured[0]

    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images = _resize_centre_crop(self.unit(torch.cat([x, y]), clamp=True), self.input_size)
        hidden = self.prenorm(_normalise(images, IMAGENET_MEAN, IMAGENET_STD))  # one pass for x and y
        hx, hy = hidden.float().chunk(2)
        return (hx - hy).pow(2).mean(dim=(1, 2))


# A 64 px position grid, so that the 32 px tiny input exercises the interpolation as 224 px does the
# real model's 518 px grid.
TINY_DINOV2 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 8,
               "image_size": 2 * TINY_SIZE}


def _build_dinov2(weights: str | None, tiny: bool, **_: Any) -> Backbone:
    if tiny:
        from transformers import Dinov2Config, Dinov2Model

        with _seeded():
            model = Dinov2Model(Dinov2Config(**TINY_DINOV2))
        return DinoV2Backbone(model, source="tiny Dinov2Model", input_size=TINY_SIZE, random_weights=True)
    from transformers import AutoModel

    from ccub.models import ensure_available, load_pretrained, resolve

    role = "DINOv2 backbone"
    ref = resolve(weights or DEFAULT_WEIGHTS["dinov2"], role)
    ensure_available(ref, role)
    model = load_pretrained(ref, role, AutoModel.from_pretrained)
    return DinoV2Backbone(model, source=ref.name, input_size=REFERENCE_SIZE, random_weights=ref.random_weights)


# --------------------------------------------------------------------------- dreamsim


class DreamSimBackbone(Backbone):
    """The dreamsim package's model: 1 - cos of its (ensemble) embeddings, input in [0, 1]."""

    name = "dreamsim"

    def __init__(self, model: nn.Module, *, source: str, input_size: int, random_weights: bool) -> None:
        super().__init__(source=source, input_size=input_size, random_weights=random_weights,
                         detail="DreamSim ensemble, 1 - cos of its normalised embeddings")
        self.model = model

    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        a = _resize_centre_crop(self.unit(x), self.input_size)
        b = _resize_centre_crop(self.unit(y), self.input_size)
        # dreamsim squeezes its embeddings, so B = 1 comes back as a scalar; forward() reshapes.
        return self.model(a, b)


@contextlib.contextmanager
def _no_downloads(what: str, hint: str) -> Iterator[None]:
    """Turn any torch.hub download attempt into ModelUnavailable, and undo torch.hub.set_dir calls."""
    hub = torch.hub
    saved_download, saved_dir = hub.download_url_to_file, getattr(hub, "_hub_dir", None)

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise ModelUnavailable(f"{what} tried to download {url} (to {dst}); {hint}")

    hub.download_url_to_file = refuse
    try:
        yield
    finally:
        hub.download_url_to_file = saved_download
        if hasattr(hub, "_hub_dir"):  # dreamsim points torch.hub at its cache for DINO: restore ours
            hub._hub_dir = saved_dir


def _tiny_vit(model_type: str, _load_dir: str) -> Any:
    """A tiny stand-in for one of dreamsim's ViT-B/16s, from its own ViT class: 12 blocks (its
    DINO feature is block 12's class token), patch 16, width 16. The CLIP ones get CLIP's
    pre-norm where dreamsim's loaders put it, and a projection."""
    from dreamsim.feature_extraction.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=[TINY_SIZE], patch_size=16, embed_dim=16, depth=12, num_heads=2, mlp_ratio=2,
                            qkv_bias=True, norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))
    if "clip" not in model_type:
        return vit
    vit.pos_drop = nn.LayerNorm(vit.embed_dim)
    return vit, torch.randn(vit.embed_dim, 8) / 4


def _tiny_dreamsim(device: torch.device) -> nn.Module:
    """dreamsim's PerceptualModel with the ensemble's configuration, its ViTs tiny and random."""
    from dreamsim.config import dreamsim_args
    from dreamsim.feature_extraction.extractor import ViTExtractor
    from dreamsim.model import PerceptualModel

    config = dreamsim_args["model_config"]["ensemble"]
    with _seeded(), mock.patch.object(ViTExtractor, "create_model", staticmethod(_tiny_vit)):
        return PerceptualModel(**config, device=str(device), load_dir="", normalize_embeds=True)


def _build_dreamsim(weights: str | None, tiny: bool, device: torch.device, dtype: torch.dtype,
                    **_: Any) -> Backbone:
    if dtype != torch.float32:
        raise ValueError(f"the dreamsim backbone runs in float32 only (asked for {dtype})")
    try:
        import dreamsim  # noqa: F401
    except ImportError as exc:
        raise ModelUnavailable(DREAMSIM_MISSING) from exc
    if tiny:
        return DreamSimBackbone(_tiny_dreamsim(device), source="tiny dreamsim ensemble", input_size=TINY_SIZE,
                                random_weights=True)
    cache = Path(weights).expanduser() if weights else model_cache() / "dreamsim"
    hint = dreamsim_hint(cache)
    missing = dreamsim_missing_files(cache)
    if missing:
        raise ModelUnavailable(f"the dreamsim backbone's weights are not in {cache} (missing {', '.join(missing)}); "
                               f"{hint}")
    from dreamsim import dreamsim as factory

    try:
        # It prints cache messages; print() with sys.stdout None writes nothing.
        with _no_downloads("dreamsim", hint), contextlib.redirect_stdout(None):
            model, _ = factory(pretrained=True, device=str(device), cache_dir=str(cache))
    except OSError as exc:  # no network (URLError), or files missing from its cache
        raise ModelUnavailable(f"the dreamsim backbone could not be built from {cache} "
                               f"({type(exc).__name__}: {exc}); {hint}") from exc
    return DreamSimBackbone(model, source=f"dreamsim from {cache}", input_size=REFERENCE_SIZE, random_weights=False)


# --------------------------------------------------------------------------- blip2


class Blip2Backbone(Backbone):
    """Mean squared difference of BLIP-2's unit-normalised Q-Former query embeddings."""

    name = "blip2"

    def __init__(self, model: nn.Module, *, source: str, input_size: int, random_weights: bool) -> None:
        super().__init__(source=source, input_size=input_size, random_weights=random_weights,
                         detail=f"MSE of the {model.config.num_query_tokens} unit-normalised Q-Former query "
                                f"embeddings")
        # LAVIS's ln_vision (a default torch LayerNorm) is transformers' post_layernorm.
        model.vision_model.post_layernorm.eps = BLIP2_LN_VISION_EPS
        self.model = model

    def distance(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images = _resize_square(self.unit(torch.cat([x, y])), self.input_size, "bicubic")
        embeds = self.model(pixel_values=_normalise(images, CLIP_MEAN, CLIP_STD)).image_embeds
        ex, ey = embeds.float().chunk(2)
        return (ex - ey).pow(2).mean(dim=(1, 2))


TINY_BLIP2 = {
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "image_size": TINY_SIZE, "patch_size": 8},
    "qformer_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "encoder_hidden_size": 32},
    "num_query_tokens": 4,
    "image_text_hidden_size": 16,
}


def tiny_blip2() -> nn.Module:
    """A random `Blip2VisionModelWithProjection` from a config built here (no download)."""
    from transformers import Blip2Config, Blip2VisionModelWithProjection

    with _seeded():
        return Blip2VisionModelWithProjection(Blip2Config(**TINY_BLIP2))


def _build_blip2(weights: str | None, tiny: bool, **_: Any) -> Backbone:
    if tiny:
        return Blip2Backbone(tiny_blip2(), source="tiny Blip2VisionModelWithProjection", input_size=TINY_SIZE,
                             random_weights=True)
    from transformers import Blip2VisionModelWithProjection

    from ccub.models import ensure_available, load_pretrained, resolve

    role = "BLIP-2 backbone"
    ref = resolve(weights or DEFAULT_WEIGHTS["blip2"], role)
    ensure_available(ref, role)
    model = load_pretrained(ref, role, Blip2VisionModelWithProjection.from_pretrained)
    return Blip2Backbone(model, source=ref.name, input_size=model.config.vision_config.image_size,
                         random_weights=ref.random_weights)


# --------------------------------------------------------------------------- registry

_BUILDERS: dict[str, Callable[..., Backbone]] = {
    "vgg": _build_vgg,
    "lpips": _build_lpips,
    "clip": _build_clip,
    "dinov2": _build_dinov2,
    "dreamsim": _build_dreamsim,
    "blip2": _build_blip2,
}


def build_backbone(name: str, *, weights: str | None = None, tiny: bool = False,
                   device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0,
                   clip_augmentations: int = CLIP_AUGMENTATIONS) -> Backbone:
    """Build perceptual distance `name` (one of `BACKBONES`) once: frozen, in eval mode, on `device`.

    `weights`: vgg and lpips, a torchvision VGG16 checkpoint file (default: the torch hub cache);
    clip, a ccub CLIP spec (``ViT-B-32:openai``, a local checkpoint, ``tiny``); dinov2 and blip2, a
    hub id or a save_pretrained folder; dreamsim, its cache folder. `tiny`: a random test version.
    `seed` seeds the clip backbone's own generator, used by calls that pass none;
    `clip_augmentations`: its random views besides the plain one (10 in the reference). Missing
    weights raise `ModelUnavailable` saying how to get them; nothing is downloaded here.
    """
    key = str(name).strip().lower()
    builder = _BUILDERS.get(key)
    if builder is None:
        raise ValueError(f"unknown perceptual backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if tiny and weights:
        raise ValueError(f"tiny=True builds a random {key} backbone, so weights={weights!r} would be ignored; "
                         f"pass one or the other")
    if clip_augmentations != CLIP_AUGMENTATIONS and key != "clip":
        raise ValueError(f"clip_augmentations applies to the clip backbone only, not {key}")
    if not dtype.is_floating_point:
        raise ValueError(f"backbone dtype must be a floating point type, got {dtype}")
    device = torch.device(device)
    backbone = builder(weights=weights, tiny=tiny, device=device, dtype=dtype, seed=seed,
                       clip_augmentations=clip_augmentations)
    backbone.to(device=device, dtype=dtype)
    backbone.requires_grad_(False)
    return backbone.eval()
