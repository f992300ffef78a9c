"""`ccub benchmark`: generate (paired, cached), score, compare with the base model, write the outputs.

    runs/x/run.json --> models (base + LoRAs) --> images cache --> metrics --> paired statistics
                    --> runs/x/benchmark/{results.csv, summary.csv, summary.md, report.html}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.generate import ImageCache, Model, Settings, generate
from benchmark.references import Resolved, parse_reference, resolve_models
from benchmark.runs import RunError
from ccub.config import Config

ProgressFn = Callable[[str, int, int], None]


class BenchmarkError(ValueError):
    """Options the benchmark cannot work with; the message says what to change."""


@dataclass
class Options:
    run: Path | str  # a model reference (benchmark/references.py): a run folder, base:MODEL or lora:FILE[@SCALE]
    compare: list[Path | str] = field(default_factory=list)
    culture: str | None = None
    prompts: Path | None = None
    seeds: int | None = None
    clip: str | None = None
    cache: Path | None = None
    device: str | None = None
    base: str | None = None  # the base model of lora: references (default: the first run's, or base:MODEL's)
    baseline: str | None = None  # the model the others are compared with (default: "base")
    output: Path | None = None  # default: the first run's benchmark/, else benchmarks/<first model>


def resolve_options(opts: Options) -> Resolved:
    """The models `opts` names, the baseline first (benchmark/references.py)."""
    refs = [parse_reference(opts.run, "--model"), *(parse_reference(r, "--compare") for r in opts.compare)]
    return resolve_models(refs, opts.base, opts.baseline)


def output_folder(opts: Options, resolved: Resolved) -> Path:
    if opts.output is not None:
        return Path(opts.output)
    first = resolved.references[0]
    if first.kind == "run":
        return Path(first.path) / "benchmark"
    if first.kind == "base":
        name = "base" if first.base == resolved.base else Path(first.base.rstrip("/")).name
    else:
        name = Path(first.path).stem
    return Path("benchmarks") / name


def native_resolution(base: str) -> int:
    """The base model's native image size, from its configs (512 when they cannot be read)."""
    from finetune.estimate import read_configs

    try:
        found = read_configs(base)
    except Exception:  # noqa: BLE001 - a guess at the size must never stop a benchmark
        found = None
    if found is None:
        return 512
    unet, vae = found[1]["unet"], found[1]["vae"]
    try:
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (KeyError, TypeError, ValueError):
        return 512


@dataclass
class Outcome:
    output: Path
    comparisons: list  # benchmark.stats.Comparison
    sets: dict[str, dict[str, float]]
    notes: list[str]
    smoke_run: bool
    files: list[Path]
    generated: int
    counts: dict[str, int]
    problems: list[str] = field(default_factory=list)  # map rows not used (`--images`, benchmark/external.py)


def _dataset_images(dataset: Path, split: str) -> list[Path]:
    from finetune.dataset import DatasetError, read_dataset

    try:
        data = read_dataset(dataset)
    except DatasetError:
        return []
    return [data.image_path(mf, row) for mf, row in data.rows()
            if mf.split == split and data.image_path(mf, row).is_file()]


def _dataset_sources(dataset: Path, split: str) -> list[str]:
    """The source_sha256 digests of the rows of `split` whose image is there (what was scored against)."""
    from finetune.dataset import DatasetError, read_dataset, row_source

    try:
        data = read_dataset(dataset)
    except DatasetError:
        return []
    return sorted({d for mf, row in data.rows() if mf.split == split and (d := row_source(row))
                   and data.image_path(mf, row).is_file()})


SMOKE_STEPS, SMOKE_SEEDS = 4, 2


def smoke_settings(opts: Options, cfg: Config) -> bool:
    """Fewer steps and seeds when a model of `opts` has random weights (a smoke run only tests
    the pipeline: a few say as much as the study's 50 x 4), unless `opts` gives the seeds. Changes
    `opts` and `cfg`; True when it did."""
    from ccub.models import ModelUnavailable

    try:
        if not any(m.random_weights for m in resolve_options(opts).models):
            return False
    except (RunError, ModelUnavailable, ValueError):
        return False  # the benchmark itself reports what is wrong with the references
    cfg.benchmark.steps = SMOKE_STEPS
    opts.seeds = opts.seeds or SMOKE_SEEDS
    return True


