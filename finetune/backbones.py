"""The perceptual distances D of SCoFT's losses: L_P = LPIPS(x0_hat, x+) and
L_C = D(x0_hat, x+) - mean_k D(x0_hat, x-_k), with D chosen from `BACKBONES`.

One entry point, `build_backbone(name, ...)`, and a dict of builders (as in open_clip's factory).
Every backbone is built once, frozen (eval mode, no parameter requires grad, and it stays in
eval mode when a parent module calls ``.train()``), and is called as ``backbone(x, y) -> (B,)``
with x, y of shape (B, 3, H, W) in [-1, 1], the VAE's range. Inside, each maps [-1, 1] to
[0, 1], resizes to its own input size (bilinear, no antialiasing: cheap and differentiable)
and applies its own normalisation; gradients flow to x (and y). Inputs are not clamped, since
clamping would cut the gradient of a decoded image that overshoots [-1, 1] slightly. The
resize squashes non-square images to the square input instead of cropping them, so the whole
image counts. Distances come back in float32 whatever the backbone's dtype.

Distances (per image pair; f are features of the normalised, resized images):

* ``lpips``: LPIPS v0.1 with a VGG16 trunk (the `lpips` package): per layer l, unit-normalise
  the channel vectors, weight the squared differences with the learned linear layer w_l and
  average over positions; sum over the 5 layers. The package wants [-1, 1]: it receives the
  resized [0, 1] image with ``normalize=True`` (it maps back to [-1, 1]) and then applies its
  own scaling layer. The linear layers ship inside the package; the ImageNet VGG16 trunk comes
  from torchvision's checkpoint in the torch hub cache (or ``weights=PATH``), loaded here: the
  network is never asked for it. Not in float16: its 1e-10 epsilon is 0 there.
* ``clip``: an open_clip image tower (default ViT-B/32, OpenAI weights): outputs of every
  residual block, all tokens; D = mean over blocks and tokens of 1 - cos(f_x, f_y).
  The paper compares CLIP features "with augmented views"; here that is an optional,
  deterministic set (``clip_views``: the image, its mirror, four corner crops of 7/8 side),
  the same views for x and y, distances averaged over views. Off by default (1 view). Random
  augmentations (random resized crops and perspective, as in CLIPasso's CLIP loss) are not
  implemented: fixed views keep the loss a deterministic function of the images.
* ``dinov2``: a transformers DINOv2 model (default facebook/dinov2-large, ViT-L/14) at 224 px,
  ImageNet mean/std: D = mean over tokens and channels of (f_x - f_y)^2 on the last hidden
  state (all tokens, after its final layer norm).
* ``dreamsim``: the `dreamsim` package's ensemble model, when installed and its weights are in
  its cache folder (``weights``, default ``$CCUB_CACHE/dreamsim``): D = 1 - cos of its
  embeddings at 224 px (it normalises per sub-model itself). Float32 only; no tiny version.

``tiny=True`` builds random stand-ins at 32 px (random VGG16 trunk with the packaged LPIPS
layers; the tiny open_clip preset; a 2-layer DINOv2), so tests and smoke runs need no
download; `Backbone.describe` says RANDOM WEIGHTS for them.
"""

from __future__ import annotations

import abc
import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ccub.models import ModelUnavailable, model_cache

__all__ = ["BACKBONES", "DEFAULT_WEIGHTS", "Backbone", "ClipBackbone", "DinoV2Backbone", "DreamSimBackbone",
           "LpipsBackbone", "build_backbone", "vgg16_checkpoint"]

BACKBONES = ("lpips", "clip", "dinov2", "dreamsim")
DEFAULT_WEIGHTS = {
    "lpips": "torchvision VGG16 IMAGENET1K_V1 from the torch hub cache",
    "clip": "ViT-B-32:openai",
    "dinov2": "facebook/dinov2-large",
    "dreamsim": "$CCUB_CACHE/dreamsim",
}
INPUT_SIZE = 224
TINY_SIZE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MAX_VIEWS = 6
CLIP_CROP = 7 / 8
DREAMSIM_MISSING = ("the dreamsim backbone needs `pip install dreamsim` and its weights in its cache; "
                    "or choose --backbone lpips|clip|dinov2")
