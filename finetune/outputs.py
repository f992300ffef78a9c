"""What a finished run leaves for people and tools: the LoRA file(s), sample grids, the run card.

`pytorch_lora_weights.safetensors` is diffusers' own LoRA format (saved by
`StableDiffusionPipeline.save_lora_weights`, adapter metadata included), so
`pipe.load_lora_weights("runs/x")` loads it as is. `--export kohya` adds
`pytorch_lora_weights_kohya.safetensors` with kohya-ss key names and alphas, the format
AUTOMATIC1111 and ComfyUI read.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import torch

from ccub.escape import markdown_text
from ccub.files import atomic_write_text
from finetune.run_record import LORA_FILE, RunRecord

KOHYA_FILE = "pytorch_lora_weights_kohya.safetensors"


def peft_state(unet) -> dict[str, torch.Tensor]:
    """The UNet's LoRA weights in PEFT naming (what checkpoints store)."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}


def save_lora(unet, output: Path) -> Path:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    StableDiffusionPipeline.save_lora_weights(
        save_directory=str(output), unet_lora_layers=convert_state_dict_to_diffusers(peft_state(unet)),
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(), safe_serialization=True)
    return Path(output) / LORA_FILE


def save_kohya(unet, output: Path, family: str | None = None) -> Path:
    """kohya-ss keys (lora_unet_..._to_q.lora_down.weight / .lora_up.weight / .alpha) and kohya's
    metadata: the network (`ss_network_module`, `ss_network_dim` = rank, `ss_network_alpha`) and,
    when `family` ("sd_v1" or "sd_v2", `finetune.components.sd_family`) is known, the base model's
    (`ss_base_model_version`, `ss_v2`), which tools read to pick the model a LoRA fits."""
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    state = {f"unet.{k}": v for k, v in peft_state(unet).items()}
    kohya = convert_state_dict_to_kohya(state)
    adapter = unet.peft_config["default"]
    alpha = float(adapter.lora_alpha)
    # diffusers writes alpha = rank; the adapter's own alpha keeps its strength when they differ.
    kohya = {k: (torch.tensor(alpha) if k.endswith(".alpha") else v.contiguous()) for k, v in kohya.items()}
    path = Path(output) / KOHYA_FILE
    save_file(kohya, str(path), metadata=kohya_metadata(adapter.r, alpha, family))
    return path


def kohya_metadata(rank: int, alpha: float, family: str | None) -> dict[str, str]:
    """The kohya-ss `ss_*` metadata of a LoRA (safetensors metadata values are strings)."""
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(alpha)}
    if family is not None:
        metadata |= {"ss_base_model_version": family, "ss_v2": str(family == "sd_v2")}
    return metadata


