"""Peak memory of one fine-tuning micro-batch per configuration, at full size, on any device.

Each configuration (variant lora or MPC, batch size, fp32 or bf16, VAE gradient checkpointing
off or on) runs one real micro-batch of `finetune.train.train` (forward, backward, optimizer
step) in a process of its own, on an SD 1.x-sized model with random weights at 512 px (the
architectures of bench/model_memory.py, the same ones its meta-device counts use). The bench
measures, in that one run:

* weights: the frozen models the training loop keeps on its device (UNet, VAE, CLIP ViT-L/14
  text encoder, the perceptual backbone), in the dtype the loop casts them to;
* LoRA + AdamW: the LoRA parameters, their gradients and AdamW's two moments (fp32): 4 x LoRA;
* kept for backward: the bytes the micro-batch has allocated and still holds when its forward
  pass ends (the tensors autograd saved, checkpoint inputs, outputs);
* micro-batch peak: the most bytes the micro-batch holds at any moment (activations,
  temporaries, the backward pass, the optimizer step), with the LoRA gradients allocated
  before it starts, as on micro-batches 2 to 4 of every accumulation;
* estimated peak = weights + LoRA + AdamW + micro-batch peak.

The counting is device-independent: a PyTorch dispatch mode sees every tensor storage an
operation allocates and follows it until it is freed, so it knows the live bytes at each moment,
the quantity `torch.cuda.max_memory_allocated` reports on a GPU, which holds the same tensors
(not counted: the CUDA context, cuDNN workspaces, and the caching allocator's rounding and
fragmentation, i.e. `memory_reserved` - `memory_allocated`). Autograd's saved-tensor hooks add
up the bytes saved for backward as a cross-check of "kept for backward" (checkpointed blocks
hold their inputs outside those hooks). On the CPU the process's peak resident memory growth
over the micro-batch (Linux /proc/self/clear_refs and VmHWM) is measured too; on a GPU,
`torch.cuda.max_memory_allocated`.

Two shortcuts, both printed with the table:

* `--sampler-steps 2` (the default here): the 18 middle steps of the 20-step guided sampler
  repeat a no-grad UNet call of a shape the remaining steps already make, and keep only a few
  per-sample coefficients for backward (the gradient flows through the first UNet call), so
  they add time but no memory; `--sampler-steps 20` measures the real sampler.
* Batch sizes that are not measured (`--extrapolate 4`) are extrapolated linearly from the two
  largest measured ones (what a micro-batch allocates is linear in its batch size; weights are
  not): on a 2-core CPU with 24 GB a batch of 4 at 512 px takes too long and does not fit.

    python bench/finetune_memory.py                                  # the grid: batch 1, 2 -> 4
    python bench/finetune_memory.py --batches 1 4 --extrapolate      # measure batch 4 (a GPU)
    python bench/finetune_memory.py --variants MPC --precisions fp32 --vae-ckpt off --sampler-steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

GB = 1e9
PRECISIONS = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


# --------------------------------------------------------------------------- the model and data


def build_full_size(folder: Path, random_marker: bool = True) -> Path:
    """An SD 1.x-sized pipeline with random weights (the architectures of bench/model_memory.py).

    Without `random_marker` the folder does not say its weights are random, so the training loop
    builds its real-size perceptual backbones (224 px) instead of the tiny 32 px test ones.
    """
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from model_memory import clip_text, sd1_unet, sd1_vae

    from ccub.models import RANDOM_MARKER
    from finetune.tiny import _SD_SCHEDULER, clip_tokenizer

    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(vae=sd1_vae(), text_encoder=clip_text(), tokenizer=clip_tokenizer(folder / "tok"),
                                   unet=sd1_unet(), scheduler=DDPMScheduler(**_SD_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "base")
    if random_marker:
        (folder / "base" / RANDOM_MARKER).write_text(json.dumps({"random_weights": True, "preset": "sd1-full-size"}))
    return folder / "base"


def vgg16_trunk(folder: Path) -> tuple[str | None, str]:
    """(TORCH_HOME for the workers or None, a description) for the VGG16 trunk of the `vgg` and
    `lpips` perceptual backbones.

    torchvision's ImageNet VGG16 weights are used when they are in the torch hub cache; otherwise
    a VGG16 trunk with random weights is written where the backbones look for it, so the real
    architecture runs at its real input size."""
    import torch
    from torchvision.models import vgg16

    from finetune.backbones import vgg16_checkpoint

    if vgg16_checkpoint().is_file():
        return None, "VGG16 trunk: torchvision's ImageNet weights"
    home = folder / "torch_home"
    path = home / "hub" / "checkpoints" / vgg16_checkpoint().name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        trunk = vgg16().features.state_dict()
        torch.save({f"features.{k}": v for k, v in trunk.items()}, path)
    return str(home), ("VGG16 trunk with RANDOM weights (torchvision's VGG16 weights are not in the torch hub "
                       "cache here; architecture and input size are the real ones)")


def dataset(folder: Path, images: int, resolution: int, negatives: int) -> Path:
    """A prepared SCoFT set of generated photos, each with `negatives` negatives (no models needed)."""
    import numpy as np
    from PIL import Image

    root = folder / f"data-{images}x{negatives}-{resolution}"
    if (root / "train" / "metadata.jsonl").is_file():
        return root
    rng = np.random.default_rng(0)
    (root / "train" / "images").mkdir(parents=True, exist_ok=True)
    (root / "negatives").mkdir(exist_ok=True)
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


def full_size_base(folder: Path, tiny_backbones: bool = False) -> tuple[Path, str | None, str]:
    """(base folder, TORCH_HOME or None, backbone description), built once per `folder`."""
    base = folder / ("base-tiny-backbones" if tiny_backbones else "base-full-backbones")
    if not (base / "base" / "model_index.json").is_file():
        base.mkdir(parents=True, exist_ok=True)
        print(f"building the SD 1.x-sized model (random weights) in {base} ...", flush=True)
        started = time.monotonic()
        build_full_size(base, random_marker=tiny_backbones)
        print(f"  built and saved in {time.monotonic() - started:.0f} s", flush=True)
    if tiny_backbones:
        return base / "base", None, "tiny random backbones at 32 px (--tiny-backbones)"
    home, described = vgg16_trunk(folder)
    return base / "base", home, described


# --------------------------------------------------------------------------- measuring


class LiveTensors:
    """Bytes of the tensor storages allocated while active and not yet freed, and their peak.

    A dispatch mode: every operation's outputs are looked at; a storage that is new (not one of
    the operation's inputs, i.e. not a view or an in-place result) is counted until the storage
    is freed (a finalizer on its Python object, which PyTorch keeps alive exactly as long as the
    storage). Storages allocated before the mode started are never counted.
    """

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._count(out, (args, kwargs))
                return out

        self.mode = Mode()
        self.live = 0
        self.peak = 0
        self.sizes: dict[int, int] = {}

    def _count(self, out, inputs) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outputs:
            return
        given = {t.untyped_storage()._cdata for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)}
        for tensor in outputs:
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in self.sizes or key in given:
                continue
            size = storage.nbytes()
            self.sizes[key] = size
            self.live += size
            weakref.finalize(storage, self._free, key)
        self.peak = max(self.peak, self.live)

    def _free(self, key: int) -> None:
        self.live -= self.sizes.pop(key, 0)

    def owns(self, tensor) -> bool:
        return tensor.untyped_storage()._cdata in self.sizes

    def start(self) -> None:
        self.mode.__enter__()

    def stop(self) -> None:
        self.mode.__exit__(None, None, None)


class PeakRss:
    """Growth of the process's peak resident memory since `reset` (Linux: clear_refs + VmHWM)."""

    def __init__(self) -> None:
        self.method = "VmHWM after clear_refs"
        self.start = 0

    @staticmethod
    def _status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back first, so reuse cannot hide growth
        try:
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
            self.start = self._status("VmRSS")
        except (OSError, KeyError):
            import resource

            self.method = "ru_maxrss (not resettable: setup may mask the micro-batch)"
            self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def growth(self) -> int:
        if self.method.startswith("VmHWM"):
            return self._status("VmHWM") - self.start
        import resource

        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.start)

    def current(self) -> int:
        try:
            return self._status("VmRSS")
        except (OSError, KeyError):
            return 0