RANDOM_NOTE = "RANDOM WEIGHTS: a test backbone, its distances mean nothing"


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class Backbone(nn.Module, abc.ABC):
    """A frozen perceptual distance: ``backbone(x, y)`` -> (B,) float32, differentiable.

    Subclasses set `name`, and implement `distance` on preprocessed images (resized, normalised
    with `mean`/`std` when given).
    """

    name: str = "backbone"

    def __init__(self, *, source: str, input_size: int | Sequence[int], random_weights: bool, detail: str,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.source = source
        self.input_size = _pair(input_size)
        self.random_weights = random_weights
        self.detail = detail
        self.normalise = mean is not None
        if mean is not None:
            # Non-persistent buffers: they follow .to(device, dtype) but stay out of state dicts.
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def describe(self) -> str:
        """One line for run cards and logs; says RANDOM WEIGHTS for the tiny versions."""
        h, w = self.input_size
        line = f"{self.name}: {self.source}; {self.detail}; {h}x{w} px"
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

    def preprocess(self, x: Tensor) -> Tensor:
        """[-1, 1] -> [0, 1] -> this backbone's input size -> its normalisation."""
        x = (x.to(self.dtype) + 1) / 2
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=False)
        if self.normalise:
            x = (x - self.mean) / self.std
        return x

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape != y.shape:
            raise ValueError(f"{self.name} distance: expected two (B, 3, H, W) images of the same shape, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.distance(self.preprocess(x), self.preprocess(y)).reshape(x.shape[0]).float()

    @abc.abstractmethod
    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """(B,) distances between preprocessed images; each backbone defines its own."""


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


def _views(x: Tensor, n: int) -> Tensor:
    """The first `n` deterministic views of x, stacked on the batch axis (view-major)."""
    if n == 1:
        return x
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h * CLIP_CROP)), max(1, round(w * CLIP_CROP))
    views = [x, x.flip(-1)]
    for top, left in ((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)):
        crop = x[..., top:top + ch, left:left + cw]
        views.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=False))
    return torch.cat(views[:n])


# --------------------------------------------------------------------------- lpips


class LpipsBackbone(Backbone):
    name = "lpips"

    def __init__(self, model: nn.Module, *, source: str, input_size: int, random_weights: bool) -> None:
        super().__init__(source=source, input_size=input_size, random_weights=random_weights,
                         detail="LPIPS v0.1 (VGG16 trunk, calibrated linear layers)")
        self.lpips = model

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        # x, y are in [0, 1]: normalize=True maps them to the [-1, 1] that LPIPS expects.
        return self.lpips(x, y, normalize=True)


