"""`ccub benchmark --images FOLDER`: score images made elsewhere, as a generated benchmark is scored.

    FOLDER/ + a map (FOLDER/images.csv, FOLDER/images.jsonl or --map FILE): file, model, prompt or
    prompt_id, seed, culture per row
      --> every row checked (the file a regular image inside FOLDER, decided on the descriptor read;
          JPEG, PNG or WebP within [limits]; a known prompt; an integer seed; no duplicate
          (model, prompt, seed)): a bad row is a problem naming its line and file, the rest is used
      --> the bytes read are copied into OUT/benchmark/images/ (what is scored, shown and studied)
      --> benchmark/evaluate.py `evaluate`, benchmark/stats.py `compare` where two models share
          (prompt, seed) pairs and `compare_unpaired` where they do not
      --> OUT/benchmark/{results.csv, summary.csv, summary.md, report.html, benchmark.json}

The folder and the map are untrusted input: see docs/security.md.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.run import BenchmarkError
from ccub.config import Config

ProgressFn = Callable[[str, int, int], None]
MAP_NAMES = ("images.csv", "images.jsonl")
COLUMNS = ("file", "model", "prompt", "prompt_id", "seed", "culture")
MAX_MODEL_CHARS = 100
MAX_SEED = 2**63 - 1
# Models share (prompt, seed) pairs on at least this many prompts to be compared paired.
MIN_PAIRED_PROMPTS = 2
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}


@dataclass
class ExternalOptions:
    images: Path
    map: Path | None = None
    culture: str | None = None
    prompts: Path | None = None
    clip: str | None = None
    device: str | None = None
    out: Path | None = None  # the benchmark folder; default: runs/<folder name>/benchmark
    baseline: str | None = None  # default: the model named "base", else the map's first model


@dataclass(frozen=True)
class ExternalModel:
    """A model known only by its images: no generator, so no random-weights claim for it."""

    name: str
    images_folder: str
    map_path: str
    map_sha256: str
    random_weights: bool = False  # the generator's weights are unknown; the CLIP scorer's still count

    def key(self) -> str:
        return "external:" + hashlib.sha256(f"{self.map_sha256}\0{self.name}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        """What the model is, in words, for the outputs (as `benchmark.references.model_kind` says it of a
        generated one)."""
        return (f"images made elsewhere, from {self.images_folder} (map {Path(self.map_path).name}, sha256 "
                f"{self.map_sha256[:16]}…)")

    def record(self) -> dict[str, Any]:
        """The model's entry in benchmark.json (`source`, `images_folder`, `map`, `map_sha256` are this
        module's; the other keys are those of a generated model, empty)."""
        return {"name": self.name, "key": self.key(), "kind": "external", "describe": self.describe(),
                "base": None, "lora": None, "random_weights": False,
                "release": None, "release_digest": None, "source": "external", "images_folder": self.images_folder,
                "map": self.map_path, "map_sha256": self.map_sha256}


@dataclass
class ExternalSet:
    folder: Path
    map_path: Path
    map_sha256: str
    culture: str
    prompts: list  # benchmark.prompts.Prompt, suite order, those with at least one image
    models: list[ExternalModel]  # the baseline first
    seeds: list[int]
    images: dict[tuple[str, str, int], Path]  # (model, prompt id, seed) -> the copy scored
    problems: list[str] = field(default_factory=list)
    rows: int = 0


