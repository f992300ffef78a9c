"""Reading `runs/<name>/` written by `ccub finetune`: which base model, culture and data it used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.generate import Model

RUN_FILE = "run.json"


class RunError(ValueError):
    """A run folder the benchmark cannot use; the message names the file and the fix."""


@dataclass(frozen=True)
class Run:
    name: str
    folder: Path
    base: str
    base_source: str
    culture: str | None
    dataset: Path
    resolution: int
    lora: Path
    smoke_run: bool
    variant: str


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    path = folder / RUN_FILE
    if not path.is_file():
        raise RunError(f"{folder}: no {RUN_FILE}; is it a `ccub finetune` run folder (runs/<name>/)? "
                       f"Train one with `ccub finetune --culture <c> --output {folder}`")
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
        lora = folder / facts.get("lora", "pytorch_lora_weights.safetensors")
        run = Run(name=folder.resolve().name, folder=folder, base=facts["base_model"],
                  base_source=facts.get("base_path") or facts["base_model"], culture=facts.get("culture"),
                  dataset=Path(facts["dataset"]), resolution=int(facts["config"]["resolution"]), lora=lora,
                  smoke_run=bool(facts.get("smoke_run")), variant=facts.get("variant", "?"))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: unreadable or incomplete ({type(exc).__name__}: {exc}); "
                       f"rerun `ccub finetune`") from exc
    if not lora.is_file():
        raise RunError(f"{folder}: {lora.name} is missing; the run did not finish (`ccub finetune --resume latest`)")
    return run


def models_for(runs: list[Run]) -> list[Model]:
    """The base model first, then each run's LoRA on it; every run must share the base model."""
    first = runs[0]
    others = [r for r in runs[1:] if r.base != first.base]
    if others:
        raise RunError(f"runs on different base models cannot share one comparison: {first.name} uses {first.base}, "
                       f"{', '.join(f'{r.name} uses {r.base}' for r in others)}")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise RunError(f"two runs share the folder name {sorted({n for n in names if names.count(n) > 1})}; "
                       f"rename one so the tables can tell them apart")
    random = any(r.smoke_run for r in runs)
    base = Model("base", first.base, first.base_source, None, random)
    return [base, *(Model(r.name, r.base, r.base_source, r.lora, r.smoke_run) for r in runs)]
