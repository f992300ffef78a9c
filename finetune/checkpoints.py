"""Training checkpoints: `checkpoint-N/` folders written atomically, at most `limit` kept.

A checkpoint holds what continuing exactly needs and nothing more: the LoRA weights, the
optimizer and learning-rate scheduler states (and the fp16 loss scaler's), the step, and the
config it was made with. The data order and all noise derive from the seed and the step (see
`finetune.data`), so no random-generator state is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ccub.files import temporary_folder

PREFIX = "checkpoint-"
# Settings that may change between an interrupted run and its resumption without changing what
# the remaining steps compute.
RESUMABLE_CHANGES = {"max_train_steps", "num_train_epochs", "checkpointing_steps", "checkpoints_total_limit",
                     "validation_steps", "validation_prompts", "validation_seeds", "validation_inference_steps",
                     "validation_guidance", "export_kohya", "tensorboard"}


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run; the message says why and what to do."""


@dataclass
class Saved:
    step: int
    path: Path


def list_checkpoints(output: Path) -> list[Saved]:
    found = []
    for path in Path(output).glob(f"{PREFIX}*"):
        match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
        if match and path.is_dir() and (path / "state.json").is_file():
            found.append(Saved(int(match.group(1)), path))
    return sorted(found, key=lambda s: s.step)


def save_checkpoint(output: Path, step: int, lora: dict[str, torch.Tensor], optimizer, lr_scheduler, scaler,
                    config: dict[str, Any], limit: int) -> Path:
    """Write `checkpoint-<step>` (into a temporary folder, renamed when complete), then prune."""
    from safetensors.torch import save_file

    output = Path(output)
    final = output / f"{PREFIX}{step}"
    tmp = temporary_folder(output, f".{final.name}.")
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in lora.items()}, str(tmp / "lora.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(lr_scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "config": config}, indent=2), encoding="utf-8")
        if final.exists():  # a rerun reached the same step: the new one replaces it
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(output)[:-limit] if limit > 0 else []:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def find_checkpoint(output: Path, resume: str) -> Saved | None:
    """`resume` is "latest" (None when the run has none yet) or a checkpoint folder."""
    if resume == "latest":
        found = list_checkpoints(output)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
    if not (match and (path / "state.json").is_file()):
        raise ResumeError(f"--resume {resume}: not a checkpoint folder ({PREFIX}N with state.json); "
                          f"use --resume latest or a path like {Path(output) / (PREFIX + '250')}")
    return Saved(int(match.group(1)), path)


def check_compatible(saved: Saved, config: dict[str, Any]) -> None:
    state = json.loads((saved.path / "state.json").read_text(encoding="utf-8"))
    before = state.get("config", {})
    changed = sorted(k for k in set(before) | set(config)
                     if k not in RESUMABLE_CHANGES and before.get(k) != config.get(k))
    if changed:
        details = ", ".join(f"{k}: {before.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise ResumeError(f"{saved.path} was trained with different settings ({details}); resuming would not "
                          f"continue the same run. Start a new --output, or resume with the original settings.")


def load_checkpoint(saved: Saved, optimizer, lr_scheduler, scaler) -> dict[str, torch.Tensor]:
    """Restore optimizer, scheduler and scaler in place; return the LoRA state dict to load."""
    from safetensors.torch import load_file

    optimizer.load_state_dict(torch.load(saved.path / "optimizer.pt", weights_only=True))
    lr_scheduler.load_state_dict(torch.load(saved.path / "scheduler.pt", weights_only=True))
    if scaler is not None and (saved.path / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(saved.path / "scaler.pt", weights_only=True))
    return load_file(str(saved.path / "lora.safetensors"))