@dataclass
class Plan:
    """What a benchmark will do, resolved from the options and configs (no model loaded)."""

    runs: list
    models: list[Model]  # the baseline first
    culture: str
    prompts: list
    seeds: list[int]
    settings: Settings
    cache: ImageCache
    clip: str
    output: Path | None = None
    dataset: Path | None = None  # the first run's data: the held-out and training images scored against

    def rows(self, device: str, config: Path | None) -> dict[str, object]:
        def weights(random: bool) -> str:
            return " (RANDOM WEIGHTS)" if random else ""

        s = self.settings
        return {
            "models": ", ".join(f"{m.name}{weights(m.random_weights)}" for m in self.models),
            "baseline": self.models[0].name,
            "base": f"{self.models[0].base}{weights(self.models[0].random_weights)}",
            "culture": self.culture,
            "images": f"{len(self.prompts)} prompts x {len(self.seeds)} seeds x {len(self.models)} models = "
                      f"{len(self.prompts) * len(self.seeds) * len(self.models)}",
            "sampling": f"{s.scheduler}, {s.steps} steps, guidance {s.guidance:g}, {s.resolution} px, batch "
                        f"{s.batch_size}, LoRA scale {s.lora_scale:g}",
            "precision": s.dtype,
            "device": device,
            "scorer": f"CLIP {self.clip}" + weights(self.clip == "tiny"),
            "cache": str(self.cache.root),
            "output": str(self.output),
            "config": str(config or ("./ccub.toml" if Path("ccub.toml").is_file() else "none (built-in defaults)")),
        }


def plan_benchmark(opts: Options, cfg: Config) -> Plan:
    from benchmark.prompts import suite_for

    b = cfg.benchmark
    _check_settings(b)
    resolved = resolve_options(opts)
    runs, models = resolved.runs, resolved.models
    culture = opts.culture or (runs[0].culture if runs else None)
    if not culture:
        said = f"{runs[0].folder}: the run does not say its culture" if runs else \
            "no run among the models says its culture (base models and LoRA files do not record one)"
        raise BenchmarkError(f"{said}; pass --culture")
    prompts = suite_for(culture, opts.prompts, cfg)
    if not prompts:
        raise BenchmarkError(f"no prompts for culture {culture!r} in {opts.prompts}")
    _preflight(models, opts.clip or b.clip)
    seeds = list(range(opts.seeds or b.seeds))
    settings = Settings(scheduler=b.scheduler, steps=b.steps, guidance=b.guidance,
                        resolution=b.resolution or (runs[0].resolution if runs else native_resolution(resolved.base)),
                        lora_scale=b.lora_scale, dtype=b.dtype, batch_size=b.batch_size)
    output = output_folder(opts, resolved)
    beside = Path(runs[0].folder).resolve().parent if resolved.references[0].kind == "run" else \
        output.resolve().parent
    cache = ImageCache(opts.cache or beside / ".ccub-benchmark-cache", settings)
    return Plan(runs, models, culture, prompts, seeds, settings, cache, opts.clip or b.clip, output,
                runs[0].dataset if runs else None)


