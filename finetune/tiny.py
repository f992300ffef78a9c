"""Tiny randomly initialised models, so every model-backed step runs on a CPU in seconds.

No weights can be downloaded where ccub is tested, so `--base tiny` builds a Stable Diffusion
pipeline, a depth ControlNet, an image captioner and a depth estimator from the configs in
`TINY_PRESETS` (architectures are data, as in open_clip's model configs), saves them with
``save_pretrained`` and hands back the folders: everything downstream loads them through the
same ``from_pretrained`` path as real models. Each folder holds a marker file
(`ccub.models.RANDOM_MARKER`) so every output made with them says it is a smoke run.

The text tokenizer is CLIP's real byte-pair vocabulary (shipped inside open_clip), so prompts
tokenise exactly as with Stable Diffusion; the captioner's is a small word list, so its random
captions are at least made of words.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from copy import deepcopy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ccub.files import temporary_folder
from ccub.models import RANDOM_MARKER, load_presets, model_cache

# Bump when a builder changes what it writes, so stale cached builds are rebuilt.
BUILD_VERSION = 1

# name -> configs of every part, from finetune/tiny_presets/*.toml (`--base tiny`, `tiny-v`).
TINY_PRESETS = load_presets("finetune", "tiny_presets")

# The captioner's vocabulary: enough caption words that random captions read as words.
_CAPTION_WORDS = (
    "a", "an", "the", "of", "in", "on", "at", "with", "and", "two", "three", "people", "man", "woman", "men",
    "women", "child", "children", "girl", "boy", "family", "street", "market", "food", "plate", "bowl", "table",
    "rice", "soup", "bread", "house", "houses", "building", "temple", "roof", "city", "road", "car", "bus", "river",
    "tree", "trees", "flowers", "dress", "shirt", "hat", "cloth", "fabric", "red", "blue", "green", "yellow",
    "white", "black", "gold", "colorful", "old", "small", "large", "wooden", "stone", "sitting", "standing",
    "wearing", "holding", "near", "front", "top", "next", "view", "night", "day",
)


@dataclass(frozen=True)
class TinyModels:
    """Folders of one tiny preset, each loadable with ``from_pretrained``."""

    preset: str
    base: Path  # a StableDiffusionPipeline folder
    controlnet: Path
    captioner: Path
    depth: Path
    resolution: int


def is_tiny(name: str | None) -> bool:
    return bool(name) and name in TINY_PRESETS


def smoke_training(cfg: Any, given: set[str], from_file: bool) -> Any:
    """A ScoftConfig on a tiny preset with settings that train end to end in well under a minute
    on a CPU: the preset's resolution, 6 steps unless `given` sets steps or epochs, a checkpoint
    every 3 steps, no validation images. A config file says exactly what it wants: kept as is."""
    if from_file:
        return cfg
    changes = {"resolution": TINY_PRESETS[cfg.base]["resolution"], "checkpointing_steps": 3,
               "validation_steps": 0, "validation_inference_steps": 4}
    if not given & {"max_train_steps", "num_train_epochs"}:
        changes["max_train_steps"] = 6
    return replace(cfg, **changes)


def _digest(preset: dict[str, Any]) -> str:
    data = json.dumps({"preset": preset, "build": BUILD_VERSION}, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def tiny_models(name: str = "tiny", cache: Path | None = None) -> TinyModels:
    """The folders of tiny preset `name`, built into the cache the first time (random weights)."""
    if name not in TINY_PRESETS:
        raise ValueError(f"unknown tiny preset {name!r}; known: {', '.join(TINY_PRESETS)}")
    preset = deepcopy(TINY_PRESETS[name])
    root = Path(cache or model_cache()).expanduser() / "diffusers" / f"{name}-{_digest(preset)}"
    if not (root / RANDOM_MARKER).is_file():
        _build_atomically(name, preset, root)
    return TinyModels(name, root / "base", root / "controlnet", root / "captioner", root / "depth",
                      preset["resolution"])


def _build_atomically(name: str, preset: dict[str, Any], root: Path) -> None:
    # Build beside the final folder and rename, so parallel test workers never see half a model.
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_folder(root.parent, f".{root.name}.")
    try:
        _build(preset, tmp)
        (tmp / RANDOM_MARKER).write_text(json.dumps(
            {"random_weights": True, "preset": name, "build": BUILD_VERSION}, indent=2), encoding="utf-8")
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / RANDOM_MARKER).is_file():  # not another worker's finished build: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(preset: dict[str, Any], out: Path) -> None:
    import torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        unet = _build_base(preset, out / "base")
        _build_controlnet(preset, unet, out / "controlnet")
        _build_captioner(preset, out / "captioner")
        _build_depth(preset, out / "depth")


def clip_tokenizer(folder: Path):
    """CLIP's tokenizer (the vocabulary Stable Diffusion 1.x uses), written from open_clip's BPE file."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    # The first line is a header; CLIP keeps 49152 - 256 - 2 merges (as open_clip does).
    with gzip.open(bpe, "rt", encoding="utf-8") as fh:
        merges = fh.read().split("\n")[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges),
             "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _build_base(preset: dict[str, Any], out: Path):
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(**preset["unet"])
    vae = AutoencoderKL(**preset["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**preset["text_encoder"]))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = clip_tokenizer(Path(tmp))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDPMScheduler(**preset["scheduler"]), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out)
    return unet


def _build_controlnet(preset: dict[str, Any], unet, out: Path) -> None:
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, **preset["controlnet"])
    controlnet.save_pretrained(out)


def _build_captioner(preset: dict[str, Any], out: Path) -> None:
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    vocab = {token: i for i, token in enumerate([*specials, *_CAPTION_WORDS])}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    text = {**preset["captioner"]["text_config"], "vocab_size": len(vocab), "bos_token_id": vocab["[DEC]"],
            "eos_token_id": vocab["[SEP]"], "sep_token_id": vocab["[SEP]"], "pad_token_id": vocab["[PAD]"]}
    config = BlipConfig(text_config=text, vision_config=preset["captioner"]["vision_config"],
                        projection_dim=preset["captioner"]["projection_dim"])
    BlipForConditionalGeneration(config).save_pretrained(out)
    size = preset["captioner"]["vision_config"]["image_size"]
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": size, "width": size}),
                  tokenizer=tokenizer).save_pretrained(out)


def _build_depth(preset: dict[str, Any], out: Path) -> None:
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    DPTForDepthEstimation(DPTConfig(**preset["depth"])).save_pretrained(out)
    size = preset["depth"]["image_size"]
    DPTImageProcessor(size={"height": size, "width": size}, keep_aspect_ratio=False).save_pretrained(out)