def vgg16_checkpoint() -> Path:
    """Where torchvision keeps the ImageNet VGG16 weights: <torch hub dir>/checkpoints/vgg16-397923af.pth."""
    from torchvision.models import VGG16_Weights

    filename = os.path.basename(urlsplit(VGG16_Weights.IMAGENET1K_V1.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


# Indices of the 13 convolutions in torchvision's vgg16().features; lpips uses all of them.
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _read_vgg16(path: Path) -> dict[str, Tensor]:
    """The torchvision VGG16 state dict in `path`, checked before anything is built."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelUnavailable(f"cannot read the VGG16 checkpoint {path} ({type(exc).__name__}: {exc}); "
                               f"{_vgg16_hint(path)}") from exc
    wanted = [f"features.{i}.{kind}" for i in VGG16_CONVS for kind in ("weight", "bias")]
    missing = [key for key in wanted if not isinstance(state, dict) or key not in state]
    if missing:
        raise ModelUnavailable(f"{path} is not a torchvision VGG16 checkpoint (no {', '.join(missing[:3])}); "
                               f"{_vgg16_hint(path)}")
    return state


def _load_vgg16_trunk(trunk: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Copy torchvision VGG16 weights (``features.N.*``) into lpips's trunk (``sliceK.N.*``).

    lpips keeps torchvision's layer indices inside its five slices, so the names map one to one.
    """
    mapped = {name: state["features." + name.split(".", 1)[1]] for name in trunk.state_dict()}
    try:
        trunk.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:  # shapes differ: another VGG
        raise ModelUnavailable(f"{path} does not hold VGG16 weights ({exc}); {_vgg16_hint(path)}") from exc


def _vgg16_hint(path: Path) -> str:
    return (f"on a machine with network access run "
            f"`python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` and copy "
            f"its torch hub cache (~/.cache/torch/hub/checkpoints/{path.name}) to {vgg16_checkpoint().parent} "
            f"here (or set TORCH_HOME to a copy), or pass the file as the backbone weights")


def _build_lpips(weights: str | None, tiny: bool, dtype: torch.dtype, **_: Any) -> Backbone:
    if dtype == torch.float16:
        # lpips divides by (norm + 1e-10); 1e-10 is 0 in float16, so an all-zero feature gives 0/0.
        raise ValueError("the lpips backbone cannot run in float16 (its normalisation divides by zero); "
                         "use float32 or bfloat16")
    import lpips

    state = None
    if tiny:
        path, source = None, "random VGG16 trunk"
    else:
        path = Path(weights).expanduser() if weights else vgg16_checkpoint()
        if not path.is_file():
            # Checked here, before lpips runs: torchvision would try to download it and hang offline.
            raise ModelUnavailable(f"the lpips backbone needs torchvision's ImageNet VGG16 weights, "
                                   f"{path} does not exist; {_vgg16_hint(path)}")
        state = _read_vgg16(path)
        source = f"VGG16 trunk from {path}"
    # pnet_rand=True: torchvision builds the trunk without looking for weights (never downloads);
    # pretrained=True: the calibrated linear layers, which ship inside the lpips package.
    with _quiet(), _seeded():
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        _load_vgg16_trunk(model.net, state, path)
    return LpipsBackbone(model, source=source, input_size=TINY_SIZE if tiny else INPUT_SIZE, random_weights=tiny)


# --------------------------------------------------------------------------- clip


class ClipBackbone(Backbone):
    """Cosine distance of the token features after each residual block of an open_clip ViT tower."""

    name = "clip"

    def __init__(self, visual: nn.Module, *, source: str, random_weights: bool, views: int = 1,
                 layers: Sequence[int] | None = None) -> None:
        blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if not isinstance(blocks, nn.ModuleList):
            raise ValueError(f"the clip backbone needs an open_clip ViT image tower (transformer.resblocks); "
                             f"{source} has a {type(visual).__name__}")
        if not 1 <= views <= CLIP_MAX_VIEWS:
            raise ValueError(f"clip views must be 1 to {CLIP_MAX_VIEWS}, got {views}")
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        layers = tuple(range(len(blocks)) if layers is None else layers)
        cfg = dict(getattr(visual, "preprocess_cfg", None) or {})
        which = f"blocks {layers[0] + 1}-{layers[-1] + 1}" if len(layers) > 1 else f"block {layers[0] + 1}"
        view_note = f", {views} views" if views > 1 else ""
        super().__init__(source=source, input_size=visual.image_size, random_weights=random_weights,
                         detail=f"1 - cos of tokens after {which} of {len(blocks)}{view_note}",
                         mean=cfg.get("mean", OPENAI_DATASET_MEAN), std=cfg.get("std", OPENAI_DATASET_STD))
        self.layers = layers
        self.visual = visual
        self.views = views
        # Older towers run sequence-first (L, N, D); the hooks see whatever the blocks return.
        self.batch_first = getattr(visual.transformer, "batch_first", True)

    def block_outputs(self, images: Tensor) -> list[Tensor]:
        """(N, tokens, width) after each block in `layers` (hooks, removed again right after)."""
        outputs: list[Tensor] = []
        blocks = self.visual.transformer.resblocks
        handles = [blocks[i].register_forward_hook(lambda _m, _a, out: outputs.append(out)) for i in self.layers]
        try:
            self.visual(images)
        finally:
            for handle in handles:
                handle.remove()
        return outputs if self.batch_first else [out.transpose(0, 1) for out in outputs]

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        n, batch = self.views, x.shape[0]
        total = x.new_zeros(n * batch, dtype=torch.float32)
        outputs = self.block_outputs(torch.cat([_views(x, n), _views(y, n)]))  # one pass for x and y
        for out in outputs:
            fx, fy = out.float().chunk(2)  # float32 arithmetic: in bfloat16, 1 - cos(f, f) is off by 1e-3
            total = total + (1 - F.cosine_similarity(fx, fy, dim=-1)).mean(dim=1)
        return (total / len(outputs)).view(n, batch).mean(dim=0)


def _build_clip(weights: str | None, tiny: bool, device: torch.device, clip_views: int = 1, **_: Any) -> Backbone:
    from ccub.models import TINY_CLIP_PRESETS, load_clip, parse_clip

    spec = parse_clip("tiny" if tiny else (weights or DEFAULT_WEIGHTS["clip"]), model_cache())
    model, _ = load_clip(spec, device=str(device))
    # Only the image tower is needed; the text tower is dropped with `model`.
    name = spec.model if spec.pretrained is None or spec.model in TINY_CLIP_PRESETS else \
        f"{spec.model}:{spec.pretrained}"
    return ClipBackbone(model.visual, source=f"open_clip {name}", random_weights=spec.random_weights,
                        views=clip_views)


# --------------------------------------------------------------------------- dinov2


class DinoV2Backbone(Backbone):
    """Mean squared difference of DINOv2's last hidden state (all tokens)."""

    name = "dinov2"

    def __init__(self, model: nn.Module, *, source: str, input_size: int, random_weights: bool) -> None:
        super().__init__(source=source, input_size=input_size, random_weights=random_weights,
                         detail="MSE of last-hidden-state tokens", mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.model = model

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        hidden = self.model(pixel_values=torch.cat([x, y])).last_hidden_state  # one pass for x and y
        hx, hy = hidden.float().chunk(2)  # the squared differences in float32 whatever the model's dtype
        return (hx - hy).pow(2).mean(dim=(1, 2))


TINY_DINOV2 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 8,
               "image_size": TINY_SIZE}


def _build_dinov2(weights: str | None, tiny: bool, **_: Any) -> Backbone:
    if tiny:
        from transformers import Dinov2Config, Dinov2Model

        with _seeded():
            model = Dinov2Model(Dinov2Config(**TINY_DINOV2))
        return DinoV2Backbone(model, source="tiny Dinov2Model", input_size=TINY_SIZE, random_weights=True)
    from transformers import AutoModel

    from finetune.weights import ensure_available, load, resolve

    role = "DINOv2 backbone"
    ref = resolve(weights or DEFAULT_WEIGHTS["dinov2"], role)
    ensure_available(ref, role)
    model = load(ref, role, AutoModel.from_pretrained)
    return DinoV2Backbone(model, source=ref.name, input_size=INPUT_SIZE, random_weights=ref.random_weights)


# --------------------------------------------------------------------------- dreamsim


class DreamSimBackbone(Backbone):
    """The dreamsim package's model: 1 - cos of its (ensemble) embeddings at 224 px, input in [0, 1]."""

    name = "dreamsim"

    def __init__(self, model: nn.Module, *, source: str) -> None:
        super().__init__(source=source, input_size=INPUT_SIZE, random_weights=False,
                         detail="DreamSim ensemble, 1 - cos of embeddings")
        self.model = model
        # dreamsim keeps its ViTs in a plain list of extractors, which .parameters(), .eval() and
        # .to() do not see: register them so freezing and device moves reach them.
        extractors = getattr(model, "extractor_list", [])
        self.vits = nn.ModuleList(e.model for e in extractors if isinstance(getattr(e, "model", None), nn.Module))

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        # dreamsim squeezes its embeddings, so B = 1 comes back as a scalar; forward() reshapes.
        return self.model(x, y)


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


def _build_dreamsim(weights: str | None, tiny: bool, device: torch.device, dtype: torch.dtype,
                    **_: Any) -> Backbone:
    if tiny:
        raise ValueError("dreamsim has no tiny version; use --backbone lpips|clip|dinov2 for smoke runs")
    if dtype != torch.float32:
        raise ValueError(f"the dreamsim backbone runs in float32 only (asked for {dtype})")
    cache = Path(weights).expanduser() if weights else model_cache() / "dreamsim"
    hint = (f"{DREAMSIM_MISSING} (looked in {cache}; to fill it, on a machine with network access run "
            f"`python -c \"from dreamsim import dreamsim; dreamsim(pretrained=True, cache_dir='{cache}')\"` "
            f"and copy the folder)")
    try:
        from dreamsim import dreamsim
    except ImportError as exc:
        raise ModelUnavailable(DREAMSIM_MISSING) from exc
    cache.mkdir(parents=True, exist_ok=True)
    try:
        # It prints cache messages; print() with sys.stdout None writes nothing.
        with _no_downloads("dreamsim", hint), contextlib.redirect_stdout(None):
            model, _ = dreamsim(pretrained=True, device=str(device), cache_dir=str(cache))
    except OSError as exc:  # no network (URLError), or files missing from its cache
        raise ModelUnavailable(f"{hint}: {type(exc).__name__}: {exc}") from exc
    return DreamSimBackbone(model, source=f"dreamsim from {cache}")


# --------------------------------------------------------------------------- registry

_BUILDERS: dict[str, Callable[..., Backbone]] = {
    "lpips": _build_lpips,
    "clip": _build_clip,
    "dinov2": _build_dinov2,
    "dreamsim": _build_dreamsim,
}


def build_backbone(name: str, *, weights: str | None = None, tiny: bool = False,
                   device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                   clip_views: int = 1) -> Backbone:
    """Build perceptual distance `name` (one of `BACKBONES`) once: frozen, in eval mode, on `device`.

    `weights`: lpips, a torchvision VGG16 checkpoint file (default: the torch hub cache); clip, a
    ccub CLIP spec (``ViT-B-32:openai``, a local checkpoint, ``tiny``); dinov2, a hub id or a
    save_pretrained folder; dreamsim, its cache folder. `tiny`: a random test version (not for
    dreamsim). `clip_views`: deterministic augmented views for clip (1 = none). Missing weights
    raise `ModelUnavailable` saying how to get them; nothing is downloaded here.
    """
    key = str(name).strip().lower()
    builder = _BUILDERS.get(key)
    if builder is None:
        raise ValueError(f"unknown perceptual backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if tiny and weights:
        raise ValueError(f"tiny=True builds a random {key} backbone, so weights={weights!r} would be ignored; "
                         f"pass one or the other")
    if clip_views != 1 and key != "clip":
        raise ValueError(f"clip_views applies to the clip backbone only, not {key}")
    if not dtype.is_floating_point:
        raise ValueError(f"backbone dtype must be a floating point type, got {dtype}")
    device = torch.device(device)
    backbone = builder(weights=weights, tiny=tiny, device=device, dtype=dtype, clip_views=clip_views)
    backbone.to(device=device, dtype=dtype)
    backbone.requires_grad_(False)
    return backbone.eval()
