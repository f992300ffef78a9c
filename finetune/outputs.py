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


def save_kohya(unet, output: Path) -> Path:
    """kohya-ss keys (lora_unet_..._to_q.lora_down.weight / .lora_up.weight / .alpha)."""
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    state = {f"unet.{k}": v for k, v in peft_state(unet).items()}
    kohya = convert_state_dict_to_kohya(state)
    alpha = float(unet.peft_config["default"].lora_alpha)
    # diffusers writes alpha = rank; the adapter's own alpha keeps its strength when they differ.
    kohya = {k: (torch.tensor(alpha) if k.endswith(".alpha") else v.contiguous()) for k, v in kohya.items()}
    path = Path(output) / KOHYA_FILE
    save_file(kohya, str(path), metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(
        unet.peft_config["default"].r), "ss_network_alpha": str(alpha)})
    return path


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


def render_card(run: RunRecord) -> str:
    """The model card. Names, paths and descriptions come from users: in the YAML header they are JSON
    strings (valid YAML, no line breaks), in the Python example JSON literals inside a fenced block, and
    everywhere else `markdown_text`, so no value renders as HTML, a link or a table break."""
    cfg = run.config
    base = run.base_path if run.base_model != run.base_path and run.smoke_run else run.base_model
    md = markdown_text
    culture = run.culture or "unknown"
    lines = ["---", f"base_model: {json.dumps(run.base_model)}", "library_name: diffusers",
             "tags:", "- text-to-image", "- stable-diffusion", "- lora", "- scoft", "- ccub",
             f"- {json.dumps('culture-' + culture)}", "---", "",
             f"# SCoFT LoRA: {md(run.culture or 'unknown culture')} ({md(run.variant)})", ""]
    if run.smoke_run:
        lines += ["> **SMOKE RUN.** Trained with RANDOM WEIGHTS (a tiny random base model, captioner or "
                  "backbone). These weights only test the pipeline; do not use or report them.", ""]
    terms = ", ".join(f"{name} x {weight:g}" for name, weight in run.loss_weights.items())
    lines += [
        f"LoRA (rank {cfg['rank']}, alpha {cfg['lora_alpha'] or cfg['rank']}) on the UNet attention projections of "
        f"{md(run.base_model)}, trained by `ccub finetune` with variant **{md(run.variant)}** "
        f"(losses: {md(terms)}; perceptual terms every {cfg['perceptual_interval']} micro-batches, distance "
        f"{md(run.backbones.get('contrastive', '-'))} for L_C and "
        f"{md(run.backbones.get('perceptual', '-'))} for L_P).", "",
        "```python",
        "from diffusers import StableDiffusionPipeline",
        f"pipe = StableDiffusionPipeline.from_pretrained({json.dumps(base)})",
        f"pipe.load_lora_weights({json.dumps(run.output)})",
        "```", "",
        "| | |", "|---|---|",
        f"| dataset | {md(run.dataset)} ({run.images} images; data card: {md(run.data_card or 'none')}) |",
        f"| steps | {run.steps} optimizer steps of {cfg['train_batch_size']} x "
        f"{cfg['gradient_accumulation_steps']} images x {run.hardware['processes']} process(es) |",
        f"| time | {run.seconds:.0f} s |",
        f"| hardware | {md(run.hardware.get('gpu', run.hardware['device']))}, "
        f"{md(run.hardware['mixed_precision'])} |",
        f"| seed | {cfg['seed']} |",
        f"| libraries | {md(', '.join(f'{k} {v}' for k, v in run.versions.items()))} |", "",
        "The resolved config is `config.toml`, the training log `train_log.jsonl` (TensorBoard logs in `logs/`),",
        "validation grids `samples/`.", ""]
    return "\n".join(lines)
