"""Seconds per optimizer step: plain LoRA against SCoFT (MPC), same model, same data, one run.

SCoFT's extra cost comes in two parts: a second UNet call without gradient on every
micro-batch (the memorisation loss) and, every `perceptual_interval`-th micro-batch, the guided
sampler (19 more UNet calls, conditional and unconditional batched), a VAE decode with gradient
and the perceptual backbones. The bench trains both variants for the same number of optimizer
steps at the reference settings (batch 1 x 4 accumulation, interval 10, 20 sampler steps), so
SCoFT's number is amortised over the interval, and prints the ratio. The first step of each run
(warm-up) is left out.

    python bench/finetune_step.py                      # tiny random SD on this machine's CPU
    python bench/finetune_step.py --full-size          # SD 1.x-sized UNet/VAE/text encoder, random weights
    python bench/finetune_step.py --base PATH          # any SD folder (a GPU is advisable)

Every model here may have random weights: the bench measures time and memory, never quality.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_full_size(folder: Path) -> Path:
    """An SD 1.x-sized pipeline with random weights (the architectures of bench/model_memory.py)."""
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from model_memory import clip_text, sd1_unet, sd1_vae

    from finetune.tiny import _SD_SCHEDULER, clip_tokenizer
    from finetune.weights import RANDOM_MARKER

    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(vae=sd1_vae(), text_encoder=clip_text(), tokenizer=clip_tokenizer(folder / "tok"),
                                   unet=sd1_unet(), scheduler=DDPMScheduler(**_SD_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "base")
    (folder / "base" / RANDOM_MARKER).write_text(json.dumps({"random_weights": True, "preset": "sd1-full-size"}))
    return folder / "base"


def dataset(folder: Path, images: int, resolution: int, negatives: int) -> Path:
    """A prepared SCoFT set of generated photos, each with `negatives` negatives (no models needed)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = folder / "data"
    (root / "train" / "images").mkdir(parents=True)
    (root / "negatives").mkdir()
    rows = []
    for i in range(images):
        name = f"images/{i}.png"
        Image.fromarray(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8)).save(root / "train" / name)
        paths = []
        for k in range(negatives):
            path = f"negatives/{i}_{k}.png"
            Image.fromarray(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8)).save(root / path)
            paths.append(path)
        rows.append({"file_name": name, "text": f"a photo of a market street number {i}",
                     "blip_text": "a photo of a street", "negative_imgpath": paths})
    (root / "train" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def time_variant(variant: str, base: str, data: Path, out: Path, args) -> tuple[float, float]:
    """(mean seconds per optimizer step without the first, peak GPU memory in GB or 0)."""
    import torch

    from finetune.config import load_scoft_config
    from finetune.train import RunOptions, train

    cfg = load_scoft_config(None, base=base, variant=variant, resolution=args.resolution, max_train_steps=args.steps,
                            checkpointing_steps=10**6, validation_steps=0, validation_prompts=["a street"],
                            validation_seeds=[0], validation_inference_steps=1, tensorboard=False,
                            mixed_precision=args.mixed_precision)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train(cfg, RunOptions(dataset=data, output=out / variant))
    log = [json.loads(line) for line in (out / variant / "train_log.jsonl").read_text().splitlines()]
    peak = torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else 0.0
    return statistics.mean(r["seconds"] for r in log[1:]), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="tiny", help="tiny (default), or an SD folder / hub id")
    parser.add_argument("--full-size", action="store_true", help="SD 1.x-sized random model (use with a GPU)")
    parser.add_argument("--steps", type=int, default=11, help="optimizer steps per variant (first is warm-up)")
    parser.add_argument("--resolution", type=int, default=0, help="default: 32 for tiny, else 512")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--mixed-precision", default="auto")
    args = parser.parse_args()
    args.resolution = args.resolution or (32 if args.base.startswith("tiny") and not args.full_size else 512)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = str(build_full_size(tmp)) if args.full_size else args.base
        data = dataset(tmp, args.images, args.resolution, args.negatives)
        lora, lora_peak = time_variant("lora", base, data, tmp / "runs", args)
        scoft, scoft_peak = time_variant("MPC", base, data, tmp / "runs", args)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model: {'SD 1.x full size, random weights' if args.full_size else base}; {args.resolution} px; "
          f"{device}; {args.steps - 1} timed optimizer steps of 1 x 4 micro-batches; L_C/L_P every 10th micro-batch")
    print(f"{'variant':28} {'s / optimizer step':>18} {'peak GPU GB':>12}")
    print(f"{'plain LoRA (L_LDM)':28} {lora:18.3f} {lora_peak:12.2f}")
    print(f"{'SCoFT MPC (amortised)':28} {scoft:18.3f} {scoft_peak:12.2f}")
    print(f"ratio SCoFT / LoRA: {scoft / lora:.2f}x (target: at most 2x)")
    # Counting UNet work alone (a backward pass ~ two forwards): a plain micro-batch is 3 forwards;
    # SCoFT adds 1 (memorisation) and, amortised, 2 x 19 sampler forwards every 10 micro-batches.
    bound = (3 + 1 + 2 * 19 / 10) / 3
    print(f"UNet-work bound at the reference settings, before the VAE decode and backbones: {bound:.2f}x")


if __name__ == "__main__":
    main()