def sample_grid(images: list, columns: int):
    """Images in rows of `columns` (prompts down, seeds across)."""
    from PIL import Image

    width, height = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * width, rows * height), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * width, (i // columns) * height))
    return grid


def hardware(accelerator) -> dict[str, Any]:
    device = accelerator.device
    info = {"device": str(device), "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision, "torch": torch.__version__,
            "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("ccub", "diffusers", "transformers", "peft", "accelerate", "torch", "lpips", "open_clip_torch"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def write_run_card(output: Path, run: RunRecord) -> None:
    """`run.json` (read by `ccub benchmark`) and a Hugging Face model card `README.md`."""
    run.write_to(output)
    atomic_write_text(Path(output) / "README.md", render_card(run))


# A hub model id: "name" or "owner/name" (letters, digits, "-", "_", "."), not a path.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# An absolute path (POSIX, ~, or a Windows drive) inside a description: up to a space or , ; ( )
_ABSOLUTE = re.compile(r"(?<![\w.:/])(?:~?/|[A-Za-z]:[\\/])[^\s,;()]*")
CARD_TAGS = ("text-to-image", "stable-diffusion", "lora", "diffusers", "scoft", "ccub")


def hub_base(run: RunRecord) -> str | None:
    """The base model's hub id; None for a tiny preset or a local folder (the hub knows neither)."""
    from finetune.tiny import is_tiny

    name = run.base_model
    if is_tiny(name) or name != run.base_path or not _HUB_ID.fullmatch(name) or ".." in name:
        return None
    return name


def _no_local_paths(text: str) -> str:
    """`text` with every absolute path replaced by its last part (a card is published; where the
    files were on the training machine is nobody's business and useless elsewhere)."""
    return _ABSOLUTE.sub(lambda m: re.split(r"[\\/]", m.group(0).rstrip("/\\"))[-1] or m.group(0), text)


def render_card(run: RunRecord) -> str:
    """The model card. Names, paths and descriptions come from users: in the YAML header they are JSON
    strings (valid YAML, no line breaks), in the Python example JSON literals inside a fenced block, and
    everywhere else `markdown_text`, so no value renders as HTML, a link or a table break.

    The header is what the hub reads: `base_model` only when the base is a hub id (a tiny preset
    or a folder is nothing the hub can link); `license: other`, since the licence of weights
    trained on community images is not the images' licence -- the body lists the licences the
    training images carry. No absolute path of the training machine appears: the run, the
    dataset and local models are named by their folder names."""
    from finetune.tiny import is_tiny

    cfg = run.config
    base_id = hub_base(run)
    md = markdown_text

    def local(text: str) -> str:
        return md(_no_local_paths(text))

    culture = run.culture or "unknown"
    head = ["---"]
    if base_id:
        head.append(f"base_model: {json.dumps(base_id)}")
    head += ["license: other", "library_name: diffusers", "tags:", *(f"- {t}" for t in CARD_TAGS),
             f"- {json.dumps('culture-' + culture)}", "---", ""]
    base_name = base_id or re.split(r"[\\/]", run.base_model.rstrip("/\\"))[-1] or run.base_model
    lines = [*head, f"# SCoFT LoRA: {md(run.culture or 'unknown culture')} ({md(run.variant)})", ""]
    if run.smoke_run:
        lines += ["> **SMOKE RUN.** Trained with RANDOM WEIGHTS (a tiny random base model, captioner or "
                  "backbone). These weights only test the pipeline; do not use or report them.", ""]
    terms = ", ".join(f"{name} x {weight:g}" for name, weight in run.loss_weights.items())
    if base_id:
        load_base = [f"pipe = StableDiffusionPipeline.from_pretrained({json.dumps(base_id)})"]
    elif is_tiny(run.base_model):
        load_base = ["from finetune.tiny import tiny_models  # a tiny random model that ccub builds",
                     f"pipe = StableDiffusionPipeline.from_pretrained(tiny_models({json.dumps(run.base_model)}).base)"]
    else:
        load_base = [f"# the base model {json.dumps(base_name)} is not on the hub: the folder it was read from",
                     f"pipe = StableDiffusionPipeline.from_pretrained({json.dumps(base_name)})"]
    run_folder = Path(run.output).name or run.output
    lines += [
        f"LoRA (rank {cfg['rank']}, alpha {cfg['lora_alpha'] or cfg['rank']}) on the UNet attention projections of "
        f"{local(run.base_model)}, trained by `ccub finetune` with variant **{md(run.variant)}** "
        f"(losses: {md(terms)}; perceptual terms every {cfg['perceptual_interval']} micro-batches, distance "
        f"{local(run.backbones.get('contrastive', '-'))} for L_C and "
        f"{local(run.backbones.get('perceptual', '-'))} for L_P).", "",
        "```python",
        "from diffusers import StableDiffusionPipeline",
        *load_base,
        f"pipe.load_lora_weights({json.dumps(run_folder)})  # the folder of this card",
        "```", "",
        "| | |", "|---|---|",
        f"| dataset | {local(Path(run.dataset).name or run.dataset)} ({run.images} images; data card: "
        f"{local(_card_name(run.data_card))}) |",
        f"| training data licences | {md(_licences(run))} |",
        f"| steps | {run.steps} optimizer steps of {cfg['train_batch_size']} x "
        f"{cfg['gradient_accumulation_steps']} images x {run.hardware['processes']} process(es) |",
        f"| time | {run.seconds:.0f} s |",
        f"| hardware | {md(run.hardware.get('gpu', run.hardware['device']))}, "
        f"{md(run.hardware['mixed_precision'])} |",
        f"| seed | {cfg['seed']} |",
        f"| libraries | {md(', '.join(f'{k} {v}' for k, v in run.versions.items()))} |", "",
        "The licence is `other`: these weights were trained on the images above under their licences "
        "(attribution and share-alike terms may apply to what you make with them), and the base "
        "model's own licence applies too.", "",
        "The resolved config is `config.toml`, the training log `train_log.jsonl` (TensorBoard logs in `logs/`),",
        "validation grids `samples/`.", ""]
    return "\n".join(lines)


def _card_name(data_card: str | None) -> str:
    """The data card as `<dataset's parent folder>/README.md` (it sits beside the culture folders)."""
    if not data_card:
        return "none"
    path = Path(data_card)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _licences(run: RunRecord) -> str:
    """'CC-BY-4.0 (3 images), CC0-1.0 (1 image)'; images without a licence are counted last."""
    def images(n: int) -> str:
        return f"{n} image{'s' if n != 1 else ''}"

    parts = [f"{name} ({images(n)})" for name, n in sorted(run.data_licenses.items(), key=lambda kv: (-kv[1], kv[0]))]
    unlicensed = run.images - sum(run.data_licenses.values())
    if unlicensed > 0:
        parts.append(f"none given ({images(unlicensed)})")
    return ", ".join(parts) or "none given"