def _modules(obj) -> list:
    import torch

    found = [v for v in vars(obj).values() if isinstance(v, torch.nn.Module)] if obj is not None else []
    return found


def _weight_bytes(modules) -> tuple[int, int]:
    """(frozen parameter and buffer bytes, trainable parameter bytes), each storage once."""
    seen, frozen, trainable = set(), 0, 0
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            key = tensor.untyped_storage()._cdata
            if key in seen:
                continue
            seen.add(key)
            size = tensor.untyped_storage().nbytes()
            if getattr(tensor, "requires_grad", False):
                trainable += size
            else:
                frozen += size
    return frozen, trainable


def _page_in(modules) -> None:
    """Read every weight once: weights loaded from safetensors are memory-mapped, and pages first
    touched during the micro-batch would otherwise count as its resident memory growth."""
    import torch

    with torch.no_grad():
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.numel():
                    tensor.detach().sum()


class Probe:
    """Wraps `finetune.step.scoft_losses` and the training loop's progress callback of one worker."""

    def __init__(self, spec: dict) -> None:
        import torch

        self.spec = spec
        self.label = spec["label"]
        self.cuda = torch.cuda.is_available()
        self.tracker = LiveTensors() if spec.get("track") else None
        self.rss = PeakRss()
        self.parts = None
        self.first = None  # monotonic time when the first measured micro-batch started
        self.forward_done: list[float] = []
        self.kept_for_backward = 0
        self.saved = 0
        self.micro = 0
        self.calls = {"unet": 0, "vae": 0}
        self.result: dict = {"label": self.label, "step_seconds": []}

    def say(self, text: str) -> None:
        start = self.first if self.first is not None else self.spec["t0"]
        print(f"  [{self.label}] {time.monotonic() - start:7.1f} s  {text}", flush=True)

    # ----- hooks into the training loop

    def capture_components(self, load):
        def wrapped(*args, **kwargs):
            self.parts = load(*args, **kwargs)
            self.say("models loaded")
            return self.parts
        return wrapped

    def wrap_losses(self, losses):
        import torch

        def wrapped(*args, **kwargs):
            unet, frozen = args[0], args[1] if len(args) > 1 else kwargs.get("frozen")
            if self.first is None:
                self._before_first(unet, frozen)
            self.micro += 1
            verbose = self.spec.get("verbose")
            if verbose:
                self.say(f"micro-batch {self.micro}: forward")
            saved: set[int] = set()

            def pack(tensor):
                if self.tracker is not None and self.tracker.owns(tensor):
                    key = tensor.untyped_storage()._cdata
                    if key not in saved:
                        saved.add(key)
                        self.saved += tensor.untyped_storage().nbytes()
                return tensor

            hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
            with hooks if self.tracker is not None else contextlib.nullcontext():
                out = losses(*args, **kwargs)
            if self.tracker is not None and self.micro == 1:
                self.kept_for_backward = self.tracker.live
            self.forward_done.append(time.monotonic())
            if verbose:
                self.say(f"micro-batch {self.micro}: forward done; backward" +
                         (" and optimizer step" if self.micro % self.spec["accumulation"] == 0 else ""))
            return out
        return wrapped

    def _before_first(self, unet, frozen) -> None:
        import torch

        modules = [unet, *_modules(frozen)]
        if self.parts is not None:
            modules += [m for m in (getattr(self.parts, n, None) for n in ("unet", "vae", "text_encoder"))
                        if isinstance(m, torch.nn.Module)]
        frozen_bytes, lora_bytes = _weight_bytes(modules)
        self.result.update(weights=frozen_bytes, lora=lora_bytes,
                           backbones=sorted({m.describe() for m in _modules(frozen) if hasattr(m, "describe")}))
        _page_in(modules)
        self._progress_hooks(unet, getattr(frozen, "vae", None))
        if self.spec.get("preallocate_grads"):
            # The state of micro-batches 2..4 of an accumulation: the LoRA gradients exist already.
            for p in unet.parameters():
                if p.requires_grad and p.grad is None:
                    p.grad = torch.zeros_like(p)
        if self.cuda:
            torch.cuda.synchronize()
            self.result["cuda_start"] = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        self.rss.reset()
        self.result["rss_start"] = self.rss.start
        self.result["load"] = [os.getloadavg()[0]]
        if self.tracker is not None:
            self.tracker.start()
        self.first = time.monotonic()

    def _progress_hooks(self, unet, vae) -> None:
        """Count and time the UNet calls and VAE decodes (printed with `verbose`)."""
        import torch

        verbose = self.spec.get("verbose")
        calls = self.result.setdefault("unet_call_log", [])  # (batch, with grad, seconds) per UNet call
        began: list[float] = []

        def unet_pre(_module, args, kwargs):
            began.append(time.monotonic())

        def unet_hook(_module, args, kwargs, output):
            self.calls["unet"] += 1
            sample = args[0] if args else kwargs.get("sample")
            grad = torch.is_grad_enabled()
            calls.append((int(sample.shape[0]), grad, time.monotonic() - began.pop()))
            if verbose:
                self.say(f"UNet call {self.calls['unet']} (batch {sample.shape[0]}, "
                         f"{'with grad' if grad else 'no grad'}, {calls[-1][2]:.1f} s)")

        def vae_hook(_module, args, kwargs, output):
            self.calls["vae"] += 1
            if verbose:
                self.say(f"VAE decode {self.calls['vae']} ({'with grad' if torch.is_grad_enabled() else 'no grad'})")

        unet.register_forward_pre_hook(unet_pre, with_kwargs=True)
        unet.register_forward_hook(unet_hook, with_kwargs=True)
        if vae is not None and hasattr(vae, "decoder"):
            vae.decoder.register_forward_hook(vae_hook, with_kwargs=True)

    def on_step(self, step: int, steps: int, record: dict) -> None:
        self.result["step_seconds"].append(record.get("seconds"))
        self.say(f"optimizer step {step}/{steps} done")
        if step == steps:
            self.finish()

    def finish(self) -> None:
        """Write the measurements and leave: the run's validation images and files are not needed."""
        import torch

        end = time.monotonic()
        self.result["load"] = [*self.result.get("load", [0.0])[:1], os.getloadavg()[0]]
        if self.tracker is not None:
            self.tracker.stop()
            self.result.update(kept_for_backward=self.kept_for_backward, micro_peak=self.tracker.peak,
                               saved_for_backward=self.saved)
        if self.cuda:
            torch.cuda.synchronize()
            self.result.update(cuda_peak=torch.cuda.max_memory_allocated(),
                               cuda_growth=torch.cuda.max_memory_allocated() - self.result["cuda_start"])
        self.result.update(seconds=end - (self.first or end), micro_batches=self.micro, rss_growth=self.rss.growth(),
                           rss_method=self.rss.method, unet_calls=self.calls["unet"],
                           device=torch.cuda.get_device_name() if self.cuda else
                           f"CPU ({torch.get_num_threads()} threads)")
        Path(self.spec["result"]).write_text(json.dumps(self.result))
        sys.stdout.flush()
        os._exit(0)


