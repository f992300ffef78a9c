"""What `ccub benchmark --model/--compare` and `ccub study make` accept: one syntax, parsed here.

    runs/x                      a `ccub finetune` run folder (its run.json says base, culture, data)
    base:MODEL                  a base model alone: a hub id, a local folder or a tiny preset (base:tiny)
    lora:FILE.safetensors       a LoRA file made anywhere, on the base model of --base (or of the runs
    lora:FILE.safetensors@0.8   compared with it), at scale 0.8 ([benchmark] lora_scale when not given)

A LoRA file is in diffusers/peft format (`unet.…lora_A.weight`, `unet.…lora.down.weight`, what
`ccub finetune` writes) or kohya-ss format (`lora_unet_…lora_down.weight` and `.alpha`, `ss_*`
metadata); the format is told from the file's keys and metadata without loading its tensors. Its
sha256 digest is its identity: two copies of one file are one model.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from benchmark.generate import Model
from benchmark.runs import Run, RunError, load_run

BASE_PREFIX, LORA_PREFIX = "base:", "lora:"
SYNTAX = ("a run folder (runs/NAME), base:MODEL (a hub id, folder or tiny preset) or lora:FILE.safetensors[@SCALE] "
          "(a LoRA on --base)")


class ModelReferenceError(RunError):
    """A model reference that cannot be used; the message names the argument that gave it."""


@dataclass(frozen=True)
class ModelReference:
    """One model as the user named it, checked: a run folder, a base model, or a LoRA file on a base."""

    kind: str  # "run", "base" or "lora"
    text: str  # as given
    argument: str  # the option or argument that gave it, for messages ("--model", "--compare")
    path: Path | None = None  # the run folder or the LoRA file
    base: str | None = None  # base:MODEL's model
    scale: float | None = None  # lora:FILE@SCALE's scale; None: the settings' lora_scale
    lora_format: str | None = None  # "peft" or "kohya"

    def describe(self) -> str:
        if self.kind == "run":
            return f"run {self.path}"
        if self.kind == "base":
            return f"base model {self.base}"
        scale = "" if self.scale is None else f" at scale {self.scale:g}"
        return f"LoRA {self.path} ({self.lora_format} format){scale}"


def parse_reference(text: str | Path, argument: str) -> ModelReference:
    """Parse and check one reference; `argument` ("--model", "--compare", "RUN") names it in errors."""
    raw = str(text).strip()
    if not raw:
        raise ModelReferenceError(f"{argument}: empty model reference; give {SYNTAX}")
    if raw.startswith(BASE_PREFIX):
        base = raw[len(BASE_PREFIX):].strip()
        if not base:
            raise ModelReferenceError(f"{argument} {raw}: no model after 'base:'; e.g. base:tiny or "
                                 f"base:stabilityai/stable-diffusion-2-1")
        return ModelReference("base", raw, argument, base=base)
    if raw.startswith(LORA_PREFIX):
        rest = raw[len(LORA_PREFIX):].strip()
        file, scale = rest, None
        if "@" in rest and not Path(rest).expanduser().is_file():
            file, _, given = rest.rpartition("@")
            scale = _scale(given, argument, raw)
        if not file:
            raise ModelReferenceError(f"{argument} {raw}: no file after 'lora:'; e.g. lora:my_lora.safetensors@0.8")
        path = Path(file).expanduser()
        if not path.is_file():
            raise ModelReferenceError(f"{argument} {raw}: no such LoRA file {path}")
        return ModelReference("lora", raw, argument, path=path, scale=scale,
                              lora_format=lora_format(path, f"{argument} {raw}"))
    folder = Path(raw).expanduser()
    if not folder.is_dir():
        raise ModelReferenceError(f"{argument} {raw}: no such run folder (a `ccub finetune` output holding run.json); "
                                  f"give {SYNTAX}")
    return ModelReference("run", raw, argument, path=folder)


def _scale(given: str, argument: str, raw: str) -> float:
    try:
        scale = float(given)
    except ValueError:
        scale = math.nan
    if not math.isfinite(scale):
        raise ModelReferenceError(f"{argument} {raw}: LoRA scale {given!r} is not a finite number; e.g. @0.8")
    return scale


def lora_format(path: Path, where: str) -> str:
    """"kohya" or "peft" (diffusers/peft naming), from the safetensors header: keys and metadata."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            metadata = handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad header
        raise ModelReferenceError(f"{where}: {path} is not a readable .safetensors file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in keys) \
            or any(k.startswith("ss_") for k in metadata):
        return "kohya"
    if any(k.startswith(("unet.", "text_encoder.", "transformer.")) and ("lora_A" in k or "lora_B" in k or ".lora."
                                                                         in k or "lora_linear_layer" in k)
           for k in keys):
        return "peft"
    sample = ", ".join(keys[:3]) or "no tensors"
    raise ModelReferenceError(f"{where}: {path} is a safetensors file of an unknown LoRA format (keys: {sample}); "
                         f"ccub reads diffusers/peft LoRAs (unet.…lora_A.weight) and kohya-ss LoRAs "
                         f"(lora_unet_…lora_down.weight)")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _base_model(name: str, label: str, argument: str) -> Model:
    from ccub.models import ModelUnavailable
    from finetune.components import base_ref

    try:
        ref = base_ref(name)
    except ModelUnavailable as exc:
        raise ModelReferenceError(f"{argument}: {exc}") from exc
    return Model(label, name, ref.source, None, ref.random_weights, kind="base")


def _short(name: str) -> str:
    return Path(name.rstrip("/")).name or name


@dataclass
class Resolved:
    """The models of one comparison, the baseline first, and what the runs among them say."""

    models: list[Model]
    runs: list[Run]
    references: list[ModelReference]
    base: str  # the shared base model

    @property
    def baseline(self) -> str:
        return self.models[0].name


def resolve_models(references: list[ModelReference], base: str | None = None,
                   baseline: str | None = None) -> Resolved:
    """The models to compare: a "base" model (the runs' and LoRAs' base: --base, else the first run's,
    else the first base:MODEL), then each reference in order; the baseline (default "base") first."""
    if not references:
        raise ModelReferenceError(f"--model: no model given; give {SYNTAX}")
    runs = {id(r): load_run(r.path) for r in references if r.kind == "run"}
    first_run = next((runs[id(r)] for r in references if r.kind == "run"), None)
    first_base = next((r.base for r in references if r.kind == "base"), None)
    shared = base or (first_run.base if first_run else None) or first_base
    if shared is None:
        lora = next(r for r in references if r.kind == "lora")
        raise ModelReferenceError(f"{lora.argument} {lora.text}: a LoRA file needs its base model; pass --base MODEL "
                             f"(a hub id, folder or tiny preset)")
    wrong = [f"{runs[id(r)].name} uses {runs[id(r)].base}" for r in references
             if r.kind == "run" and runs[id(r)].base != shared]
    if wrong:
        raise ModelReferenceError(f"runs on different base models cannot share one comparison: the base model is "
                             f"{shared}, but {', '.join(wrong)}")
    if first_run is not None and shared == first_run.base:
        base_model = Model("base", shared, first_run.base_source, None,
                           any(r.smoke_run for r in runs.values()), kind="base")
    else:
        base_model = _base_model(shared, "base", "--base" if base else references[0].argument)
    models = [base_model]
    for ref in references:
        if ref.kind == "run":
            r = runs[id(ref)]
            models.append(Model(r.name, r.base, r.base_source, r.lora, r.smoke_run, r.release, r.release_digest))
        elif ref.kind == "lora":
            models.append(Model(ref.path.stem, shared, base_model.base_source, ref.path, base_model.random_weights,
                                kind="lora", scale=ref.scale, lora_format=ref.lora_format))
        elif ref.base != shared:
            models.append(_base_model(ref.base, _short(ref.base), ref.argument))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ModelReferenceError(f"two models share the folder name {twice} (a run's folder name, a LoRA file's "
                                  f"name without .safetensors, or a base model's last path part); rename one so "
                                  f"the tables can tell them apart")
    if baseline is not None:
        if baseline not in names:
            raise ModelReferenceError(f"--baseline {baseline}: no such model; the models are {', '.join(names)}")
        models.sort(key=lambda m: m.name != baseline)
    return Resolved(models, list(runs.values()), list(references), shared)


def model_kind(model: Model) -> str:
    """What a model is, in words, for the outputs: run, base model, or base + LoRA file (digest, scale)."""
    random = " (RANDOM WEIGHTS)" if model.random_weights else ""
    if model.lora is None:
        return f"base model {model.base}{random}"
    if model.kind == "run":
        return f"ccub run {model.name} (LoRA on {model.base}){random}"
    scale = "the [benchmark] lora_scale" if model.scale is None else f"{model.scale:g}"
    return (f"{model.base} + LoRA file {Path(model.lora).name} ({model.lora_format} format, sha256 "
            f"{model.lora_sha256()[:16]}…, scale {scale}){random}")
