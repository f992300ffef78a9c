"""Seconds and peak memory of fine-tuning: plain LoRA against SCoFT (MPC), same model, same data.

SCoFT's extra cost comes in two parts: a second UNet call without gradient on every
micro-batch (the memorisation loss) and, every `perceptual_interval`-th micro-batch, the guided
sampler (19 more UNet calls, conditional and unconditional batched), a VAE decode with gradient
and the perceptual backbones. Each variant runs in a process of its own (so one's peak memory
cannot hide the other's), through `finetune.train.train` at the reference settings.

Two modes:

* optimizer steps (the default; `--full-size` on a GPU): both variants train for `--steps`
  optimizer steps of batch 1 x 4 accumulation, interval 10, 20 sampler steps, so SCoFT's number
  is amortised over the interval; the first step (warm-up) is left out; the ratio is printed.
* one micro-batch (`--one-micro-batch`; the default of `--full-size` on a CPU, where a step at
  512 px takes many minutes): exactly one micro-batch of each variant, batch 1, no warm-up. The
  SCoFT one is micro-batch 0, one where L_C and L_P are due, so it includes the 20-step sampler,
  the VAE decode with gradient and the perceptual backbones (the 1 micro-batch in 10 that costs
  the most); the other 9 in 10 skip those.

Peak memory: on a GPU `torch.cuda.max_memory_allocated` over the measured steps (with the
growth over what was allocated when the first micro-batch started); on a CPU the growth of the
process's peak resident memory over the measured micro-batches (Linux /proc/self/clear_refs
and VmHWM), which includes the LoRA gradients and AdamW's state created on the first step.

`--full-size` builds an SD 1.x architecture with random weights (UNet, VAE and CLIP ViT-L/14
text encoder from their published configs, bench/model_memory.py) at 512 px, and the training
loop builds its real-size perceptual backbones: where their weights are missing, the VGG16
trunk (L_P) gets random weights in the torch hub cache path, DreamSim (L_C) is built as its
architecture with random weights, and any other backbone falls back to its tiny test version;
the output says which (`--tiny-backbones`: the 32 px test ones for all).
Precision: bf16 on a GPU that supports it (fp16 otherwise), fp32 on a CPU (`--mixed-precision`).

    python bench/finetune_step.py                      # tiny random SD on this machine's CPU, 11 steps each
    python bench/finetune_step.py --full-size          # SD 1.x size: one micro-batch each on a CPU, 11 steps on a GPU
    python bench/finetune_step.py --base PATH          # any SD folder (a GPU is advisable)

Every model here may have random weights: the bench measures time and memory, never quality.
Peak memory per configuration (batch, precision, VAE gradient checkpointing): bench/finetune_memory.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_memory import GB, config, dataset, full_size_base, run_worker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="tiny", help="tiny (default), or an SD folder / hub id")
    parser.add_argument("--full-size", action="store_true", help="SD 1.x-sized model with random weights, 512 px")
    parser.add_argument("--one-micro-batch", action="store_true",
                        help="one micro-batch per variant (default with --full-size on a CPU)")
    parser.add_argument("--steps", type=int, default=11, help="optimizer steps per variant (first is warm-up)")
    parser.add_argument("--resolution", type=int, default=0, help="default: 32 for tiny, else 512")
    parser.add_argument("--images", type=int, default=0, help="default: 1 with one micro-batch, else 8")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "fp16", "bf16"])
    parser.add_argument("--tiny-backbones", action="store_true", help="with --full-size: 32 px random backbones")
    parser.add_argument("--workdir", type=Path, help="keep the built model here and reuse it (default: a temp dir)")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    one = args.one_micro_batch or (args.full_size and not cuda)
    args.resolution = args.resolution or (32 if args.base.startswith("tiny") and not args.full_size else 512)
    args.images = args.images or (1 if one else 8)
    steps, accumulation = (1, 1) if one else (args.steps, 4)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        torch_home, backbones = None, "as the training loop builds them for this base"
        if args.full_size:
            base, torch_home, backbones = full_size_base(folder, args.tiny_backbones)
            base = str(base)
        else:
            base = args.base
        data = dataset(folder, args.images, args.resolution, args.negatives)
        results = {}
        for variant in ("lora", "MPC"):
            label = f"{variant} {'1 micro-batch' if one else f'{steps} steps'}"
            print(f"{label}: starting", flush=True)
            cfg = config(base, variant, 1, "fp32", False, 20, args.resolution, steps, accumulation)
            cfg.update(mixed_precision=args.mixed_precision, random_flip=True)
            spec = {"label": label, "data": str(data), "torch_home": torch_home, "track": False,
                    "backbone_fallback": args.full_size and not args.tiny_backbones,
                    "verbose": args.full_size or one, "accumulation": accumulation, "config": cfg}
            results[variant] = run_worker(spec, folder / "step-runs" / variant)
            if "error" in results[variant]:
                continue
            r = results[variant]
            print(f"{label}: {r['seconds']:.1f} s measured, {r['wall']:.0f} s with loading and caching", flush=True)

    lora, scoft = results["lora"], results["MPC"]
    device = next((r["device"] for r in (lora, scoft) if "device" in r), "?")
    model = "SD 1.x full size, random weights" if args.full_size else base
    print()
    print(f"model: {model}; {args.resolution} px; {device}; mixed precision {args.mixed_precision}; "
          f"{args.images} image(s) with {args.negatives} negatives")
    for line in scoft.get("backbones", []) + scoft.get("backbone_notes", []):
        print(f"  backbone: {line}")
    if args.full_size:
        print(f"  {backbones}")
    loads = [r["load"] for r in (lora, scoft) if "load" in r]
    if loads:
        print("  load average (1 min) during the measured micro-batches: "
              + ", ".join(f"{a:.1f} -> {b:.1f}" for a, b in loads) + f" on {os.cpu_count()} CPUs")
    if one:
        print("one micro-batch of each variant, batch 1, no warm-up; SCoFT's is micro-batch 0 (L_C and L_P due: "
              "20-step guided sampler, VAE decode with gradient, backbones), the costliest 1 in 10")
        unit = "s / micro-batch"
    else:
        print(f"{steps - 1} timed optimizer steps of 1 x {accumulation} micro-batches (first step left out); "
              f"L_C/L_P every 10th micro-batch")
        unit = "s / optimizer step"
    memory = "peak GPU GB (+growth)" if cuda else "peak RSS growth GB"
    print(f"{'variant':34} {unit:>18} {memory:>22} {'UNet calls':>10}")
    seconds = {}
    for name, r in (("plain LoRA (L_LDM)", lora), ("SCoFT MPC" + (", L_C/L_P due" if one else " (amortised)"), scoft)):
        if "error" in r:
            print(f"{name:34} FAILED: {r['error']}")
            continue
        per = r["seconds"] if one else statistics.mean(r["step_seconds"][1:] or r["step_seconds"])
        seconds[name] = per
        mem = (f"{r['cuda_peak'] / GB:.2f} (+{r['cuda_growth'] / GB:.2f})" if cuda else f"{r['rss_growth'] / GB:.2f}")
        calls = r["unet_calls"] if args.full_size or one else "-"
        print(f"{name:34} {per:18.3f} {mem:>22} {calls:>10}")
    if not cuda:
        for name, r in (("plain LoRA", lora), ("SCoFT MPC", scoft)):
            if "error" not in r:
                print(f"  {name}: resident {r['rss_start'] / GB:.2f} GB when the micro-batch started "
                      f"(weights, caches), peak {(r['rss_start'] + r['rss_growth']) / GB:.2f} GB ({r['rss_method']})")
    if len(seconds) == 2:
        lora_s, scoft_s = seconds.values()
        if one:
            print(f"ratio SCoFT micro-batch with L_C/L_P / LoRA micro-batch: {scoft_s / lora_s:.2f}x")
            # The other micro-batches of an interval skip the sampler, the decode and the backbones; what they
            # add to a plain one is the memorisation UNet call (no grad), timed inside the SCoFT micro-batch.
            from finetune.config import ScoftConfig

            interval = ScoftConfig().perceptual_interval
            no_grad = [c[2] for c in scoft.get("unet_call_log", []) if not c[1]]
            if no_grad:
                other = lora_s + no_grad[0]
                amortised = (scoft_s + (interval - 1) * other) / interval
                print(f"amortised over the interval of {interval} (an estimate from this run: the other "
                      f"{interval - 1} SCoFT micro-batches taken as the LoRA one plus the memorisation UNet call, "
                      f"{no_grad[0]:.1f} s): {amortised:.1f} s per micro-batch, {amortised / lora_s:.2f}x LoRA")
        else:
            print(f"ratio SCoFT / LoRA: {scoft_s / lora_s:.2f}x (target: at most 2x)")
    # Counting UNet work alone (a backward pass ~ two forwards): a plain micro-batch is 3 forwards;
    # SCoFT adds 1 (memorisation) and, amortised, 2 x 19 sampler forwards every 10 micro-batches.
    bound = (3 + 1 + 2 * 19 / 10) / 3
    print(f"UNet-work bound at the reference settings, amortised, before the VAE decode and backbones: {bound:.2f}x")
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