def _random_dreamsim(device, dtype):
    """DreamSim's ensemble (DINO, CLIP and OpenCLIP ViT-B/16 at 224 px) with random weights and without
    its LoRA adapters: the real architecture, for when its weights are not in the cache."""
    from unittest import mock

    import torch
    from dreamsim.config import dreamsim_args
    from dreamsim.feature_extraction.extractor import ViTExtractor
    from dreamsim.feature_extraction.vision_transformer import vit_base
    from dreamsim.model import PerceptualModel

    from finetune.backbones import DreamSimBackbone

    def create(model_type: str, _load_dir: str):
        vit = vit_base(patch_size=16)
        if "clip" not in model_type:
            return vit
        vit.pos_drop = torch.nn.LayerNorm(vit.embed_dim)  # where dreamsim's CLIP loaders put CLIP's pre-norm
        return vit, torch.randn(vit.embed_dim, 512) / vit.embed_dim ** 0.5

    torch.manual_seed(0)
    with mock.patch.object(ViTExtractor, "create_model", staticmethod(create)):
        model = PerceptualModel(**dreamsim_args["model_config"]["ensemble"], device=str(device), load_dir="",
                                normalize_embeds=True)
    backbone = DreamSimBackbone(model, source="dreamsim ensemble architecture (3 x ViT-B/16, no LoRA), RANDOM "
                                "weights (its weights are not in the cache here)", input_size=224,
                                random_weights=True)
    return backbone.to(device=device, dtype=dtype).requires_grad_(False).eval()


