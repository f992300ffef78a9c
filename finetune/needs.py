"""Which models `ccub prepare` and `ccub finetune` need, checked without torch and without loading.

Each function returns `ccub.models.needs.Need`s: `require_all` turns the missing ones into one
error before a command starts its work, and `ccub doctor` prints them all. The backbones' default
weights and the texts saying how to get them live here (not in `finetune.backbones`, which
imports torch), so both read the same facts.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from ccub.models import model_cache
from ccub.models.needs import Need

DEFAULT_WEIGHTS = {
    "vgg": "torchvision VGG16 IMAGENET1K_V1 from the torch hub cache",
    "lpips": "torchvision VGG16 IMAGENET1K_V1 from the torch hub cache",
    "clip": "ViT-B-32:openai",
    "dinov2": "facebook/dinov2-large",
    "dreamsim": "$CCUB_CACHE/dreamsim",
    "blip2": "Salesforce/blip2-itm-vit-g",
}
# torchvision's VGG16_Weights.IMAGENET1K_V1 file (tests check it against torchvision's URL).
VGG16_FILE = "vgg16-397923af.pth"
VGG16_COMMAND = "python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\""
# What the dreamsim package keeps in its cache folder for the ensemble; the DINO ViT comes
# through torch.hub, whose repository copy lands in the same folder.
DREAMSIM_FILES = ("dino_vitb16_pretrain.pth", "clip_vitb16_pretrain.pth.tar", "open_clip_vitb16_pretrain.pth.tar",
                  "ensemble_lora/adapter_config.json", "facebookresearch_dino_main/hubconf.py")
OTHER_CHOICES = "or choose another distance: --backbone lpips (or vgg, clip, dinov2, blip2)"
DREAMSIM_MISSING = f"the dreamsim backbone needs the dreamsim package: `pip install dreamsim`; {OTHER_CHOICES}"
ROLES = {"vgg": "VGG16 backbone", "lpips": "LPIPS backbone", "clip": "CLIP backbone", "dinov2": "DINOv2 backbone",
         "dreamsim": "DreamSim backbone", "blip2": "BLIP-2 backbone"}


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: its set_dir when torch is loaded, else
    TORCH_HOME/hub (TORCH_HOME defaults to XDG_CACHE_HOME/torch, else ~/.cache/torch)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "hub"):
        return Path(torch.hub.get_dir())
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("TORCH_HOME") or os.path.join(xdg, "torch")).expanduser() / "hub"


def vgg16_checkpoint() -> Path:
    """Where torchvision keeps the ImageNet VGG16 weights: <torch hub dir>/checkpoints/vgg16-397923af.pth."""
    return torch_hub_dir() / "checkpoints" / VGG16_FILE


def vgg16_hint(path: Path) -> str:
    return (f"on a machine with network access run `{VGG16_COMMAND}` and copy "
            f"its torch hub cache (~/.cache/torch/hub/checkpoints/{path.name}) to {vgg16_checkpoint().parent} "
            f"here (or set TORCH_HOME to a copy), or pass the file as the backbone weights")


def vgg16_missing(path: Path, backbone: str) -> str:
    return (f"the {backbone} backbone needs torchvision's ImageNet VGG16 weights, {path} does not exist; "
            f"{vgg16_hint(path)}")


def dreamsim_command(cache: Path) -> str:
    return f"python -c \"from dreamsim import dreamsim; dreamsim(pretrained=True, device='cpu', cache_dir='{cache}')\""


def dreamsim_hint(cache: Path) -> str:
    return (f"on a machine with network access run `{dreamsim_command(cache)}` and copy that folder to {cache} "
            f"here (or pass its copy as the backbone weights); {OTHER_CHOICES}")


def dreamsim_missing_files(cache: Path) -> list[str]:
    return [name for name in DREAMSIM_FILES if not (cache / name).is_file()]


def check_backbone(name: str, weights: str | None = None, *, tiny: bool = False, network: bool = True,
                   hf_cache: str | Path | None = None) -> Need:
    """Whether backbone `name` (one of `finetune.config.BACKBONES`) can be built with `weights`."""
    from ccub.models.clip import check_clip
    from ccub.models.pretrained import check_pretrained

    key = name.strip().lower()
    role = ROLES.get(key, f"{key} backbone")
    if tiny:
        return Need(role, f"tiny {key}", note="random weights (tiny), built in code")
    if key in ("vgg", "lpips"):
        if key == "lpips" and importlib.util.find_spec("lpips") is None:
            return Need(role, "lpips", "the lpips backbone needs the lpips package: `pip install lpips`",
                        command="pip install lpips")
        path = Path(weights).expanduser() if weights else vgg16_checkpoint()
        if path.is_file():
            return Need(role, str(path), note="file")
        return Need(role, str(path), vgg16_missing(path, key), command=None if weights else VGG16_COMMAND,
                    copy=None if weights else f"~/.cache/torch/hub/checkpoints/{VGG16_FILE}")
    if key == "clip":
        return check_clip(weights or DEFAULT_WEIGHTS["clip"], model_cache(), role, network=network, hf_cache=hf_cache)
    if key in ("dinov2", "blip2"):
        return check_pretrained(weights or DEFAULT_WEIGHTS[key], role, network=network, cache_dir=hf_cache)
    if key == "dreamsim":
        if importlib.util.find_spec("dreamsim") is None:
            return Need(role, "dreamsim", DREAMSIM_MISSING, command="pip install dreamsim")
        cache = Path(weights).expanduser() if weights else model_cache() / "dreamsim"
        missing = dreamsim_missing_files(cache)
        if not missing:
            return Need(role, str(cache), note="folder")
        return Need(role, str(cache), f"the dreamsim backbone's weights are not in {cache} (missing "
                                      f"{', '.join(missing)}); {dreamsim_hint(cache)}",
                    command=dreamsim_command(cache), copy=str(cache))
    return Need(role, name, f"unknown perceptual backbone {name!r}")


def training_needs(cfg: Any, *, network: bool = True, hf_cache: str | Path | None = None) -> list[Need]:
    """What `ccub finetune` loads for ScoftConfig `cfg`: the base model and the backbones its
    variant's losses use (none of them for a tiny base, which builds its own)."""
    from ccub.models.pretrained import check_pretrained
    from finetune.tiny import is_tiny

    tiny = is_tiny(cfg.base)
    if tiny:
        needs = [Need("base model", cfg.base, note="random weights (tiny), built on first use")]
    else:
        needs = [check_pretrained(cfg.base, "base model", "model_index.json", network=network, cache_dir=hf_cache)]
    terms = set(cfg.terms())
    if "perceptual" in terms:
        needs.append(check_backbone(cfg.perceptual, tiny=tiny, network=network, hf_cache=hf_cache))
    if "contrastive" in terms and not (cfg.backbone == cfg.perceptual and "perceptual" in terms
                                       and not cfg.backbone_weights):
        needs.append(check_backbone(cfg.backbone, None if tiny else (cfg.backbone_weights or None), tiny=tiny,
                                    network=network, hf_cache=hf_cache))
    return needs


def prepare_needs(settings: Any, stages: tuple[str, ...], *, network: bool = True,
                  hf_cache: str | Path | None = None) -> list[Need]:
    """What `ccub prepare` loads for [prepare] `settings` and `stages` (captions, negatives)."""
    from ccub.models.pretrained import check_pretrained

    wanted = []
    if "captions" in stages and settings.captions == "caption":
        wanted.append((settings.captioner, "captioning model", "config.json"))
    if "negatives" in stages and settings.negatives_per_image:
        wanted += [(settings.depth_model, "depth model", "config.json"),
                   (settings.controlnet, "ControlNet", "config.json"),
                   (settings.base, "base model", "model_index.json")]
    return [check_pretrained(name, role, index, network=network, cache_dir=hf_cache) for name, role, index in wanted]