def run_benchmark(opts: Options, cfg: Config, progress: ProgressFn | None = None, plan: Plan | None = None) -> Outcome:
    from accelerate import PartialState

    from benchmark.prompts import framing_texts, identification_classes, identification_texts
    from ccub.progress import phase
    from ccub.progress import report as tell
    from finetune.runtime import multi_cpu, pick_device

    report = progress or (lambda stage, done, total, **fields: None)
    started = time.monotonic()
    b = cfg.benchmark
    plan = plan or plan_benchmark(opts, cfg)
    runs, models, culture, prompts, seeds = plan.runs, plan.models, plan.culture, plan.prompts, plan.seeds
    settings, cache = plan.settings, plan.cache
    state = PartialState(cpu=multi_cpu())
    device = opts.device or (str(state.device) if state.num_processes > 1 else pick_device())

    # Generation: each process draws its share into the shared cache, every image counted.
    pairs = [(p.text, s) for p in prompts for s in seeds]
    generated = 0
    for model in models:
        with state.split_between_processes(pairs) as share:
            stage, total = f"generating: {model.name}", len(share)

            def tick(done: float, stage=stage, total=total) -> None:
                tell(report, stage, done, total)

            generated += generate(model, list(share), cache, device, tick, watch=progress)
    state.wait_for_everyone()
    if not state.is_main_process:
        return Outcome(Path(), [], {}, [], False, [], generated, {})

    # Scoring, on the main process.
    from benchmark.evaluate import Inputs, evaluate
    from ccub.models import model_cache, parse_clip
    from ccub.semantic import embed_texts

    spec = parse_clip(plan.clip, model_cache())
    classes = identification_classes(culture, cfg)
    inputs = Inputs(
        models=[m.name for m in models], prompts=prompts, seeds=seeds,
        images={(m.name, p.id, s): cache.path(m, p.text, s) for m in models for p in prompts for s in seeds},
        culture_classes=classes, class_texts=identification_texts(classes, cfg),
        framings={p.id: framing_texts(p.generic) for p in prompts},
        reference=_dataset_images(plan.dataset, "test") if plan.dataset else [],
        training=_dataset_images(plan.dataset, "train") if plan.dataset else [])
    max_pixels = int(cfg.limits.max_megapixels * 1e6)
    with phase(progress, f"loading the CLIP scorer {spec.describe()}"):
        from ccub.semantic import _model

        _model(spec, device)
    with phase(progress, "loading LPIPS") if b.lpips else phase(None, ""):
        lpips = _lpips(b.lpips, spec.random_weights or models[0].random_weights, device, max_pixels)
    # Scoring counts images: the generated ones, then the training and held-out community images.
    embed = counted_embedder(spec, device, report, len(inputs.images) + len(inputs.training) + len(inputs.reference))

    lpips_total = len(inputs.images) if lpips[0] is not None else 0

    def lpips_tick(done: int) -> None:
        tell(report, "LPIPS", done, lpips_total)

    scores = evaluate(inputs, embed, lambda texts: embed_texts(texts, spec, device=device), lpips[0],
                      logit_scale=b.logit_scale, copy_threshold=b.copy_threshold, kid_subset_size=b.kid_subset_size,
                      lpips_progress=lpips_tick if lpips_total else None)
    scores.notes += lpips[1]
    comparisons = _compare(scores, models, b)  # against models[0], the baseline
    smoke = spec.random_weights or any(m.random_weights for m in models)
    from benchmark.report import write_outputs

    context = {"culture": culture, "runs": runs, "models": models, "prompts": prompts, "seeds": seeds,
               "settings": settings, "clip": spec.describe(),
               "clip_random_weights": spec.random_weights, "suite": str(opts.prompts or "built-in"),
               "reference": f"{len(inputs.reference)} held-out community images ({plan.dataset}/test)" if plan.dataset
               else "none (no ccub run among the models: no community images to score against)",
               "training": len(inputs.training), "smoke_run": smoke, "images": inputs.images,
               "seconds": time.monotonic() - started, "config": b, "classes": classes,
               "max_pixels": max_pixels,
               "reference_sources": _dataset_sources(plan.dataset, "test") if plan.dataset else [],
               "training_sources": _dataset_sources(plan.dataset, "train") if plan.dataset else []}
    output = Path(plan.output or output_folder(opts, resolve_options(opts)))
    with phase(progress, f"writing {output}"):
        files = write_outputs(output, scores, comparisons, context)
    counts = {"models": len(models), "prompts": len(prompts), "seeds": len(seeds), "images": len(inputs.images),
              "reference images": len(inputs.reference), "training images": len(inputs.training)}
    return Outcome(output, comparisons, scores.sets, scores.notes, smoke, files, generated, counts)


def _preflight(models: list[Model], clip: str) -> None:
    """Check every base model, every LoRA file and the CLIP scorer before hours of generating:
    one `ModelUnavailable` names all that are missing."""
    from ccub.models import ModelRef, Need, check_clip, check_pretrained, model_cache, require_all

    needs = []
    for base in {(m.base, m.base_source): m for m in models}.values():
        source = Path(base.base_source)
        if source.is_dir():
            needs.append(check_pretrained(ModelRef(base.base, str(source), base.random_weights, local=True),
                                          "base model", "model_index.json"))
        elif base.base_source == base.base:  # a hub id
            needs.append(check_pretrained(ModelRef(base.base, base.base), "base model", "model_index.json"))
        else:
            needs.append(Need("base model", base.base, f"base model {base.base}: {source}, the folder {base.name} "
                                                       f"was trained from, no longer exists; restore it there"))
    needs += [Need("LoRA", str(m.lora), f"LoRA {m.lora} of {m.name} does not exist") for m in models
              if m.lora is not None and not Path(m.lora).is_file()]
    require_all([*needs, check_clip(clip, model_cache(), "benchmark CLIP")])


