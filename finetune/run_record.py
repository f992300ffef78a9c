"""`runs/<name>/run.json`: what `ccub finetune` trained, as `ccub benchmark` and the model card read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ccub.recordfile import RecordFile

RUN_FILE = "run.json"
LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass
class RunRecord(RecordFile):
    SCHEMA: ClassVar[str] = "ccub.run"
    # 2: data_sources, data_contributors, release, release_digest (a version 1 file reads with them
    # empty)
    VERSION: ClassVar[int] = 2
    OLDEST: ClassVar[int | None] = 1
    UNVERSIONED_IS_V1: ClassVar[bool] = True
    FIX: ClassVar[str] = "rerun `ccub finetune` (a run folder is runs/<name>/)"

    output: str
    base_model: str  # as the user named it: a hub id, a folder or a tiny preset
    base_path: str  # where its weights were read
    culture: str | None
    dataset: str  # absolute path of the training imagefolder
    data_card: str | None
    images: int
    variant: str
    loss_weights: dict[str, float]
    backbones: dict[str, str]  # loss term -> description of its distance
    steps: int
    resumed_from: int
    skipped_steps: int
    seconds: float
    hardware: dict[str, Any]
    versions: dict[str, str]
    smoke_run: bool  # some weights were random (a tiny preset, a random backbone or random negatives)
    config: dict[str, Any]  # the resolved ScoftConfig
    lora: str = LORA_FILE  # relative to the run folder
    # licence -> how many training images carry it (images without one are not counted)
    data_licenses: dict[str, int] = field(default_factory=dict)
    tool: str = "ccub finetune"
    # Lineage: the training rows' source_sha256 (the submitted files' digests) and contributor ids,
    # sorted, so that `ccub withdraw` finds the models a withdrawn item reached. Never printed.
    data_sources: list[str] = field(default_factory=list)
    data_contributors: list[str] = field(default_factory=list)
    # The data's lineage (ccub/steward/releases.py `dataset_lineage`): the release version the dataset
    # is a folder of (DATA/releases/VERSION/clean/...), "current" for DATA/clean, None elsewhere; and
    # the digest of that release's files as they were when training read them.
    release: str | None = None
    release_digest: str | None = None

    def write_to(self, folder: Path) -> Path:
        return self.write(Path(folder) / RUN_FILE)

    @classmethod
    def read_from(cls, folder: Path) -> RunRecord:
        return cls.read(Path(folder) / RUN_FILE)