def _backbone_fallback(build, notes: list[str]):
    """`build_backbone`, falling back to random weights (real architecture where possible, else the tiny
    test version) when a backbone's weights are not available; each fallback is noted."""
    from ccub.models import ModelUnavailable

    def wrapped(name, *args, **kwargs):
        try:
            return build(name, *args, **kwargs)
        except ModelUnavailable as exc:
            why = str(exc).split(";")[0]
        if name == "dreamsim":
            import torch

            try:
                backbone = _random_dreamsim(kwargs.get("device", "cpu"), kwargs.get("dtype", torch.float32))
                notes.append(f"{name}: {why}; using its architecture with random weights")
                return backbone
            except Exception as exc:  # the fallback's own failure: say so, then go tiny
                why += f"; a random full-size one could not be built ({type(exc).__name__}: {exc})"
        notes.append(f"{name}: {why}; using the TINY random test version (32 px): its cost is not the real one")
        return build(name, *args, **{**kwargs, "tiny": True, "weights": None})
    return wrapped


def worker(spec: dict) -> None:
    """One training run of `spec["config"]`, measured by a `Probe`; exits after the last step."""
    spec["t0"] = time.monotonic()
    if spec.get("torch_home"):
        os.environ["TORCH_HOME"] = spec["torch_home"]
    import finetune.components as components
    import finetune.step as step
    import finetune.train as training
    from finetune.config import load_scoft_config

    probe = Probe(spec)
    losses = probe.wrap_losses(step.scoft_losses)
    step.scoft_losses = losses
    if hasattr(training, "scoft_losses"):  # in case train.py imports it at module level
        training.scoft_losses = losses
    loader = probe.capture_components(components.load_components)
    components.load_components = loader
    if hasattr(training, "load_components"):
        training.load_components = loader
    if spec.get("backbone_fallback"):
        import finetune.backbones as backbones

        probe.result["backbone_notes"] = notes = []
        backbones.build_backbone = _backbone_fallback(backbones.build_backbone, notes)
    cfg = load_scoft_config(None, **spec["config"])
    probe.say(f"training {cfg.variant}, batch {cfg.train_batch_size} x {cfg.gradient_accumulation_steps}, "
              f"{cfg.resolution} px, mixed precision {cfg.mixed_precision}")
    training.train(cfg, training.RunOptions(dataset=Path(spec["data"]), output=Path(spec["output"])),
                   progress=probe.on_step)
    raise SystemExit(f"{spec['label']}: training ended without the probe's measurements (was scoft_losses called?)")