def find_map(folder: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    found = [folder / name for name in MAP_NAMES if (folder / name).is_file()]
    if len(found) != 1:
        raise BenchmarkError(f"{folder}: " + ("no images.csv or images.jsonl in it" if not found else
                                              "both images.csv and images.jsonl; keep one")
                             + "; give the map with --map FILE (docs/benchmark.md, Images made elsewhere)")
    return found[0]


def _read_map(path: Path, cfg: Config) -> tuple[bytes, list]:
    """The map's bytes and its raw rows (ccub/rows.py readers: bounded lines, cells and depth)."""
    from ccub.rows import csv_rows, jsonl_rows
    from ccub.safeio import Root, UnsafeFile

    try:
        data, _ = Root(path.parent).read(path.name, int(cfg.limits.max_metadata_mb * 1e6))
    except UnsafeFile as exc:
        raise BenchmarkError(f"{path}: the map cannot be read: {exc}") from exc
    reader = jsonl_rows if path.suffix.lower() in (".jsonl", ".json") else csv_rows
    return data, list(reader(io.BytesIO(data), cfg.limits))


def _records(path: Path, raw: list) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line, fields) per usable row, and a problem per unusable one."""
    problems: list[str] = []
    records: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    for row in raw:
        if row.problem:
            problems.append(f"{path.name} line {row.line} {row.problem}")
            continue
        if isinstance(row.value, list):  # CSV
            if header is None:
                header = [c.strip().lower() for c in row.value]
                unknown = [c for c in header if c not in COLUMNS]
                if "file" not in header or "model" not in header or "seed" not in header or not (
                        "prompt" in header or "prompt_id" in header):
                    raise BenchmarkError(f"{path}: the header must name the columns file, model, seed and prompt or "
                                         f"prompt_id (culture optional); it has {', '.join(header)}")
                if unknown:
                    problems.append(f"{path.name}: columns {', '.join(unknown)} are not read")
                continue
            if len(row.value) != len(header):
                problems.append(f"{path.name} line {row.line}: {len(row.value)} cells, the header has {len(header)}")
                continue
            records.append((row.line, {k: v.strip() for k, v in zip(header, row.value, strict=True) if k}))
        elif isinstance(row.value, dict):
            records.append((row.line, row.value))
        else:
            problems.append(f"{path.name} line {row.line}: not a JSON object")
    return records, problems


def _text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, not {type(value).__name__}")
    return value


def _seed(value: Any) -> int:
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError(f"seed {value!r} is not a non-negative integer")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            raise ValueError(f"seed {value[:40]!r} is not a non-negative integer")
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed {str(value)[:40]!r} is not a non-negative integer below 2**63")
    return value


def load_external(opts: ExternalOptions, cfg: Config, copies: Path) -> ExternalSet:
    """Every usable row of the map, its image read once and copied into `copies`; problems named by row.

    Raises BenchmarkError when the folder or map cannot be read, or when no usable image remains."""
    from benchmark.prompts import suite_for
    from ccub.imaging.decode import DecodeRefused, open_image
    from ccub.safeio import Root, UnsafeFile
    from ccub.vocab import Vocabulary

    folder = Path(opts.images)
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: no such folder of images")
    map_path = find_map(folder, opts.map)
    data, raw = _read_map(map_path, cfg)
    digest = hashlib.sha256(data).hexdigest()
    records, problems = _records(map_path, raw)
    vocab = Vocabulary(cfg)
    cultures = {vocab.culture(c) or c for _, f in records if isinstance(c := f.get("culture"), str) and c}
    culture = vocab.culture(opts.culture) if opts.culture else (next(iter(cultures)) if len(cultures) == 1 else None)
    if culture is None:
        raise BenchmarkError(f"{map_path}: " + (f"rows of several cultures ({', '.join(sorted(cultures))}); pass "
                                                "--culture" if cultures else "no culture column; pass --culture"))
    suite = suite_for(culture, opts.prompts, cfg)
    if not suite:
        raise BenchmarkError(f"no prompts for culture {culture!r} in {opts.prompts or 'the built-in suite'}")
    by_id, by_text = {p.id: p for p in suite}, {p.text: p for p in suite}
    root = Root(folder)
    max_bytes, max_pixels = int(cfg.limits.max_file_mb * 1e6), int(cfg.limits.max_megapixels * 1e6)
    copies.mkdir(parents=True, exist_ok=True)
    images: dict[tuple[str, str, int], Path] = {}
    seen: dict[tuple[str, str, int], int] = {}
    names: list[str] = []
    for line, fields in records:
        where = f"{map_path.name} line {line}"
        try:
            rel = _text(fields, "file")
            where += f" ({rel!r})" if rel else ""
            model = _text(fields, "model")
            if not rel or not model:
                raise ValueError("file and model must both be given")
            if len(model) > MAX_MODEL_CHARS or not model.isprintable():
                raise ValueError(f"model name must be printable text of at most {MAX_MODEL_CHARS} characters")
            row_culture = _text(fields, "culture")
            if row_culture and (vocab.culture(row_culture) or row_culture) != culture:
                raise ValueError(f"culture {row_culture!r} is not the benchmarked {culture!r}")
            pid, text = _text(fields, "prompt_id"), _text(fields, "prompt")
            prompt = by_id.get(pid) if pid else by_text.get(" ".join(text.split())) if text else None
            if prompt is None:
                what = f"prompt id {pid!r}" if pid else f"prompt {text[:80]!r}" if text else "no prompt"
                raise ValueError(f"{what} is not in the {culture} suite ({opts.prompts or 'built-in'})")
            seed = _seed(fields.get("seed"))
            key = (model, prompt.id, seed)
            if key in seen:
                raise ValueError(f"model {model!r}, prompt {prompt.id!r}, seed {seed} already given on line "
                                 f"{seen[key]}")
            payload, _ = root.read(rel, max_bytes)
            with open_image(payload, max_pixels) as im:
                kind = im.format
                im.load()  # a truncated or corrupt file fails here, bounded by the header's size
        except (UnsafeFile, DecodeRefused) as exc:  # named by their check, as `ccub validate` names them
            problems.append(f"{where}: {exc.check}: {exc}")
            continue
        except (ValueError, OSError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        seen[key] = line
        sha = hashlib.sha256(payload).hexdigest()
        copy = copies / f"{sha}{EXTENSIONS.get(kind or '', '.img')}"
        if not copy.is_file():
            copy.write_bytes(payload)
        images[key] = copy
        if model not in names:
            names.append(model)
    if not images:
        raise BenchmarkError(f"{map_path}: no usable image (" + (f"{len(problems)} problem(s): "
                             + "; ".join(problems[:5]) if problems else "the map has no rows") + ")")
    baseline = opts.baseline or ("base" if "base" in names else names[0])
    if baseline not in names:
        raise BenchmarkError(f"--baseline {baseline!r}: no usable image of that model (models: {', '.join(names)})")
    if len(names) < 2:
        raise BenchmarkError(f"{map_path}: images of one model only ({names[0]}); a benchmark compares two or more")
    order = [baseline, *(n for n in names if n != baseline)]
    used = {pid for _, pid, _ in images}
    models = [ExternalModel(n, str(folder.resolve()), str(map_path.resolve()), digest) for n in order]
    return ExternalSet(folder, map_path, digest, culture, [p for p in suite if p.id in used], models,
                       sorted({s for _, _, s in images}), images, problems, len(records))


def pairing_of(images: dict, model: str, baseline: str) -> str:
    """"paired" when the two models share (prompt, seed) images on MIN_PAIRED_PROMPTS prompts or more."""
    mine = {(p, s) for m, p, s in images if m == model}
    shared = {p for m, p, s in images if m == baseline and (p, s) in mine}
    return "paired" if len(shared) >= MIN_PAIRED_PROMPTS else "unpaired"


def compare_external(scores, models: list[ExternalModel], images: dict, b) -> list:
    """Each model against the first: paired on the shared (prompt, seed) pairs, else unpaired."""
    from benchmark import stats
    from benchmark.evaluate import METRICS

    baseline = models[0].name
    by_metric: dict[str, dict[str, dict[tuple[str, int | None], float]]] = {}
    for row in scores.rows:
        by_metric.setdefault(row.metric, {}).setdefault(row.model, {})[(row.prompt, row.seed)] = row.value
    comparisons = []
    for metric, per_model in by_metric.items():
        base = per_model.get(baseline, {})
        keys = sorted(base, key=lambda k: (k[0], -1 if k[1] is None else k[1]))
        options = {"n_boot": b.bootstrap, "confidence": b.confidence,
                   "higher_is_better": METRICS[metric].higher_is_better}
        for model in models[1:]:
            values = per_model.get(model.name, {})
            if pairing_of(images, model.name, baseline) == "paired":
                shared = [k for k in keys if k in values]
                comparisons.append(stats.compare(
                    metric, model.name, baseline, [k[0] for k in shared],
                    [k[1] if k[1] is not None else 0 for k in shared], [base[k] for k in shared],
                    [values[k] for k in shared], **options))
            else:
                comparisons.append(stats.compare_unpaired(
                    metric, model.name, baseline, [k[0] for k in base], list(base.values()),
                    [k[0] for k in values], list(values.values()), **options))
    return stats.adjust(comparisons, method=b.correction)


def external_out(opts: ExternalOptions) -> Path:
    """The benchmark folder: --output, else runs/<images folder name>/benchmark (a folder `ccub study make`
    takes like a run's)."""
    return Path(opts.out) if opts.out else Path("runs") / Path(opts.images).resolve().name / "benchmark"


def run_external(opts: ExternalOptions, cfg: Config, progress: ProgressFn | None = None):
    """Score the folder's images; returns benchmark.run.Outcome (generated = 0)."""
    from benchmark.evaluate import Inputs, evaluate
    from benchmark.prompts import framing_texts, identification_classes, identification_texts
    from benchmark.report import write_outputs
    from benchmark.run import Outcome, _check_settings, _lpips, counted_embedder
    from ccub.models import check_clip, model_cache, parse_clip, require_all
    from ccub.progress import phase
    from ccub.semantic import embed_texts
    from finetune.runtime import pick_device

    report = progress or (lambda stage, done, total, **fields: None)
    started = time.monotonic()
    b = cfg.benchmark
    _check_settings(b)
    clip = opts.clip or b.clip
    require_all([check_clip(clip, model_cache(), "benchmark CLIP")])
    output = external_out(opts)
    found = load_external(opts, cfg, output / "images")
    device = opts.device or pick_device()
    spec = parse_clip(clip, model_cache())
    classes = identification_classes(found.culture, cfg)
    inputs = Inputs(models=[m.name for m in found.models], prompts=found.prompts, seeds=found.seeds,
                    images=found.images, culture_classes=classes, class_texts=identification_texts(classes, cfg),
                    framings={p.id: framing_texts(p.generic) for p in found.prompts}, reference=[], training=[])
    max_pixels = int(cfg.limits.max_megapixels * 1e6)
    lpips = _lpips(b.lpips, spec.random_weights, device, max_pixels)
    embed = counted_embedder(spec, device, report, len(inputs.images))

    scores = evaluate(inputs, embed, lambda texts: embed_texts(texts, spec, device=device), lpips[0],
                      logit_scale=b.logit_scale, copy_threshold=b.copy_threshold, kid_subset_size=b.kid_subset_size)
    scores.notes += lpips[1]
    scores.notes.append(f"Images made elsewhere: {found.folder} (map {found.map_path.name}, sha256 "
                        f"{found.map_sha256[:16]}...): no generator, no generation settings, no community reference "
                        f"set; models are compared with {found.models[0].name}.")
    counts_by_model = {m.name: sum(k[0] == m.name for k in found.images) for m in found.models}
    if len(set(counts_by_model.values())) > 1:
        scores.notes.append("Models have different numbers of images (" + ", ".join(
            f"{k} {v}" for k, v in counts_by_model.items()) + "): set-level values are not on equal samples.")
    if found.problems:
        scores.notes.append(f"{len(found.problems)} map row(s) not used: " + "; ".join(found.problems[:20])
                            + (" ..." if len(found.problems) > 20 else ""))
    comparisons = compare_external(scores, found.models, found.images, b)
    context = {"culture": found.culture, "runs": [], "models": found.models, "prompts": found.prompts,
               "seeds": found.seeds, "settings": {"source": "external"}, "clip": spec.describe(),
               "clip_random_weights": spec.random_weights, "suite": str(opts.prompts or "built-in"),
               "reference": "none (images made elsewhere)", "training": 0, "smoke_run": spec.random_weights,
               "images": found.images, "seconds": time.monotonic() - started, "config": b, "classes": classes,
               "max_pixels": max_pixels, "baseline": found.models[0].name,
               "generation": f"images made elsewhere, {found.folder} (map {found.map_path}, sha256 "
                             f"{found.map_sha256})"}
    with phase(progress, f"writing {output}"):
        files = write_outputs(output, scores, comparisons, context)
    counts = {"models": len(found.models), "prompts": len(found.prompts), "seeds": len(found.seeds),
              "images": len(found.images), "map rows": found.rows, "rows not used": len(found.problems)}
    return Outcome(output, comparisons, scores.sets, scores.notes, spec.random_weights, files, 0, counts,
                   found.problems)
