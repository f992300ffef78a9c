"""Which device and number format model work runs in."""

from __future__ import annotations

DTYPES = ("auto", "fp32", "fp16", "bf16")


def pick_device(device: str | None = None) -> str:
    """`device` as given, else the first CUDA GPU when there is one, else the CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(name: str, device: str):
    """The torch dtype for `name`; "auto" is fp16 on a GPU and fp32 on a CPU (where fp16 is slow or missing)."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: expected one of {', '.join(DTYPES)}")
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def multi_cpu() -> bool:
    """Several processes without a GPU (`accelerate launch --multi_gpu` on a CPU machine): they talk over gloo."""
    import os

    import torch

    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