def _check_settings(b) -> None:
    from ccub.config import setting_problems
    from finetune.negatives import SCHEDULERS
    from finetune.runtime import DTYPES

    problems = setting_problems(b, {"scheduler": SCHEDULERS, "dtype": DTYPES, "correction": ("holm", "bh")},
                                {"seeds": 1, "steps": 1, "batch_size": 1, "bootstrap": 1, "kid_subset_size": 2})
    if not 0 < b.confidence < 1:
        problems.append(f"confidence = {b.confidence}: must be between 0 and 1")
    if problems:
        raise BenchmarkError("[benchmark] settings: " + "; ".join(problems))


def _compare(scores, models: list[Model], b) -> list:
    from benchmark import stats
    from benchmark.evaluate import METRICS

    by_metric: dict[str, dict[str, dict[tuple[str, int | None], float]]] = {}
    for row in scores.rows:
        by_metric.setdefault(row.metric, {}).setdefault(row.model, {})[(row.prompt, row.seed)] = row.value
    comparisons = []
    for metric, per_model in by_metric.items():
        baseline = models[0].name
        base = per_model.get(baseline, {})
        keys = sorted(base, key=lambda k: (k[0], -1 if k[1] is None else k[1]))
        for model in models[1:]:
            values = per_model.get(model.name, {})
            shared = [k for k in keys if k in values]
            comparisons.append(stats.compare(
                metric, model.name, baseline, [k[0] for k in shared], [k[1] if k[1] is not None else 0 for k in shared],
                [base[k] for k in shared], [values[k] for k in shared], n_boot=b.bootstrap,
                confidence=b.confidence, higher_is_better=METRICS[metric].higher_is_better))
    return stats.adjust(comparisons, method=b.correction)


def counted_embedder(spec: Any, device: str, report: Any, total: int) -> Callable[[list[Path]], Any]:
    """`embed_images` for `evaluate`, reporting "scoring" in images across all its calls (generated,
    training and held-out images come in separate calls, `total` in all)."""
    from ccub.progress import report as tell
    from ccub.semantic import embed_images

    scored = 0
    tell(report, "scoring", 0, total)

    def embed(paths: list[Path]):
        nonlocal scored
        base = scored

        def each(done: int, _total: int) -> None:
            tell(report, "scoring", min(base + done, total), total)

        vectors = embed_images(paths, spec, device=device, progress=each)
        scored = base + len(paths)
        return vectors

    return embed


def _lpips(enabled: bool, tiny: bool, device: str, max_pixels: int) -> tuple[Callable | None, list[str]]:
    """A function (paths_a, paths_b) -> LPIPS distance matrix, or None and the reason."""
    if not enabled:
        return None, []
    from ccub.models import ModelUnavailable
    from finetune.backbones import build_backbone

    try:
        backbone = build_backbone("lpips", tiny=tiny, device=device)
    except ModelUnavailable as exc:
        return None, [f"LPIPS metrics: not computed ({exc})"]
    return _distance_matrix(backbone, device, max_pixels), []


def _distance_matrix(backbone, device: str, max_pixels: int, chunk: int = 64) -> Callable:
    """(paths_a, paths_b) -> LPIPS matrix. When a is b, only the upper triangle is computed (the
    diagonal is 0 and LPIPS is symmetric); pairs go through the backbone `chunk` at a time."""
    import numpy as np
    import torch

    from finetune.data import load_square, to_unit

    size = 256
    cache: dict[Path, torch.Tensor] = {}

    def tensor(path: Path) -> torch.Tensor:
        if path not in cache:
            cache[path] = to_unit(load_square(path, size, max_pixels))
        return cache[path]

    @torch.no_grad()
    def matrix(a: list[Path], b: list[Path]) -> np.ndarray:
        same = a == b
        pairs = [(i, j) for i in range(len(a)) for j in range(len(b)) if not same or i < j]
        out = np.zeros((len(a), len(b)))
        for start in range(0, len(pairs), chunk):
            block = pairs[start:start + chunk]
            left = torch.stack([tensor(a[i]) for i, _ in block]).to(device)
            right = torch.stack([tensor(b[j]) for _, j in block]).to(device)
            values = backbone(left, right).float().cpu().numpy()
            for (i, j), value in zip(block, values, strict=True):
                out[i, j] = value
                if same:
                    out[j, i] = value
        return out

    return matrix
