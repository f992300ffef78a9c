"""`runs/<name>/benchmark/benchmark.json`: what `ccub benchmark` generated and how, so that
`ccub study make` finds every image the metrics scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ccub.recordfile import RecordFile

BENCHMARK_FILE = "benchmark.json"


@dataclass
class BenchmarkRecord(RecordFile):
    SCHEMA: ClassVar[str] = "ccub.benchmark"
    # 2: reference_sources and training_sources (version 1 reads with them empty); 3: baseline, models of any
    # reference (kind, lora_sha256, lora_format, lora_scale, describe), and images made elsewhere (`ccub
    # benchmark --images`: source "external", images_folder, map, map_sha256; settings {"source": "external"});
    # versions 1 and 2 read with baseline "base"
    VERSION: ClassVar[int] = 3
    OLDEST: ClassVar[int | None] = 1
    FIX: ClassVar[str] = "rerun `ccub benchmark --model runs/<name>` (it reuses the cached images)"

    culture: str
    clip: str  # the CLIP scorer, described
    clip_random_weights: bool
    smoke_run: bool  # the CLIP scorer or some model had random weights
    suite: str  # the prompt suite's file, or "built-in"
    settings: dict[str, Any]  # generation settings (benchmark.generate.Settings)
    seeds: list[int]
    # name, key, base, lora, random_weights, release, release_digest (the run's data lineage; absent in
    # files written before runs recorded it); from version 3 also kind ("run", "base", "lora": a LoRA file from
    # anywhere, or "external"), lora_sha256 (the LoRA file's digest, its identity), lora_format ("peft" or
    # "kohya"), lora_scale (None: settings' lora_scale) and describe (what the model is, in words); images made
    # elsewhere add source ("external"), images_folder, map and map_sha256, with base, lora and release null
    models: list[dict[str, Any]]
    prompts: list[dict[str, Any]]  # benchmark.prompts.Prompt fields
    images: list[dict[str, Any]]  # model, prompt (id), seed, path
    # Lineage: source_sha256 of the held-out (reference) and training community images scored
    # against, sorted, so that `ccub withdraw` finds a benchmark a withdrawn item reached.
    reference_sources: list[str] = field(default_factory=list)
    training_sources: list[str] = field(default_factory=list)
    baseline: str = "base"  # the model every other is compared with (paired by prompt and seed)