def run_worker(spec: dict, folder: Path) -> dict:
    """Run `worker(spec)` in a fresh process (so no run's peak hides another's); its results or an error."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result": str(folder / "result.json"), "output": str(folder / "run")}
    Path(spec["result"]).unlink(missing_ok=True)
    started = time.monotonic()
    log = folder / "worker.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                                cwd=str(HERE.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # progress lines are shown, library chatter only logged
            fh.write(line)
            if line.startswith("  ["):
                print(line, end="", flush=True)
        proc.wait()
    wall = time.monotonic() - started
    if proc.returncode != 0 or not Path(spec["result"]).is_file():
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit status {proc.returncode}"
        tail = log.read_text().splitlines()[-15:]
        print(f"  [{spec['label']}] FAILED: {why}; the end of {log}:\n    " + "\n    ".join(tail), flush=True)
        return {"label": spec["label"], "error": why, "wall": wall}
    result = json.loads(Path(spec["result"]).read_text())
    result["wall"] = wall
    return result


def config(base: str, variant: str, batch: int, precision: str, vae_ckpt: bool, sampler_steps: int,
           resolution: int = 512, steps: int = 1, accumulation: int = 1) -> dict:
    """The `load_scoft_config` overrides of one measured run (no checkpoints, minimal validation)."""
    return {"base": base, "variant": variant, "resolution": resolution, "train_batch_size": batch,
            "gradient_accumulation_steps": accumulation, "max_train_steps": steps, "sampler_steps": sampler_steps,
            "mixed_precision": PRECISIONS[precision], "vae_gradient_checkpointing": vae_ckpt,
            "random_flip": False, "checkpointing_steps": 10**6, "validation_steps": 0,
            "validation_prompts": ["a street"], "validation_seeds": [0], "validation_inference_steps": 1,
            "tensorboard": False}


# --------------------------------------------------------------------------- the grid


def _row(variant, batch, precision, ckpt, r, note="") -> dict:
    row = {"variant": variant, "batch": batch, "precision": precision, "ckpt": ckpt, "note": note}
    if "error" in r:
        return {**row, "error": r["error"]}
    lora_state = 4 * r["lora"]
    peak = r.get("micro_peak", 0)
    return {**row, "weights": r["weights"], "lora_state": lora_state, "kept": r.get("kept_for_backward", 0),
            "saved": r.get("saved_for_backward", 0), "micro_peak": peak, "estimate": r["weights"] + lora_state + peak,
            "rss_growth": r.get("rss_growth"), "rss_start": r.get("rss_start"), "cuda_peak": r.get("cuda_peak"),
            "seconds": r.get("seconds")}


def _extrapolate(points: list[dict], batch: int) -> dict:
    """Row for `batch` from measured rows: per-batch parts linear in the batch through the two largest
    measured batch sizes, or proportional to it from a single one (weights do not change)."""
    ok = [p for p in points if "error" not in p]
    row = {k: points[0][k] for k in ("variant", "precision", "ckpt")}
    row["batch"] = batch
    if not ok:
        return {**row, "note": "", "error": "no measured point to extrapolate from"}
    b = ok[-1]
    if len(ok) >= 2:
        a = ok[-2]
        row["note"] = f"extrapolated linearly from batch {a['batch']} and {b['batch']}"
    else:
        a = {key: 0 for key in ("kept", "saved", "micro_peak", "rss_growth")} | {"batch": 0}
        row["note"] = f"extrapolated in proportion to the batch from batch {b['batch']} alone"
    span = b["batch"] - a["batch"]
    for key in ("kept", "saved", "micro_peak", "rss_growth"):
        if a.get(key) is not None and b.get(key) is not None:
            row[key] = b[key] + (b[key] - a[key]) * (batch - b["batch"]) / span
    row.update(weights=b["weights"], lora_state=b["lora_state"], seconds=None, cuda_peak=None)
    row["estimate"] = row["weights"] + row["lora_state"] + row["micro_peak"]
    return row


def _fits(points: list[dict], batch: int, margin: float) -> tuple[bool, str]:
    """Whether a run at `batch` should fit in this machine's available memory, judged from the largest
    measured batch (resident memory at its start plus its growth, scaled to `batch`); CPU only."""
    import torch

    ok = [p for p in points if "error" not in p and p.get("rss_start") is not None]
    if torch.cuda.is_available() or not ok:
        return True, ""
    last = ok[-1]
    growth = max(last["rss_growth"] or 0, last["micro_peak"] or 0) * batch / last["batch"]
    need, have = last["rss_start"] + growth, available_memory()  # checked between workers: none is running
    if need <= have - margin:
        return True, ""
    return False, f"not run: needs about {need / GB:.1f} GB, {have / GB:.1f} GB available"


def print_table(rows: list[dict]) -> None:
    def gb(value):
        return "-" if value is None else f"{value / GB:.2f}"

    head = (f"{'variant':7} {'batch':>5} {'prec':>5} {'VAE ckpt':>8} {'weights':>8} {'LoRA+Adam':>9} "
            f"{'kept bwd':>8} {'saved':>7} {'mb peak':>8} {'EST PEAK':>8} {'CPU RSS+':>8} {'CUDA':>6} {'s':>6}  note")
    print(head)
    for r in rows:
        start = f"{r['variant']:7} {r['batch']:>5} {r['precision']:>5} {r['ckpt']:>8}"
        if "error" in r:
            print(f"{start}  {r['error']}  {r['note']}")
            continue
        seconds = "-" if r.get("seconds") is None else f"{r['seconds']:.0f}"
        print(f"{start} {gb(r['weights']):>8} {gb(r['lora_state']):>9} {gb(r['kept']):>8} {gb(r['saved']):>7} "
              f"{gb(r['micro_peak']):>8} {gb(r['estimate']):>8} {gb(r.get('rss_growth')):>8} "
              f"{gb(r.get('cuda_peak')):>6} {seconds:>6}  {r['note']}")


def available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["lora", "MPC"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2], help="batch sizes to measure")
    parser.add_argument("--extrapolate", nargs="*", type=int, default=[4],
                        help="batch sizes to extrapolate from the two largest measured ones (default 4)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=sorted(PRECISIONS))
    parser.add_argument("--vae-ckpt", nargs="+", default=["off", "on"], choices=["off", "on"],
                        help="VAE gradient checkpointing (only variants that decode with gradient)")
    parser.add_argument("--sampler-steps", type=int, default=2, help="20 is the reference; see the module doc")
    parser.add_argument("--base", default="full", help="full (SD 1.x-sized, random weights; default), tiny, or a model")
    parser.add_argument("--resolution", type=int, default=0, help="default: 32 for tiny, else 512")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--tiny-backbones", action="store_true",
                        help="32 px random backbones instead of the real-size VGG16 and DreamSim")
    parser.add_argument("--workdir", type=Path, help="keep the built model here and reuse it (default: a temp dir)")
    parser.add_argument("--margin", type=float, default=2.0,
                        help="GB of available memory to leave free: larger runs are extrapolated instead (CPU)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        args.resolution = args.resolution or (32 if args.base.startswith("tiny") else 512)
        if args.base == "full":
            base, torch_home, backbones = full_size_base(folder, args.tiny_backbones)
        else:
            base, torch_home, backbones = args.base, None, "as the training loop builds them for this base"
        data = dataset(folder, 1, args.resolution, args.negatives)
        rows: list[dict] = []
        results: list[dict] = []
        skipped: list[str] = []
        for variant in args.variants:
            from finetune.config import VARIANTS

            decodes = bool({"perceptual", "contrastive"} & set(VARIANTS[variant]))
            for precision in args.precisions:
                for ckpt in (args.vae_ckpt if decodes else ["-"]):
                    measured: list[dict] = []
                    for batch in sorted(args.batches):
                        label = f"{variant} b{batch} {precision} ckpt {ckpt}"
                        fits, why = _fits(measured, batch, args.margin * GB)
                        if not fits:
                            print(f"{label}: {why}", flush=True)
                            skipped.append(f"{label}: {why}")
                            rows.append(_extrapolate(measured, batch))
                            continue
                        print(f"{label}: starting ({available_memory() / GB:.1f} GB available)", flush=True)
                        spec = {"label": label, "data": str(data), "torch_home": torch_home, "track": True,
                                "backbone_fallback": args.base == "full" and not args.tiny_backbones,
                                "verbose": True, "accumulation": 1, "preallocate_grads": True,
                                "config": config(str(base), variant, batch, precision, ckpt == "on",
                                                 args.sampler_steps, args.resolution)}
                        result = run_worker(spec, folder / "runs" / label.replace(" ", "-"))
                        results.append(result)
                        row = _row(variant, batch, precision, ckpt, result)
                        rows.append(row)
                        measured.append(row)
                        print_table([row])
                    for batch in args.extrapolate or []:
                        if batch not in args.batches:
                            rows.append(_extrapolate(measured, batch))
        import torch

        cpu = f"CPU ({torch.get_num_threads()} threads)"
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu
        print()
        model = "SD 1.x-sized UNet/VAE/text encoder with random weights" if args.base == "full" else args.base
        print(f"Peak memory of one micro-batch at {args.resolution} px, {model}, LoRA rank 64, AdamW; measured on "
              f"{device}; {args.negatives} negatives per image; guided sampler with {args.sampler_steps} steps"
              + (" (the reference's 20 add time, not memory: see the module doc)" if args.sampler_steps < 20 else "")
              + ". GB = 1e9 bytes.")
        for line in sorted({line for r in results for line in r.get("backbones", []) + r.get("backbone_notes", [])}):
            print(f"  backbone: {line}")
        print(f"  {backbones}")
        print("weights: frozen models on the device; LoRA+Adam: LoRA weights, gradients, 2 AdamW moments (fp32); "
              "kept bwd: held when the forward pass ends; saved: autograd's saved tensors (cross-check); "
              "mb peak: the micro-batch's own peak; EST PEAK = weights + LoRA+Adam + mb peak; CPU RSS+: measured "
              "peak resident growth over the micro-batch (cross-check of mb peak); CUDA: max_memory_allocated; "
              "s: seconds of the micro-batch here.")
        print_table(rows)
        for line in skipped:
            print(f"  {line}")
        print(f"total {time.monotonic() - started:.0f} s")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
