"""Reading `runs/<name>/` written by `ccub finetune`: which base model, culture and data it used."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.generate import Model
from ccub.recordfile import RecordError
from finetune.run_record import RUN_FILE, RunRecord


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
    release: str | None = None  # the data lineage of run.json
    release_digest: str | None = None


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    if not (folder / RUN_FILE).is_file():
        raise RunError(f"{folder}: no {RUN_FILE}; is it a `ccub finetune` run folder (runs/<name>/)? "
                       f"Train one with `ccub finetune --culture <c> --output {folder}`")
    try:
        record = RunRecord.read_from(folder)
        resolution = int(record.config["resolution"])
    except RecordError as exc:
        raise RunError(str(exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{folder / RUN_FILE}: its config has no usable resolution ({exc!r}); {RunRecord.FIX}") \
            from exc
    lora = folder / record.lora
    if not lora.is_file():
        raise RunError(f"{folder}: {lora.name} is missing; the run did not finish (`ccub finetune --resume latest`)")
    return Run(name=folder.resolve().name, folder=folder, base=record.base_model, base_source=record.base_path,
               culture=record.culture, dataset=Path(record.dataset), resolution=resolution, lora=lora,
               smoke_run=record.smoke_run, variant=record.variant, release=record.release,
               release_digest=record.release_digest)


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
    base = Model("base", first.base, first.base_source, None, random, kind="base")
    return [base, *(Model(r.name, r.base, r.base_source, r.lora, r.smoke_run, r.release, r.release_digest)
                    for r in runs)]
