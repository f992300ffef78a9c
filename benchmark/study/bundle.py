"""`ccub study make`: a study bundle built from the images `ccub benchmark` generated.

    runs/<name>/benchmark/benchmark.json + results.csv, for every run named
      --> items: (prompt, seed) pairs that every model drew, one image per model, the models
          shuffled into slots A, B, C, ... per item (seeded, so a rebuild gives the same bundle)
      --> <out>/survey.html   what participants open (offline; images re-encoded, models hidden)
          <out>/crowd/        items.csv + images/ for crowd-sourcing platforms (models hidden)
          <out>/study.json    the key: which slot of which item is which model. Keep it private.
          <out>/metrics.csv   the benchmark's per-image metrics of the study's images
          <out>/README.md     what to send, what to keep, how to analyse

The bundle is built in a hidden sibling folder and renamed into place, so an interrupted run
leaves no half-made bundle. A folder holding another study is never overwritten without
`force`: its key is what makes the responses already collected readable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.metric_rows import STUDY_COLUMNS, MetricRow, read_rows, write_rows
from benchmark.record import BENCHMARK_FILE, BenchmarkRecord
from ccub.escape import csv_text, markdown_text
from ccub.recordfile import RecordError, RecordFile

STUDY_FILE = "study.json"
METRICS_FILE = "metrics.csv"
SURVEY_FILE = "survey.html"
CROWD_DIR = "crowd"
SLOTS = string.ascii_uppercase

ProgressFn = Callable[[str, int, int], None]


class StudyError(ValueError):
    """Input `ccub study` cannot work with; the message names the file and the fix."""


@dataclass
class MakeOptions:
    runs: list[Path | str]  # run folders, or base:MODEL / lora:FILE[@SCALE] references (benchmark/references.py)
    out: Path
    culture: str | None = None
    base: bool = True  # include the base model as one of the ranked images
    texts: Path | None = None  # TOML replacing survey texts (e.g. a translation)
    crowd_url: str = ""  # prefix of the image URLs in crowd/items.csv, where the images will be hosted
    force: bool = False
    benchmarks: list[Path] = field(default_factory=list)  # benchmark folders (holding benchmark.json) to read too


@dataclass
class Source:
    """One run's benchmark: its manifest and per-image metrics."""

    manifest_path: Path
    manifest: BenchmarkRecord
    metrics: dict[tuple[str, str, int], dict[str, float]] = field(default_factory=dict)  # (model, prompt, seed)


@dataclass
class Made:
    out: Path
    study_id: str
    items: int
    models: list[str]
    smoke_run: bool


@dataclass
class StudyKey(RecordFile):
    """`study.json`, the bundle's private key: which slot of which item shows which model."""

    SCHEMA: ClassVar[str] = "ccub-study"
    VERSION: ClassVar[int] = 1
    SCHEMA_KEYS: ClassVar[tuple[str, str]] = ("format", "version")  # the format bundles already in use have
    FIX: ClassVar[str] = "rebuild it with the same `ccub study make` command and seed, which gives the same key"

    study_id: str
    culture: str
    culture_name: str
    seed: int
    smoke_run: bool  # some image (or the CLIP scorer of its metrics) came from random weights
    questions: list[str]
    per_participant: int
    clip: str
    settings: dict[str, Any]
    models: list[dict[str, Any]]  # name, key, base, lora, random_weights, source, release, release_digest
    items: list[dict[str, Any]]  # id, prompt_id, prompt, category, seed, slots (slot -> model), images

    def model_names(self) -> list[str]:
        return [m["name"] for m in self.models]

    def problems(self) -> list[str]:
        names = set(self.model_names())
        return [f"item {item.get('id')!r} does not show every model once" for item in self.items
                if not isinstance(item.get("slots"), dict) or set(item["slots"].values()) != names
                or len(item["slots"]) != len(names)]


def read_study(folder: Path) -> StudyKey:
    """The bundle's key (study.json), as `make_study` wrote it."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise StudyError(f"{folder}: no {STUDY_FILE}; give the folder `ccub study make --out` wrote")
    try:
        return StudyKey.read(path)
    except RecordError as exc:
        raise StudyError(str(exc)) from exc


def find_studies(folder: Path) -> list[Path]:
    """The bundle `folder` is, or the bundles one level below it (one study per culture: study/korea, ...)."""
    folder = Path(folder)
    if (folder / STUDY_FILE).is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob(f"*/{STUDY_FILE}"))
    if not found:
        raise StudyError(f"{folder}: no {STUDY_FILE} in it or in its subfolders; give the folder `ccub study make "
                         f"--out` wrote (or the folder holding several of them)")
    return found


def read_source(run: Path) -> Source:
    """The benchmark of run folder `run` (run/benchmark/benchmark.json), or of a benchmark folder (holding
    benchmark.json, as `ccub benchmark --output` writes for models that are not runs)."""
    path = Path(run) / "benchmark" / BENCHMARK_FILE
    if not path.is_file() and (Path(run) / BENCHMARK_FILE).is_file():
        path = Path(run) / BENCHMARK_FILE
    if not path.is_file():
        raise StudyError(f"{run}: no benchmark/{BENCHMARK_FILE}; run `ccub benchmark --model {run}` first (its "
                         f"images are what the study shows)")
    try:
        record = BenchmarkRecord.read(path)
    except RecordError as exc:
        raise StudyError(str(exc)) from exc
    names = [m["name"] for m in record.models] + [p["id"] for p in record.prompts]
    return Source(path, record, _read_metrics(path.parent / "results.csv", names))


def _read_metrics(path: Path, names: list[str]) -> dict[tuple[str, str, int], dict[str, float]]:
    from benchmark.evaluate import METRICS

    found: dict[tuple[str, str, int], dict[str, float]] = {}
    if not path.is_file():
        return found
    try:
        rows = read_rows(path, names)
    except RecordError as exc:
        raise StudyError(str(exc)) from exc
    for row in rows:
        if row.metric in METRICS and METRICS[row.metric].level == "image" and row.seed is not None:
            found.setdefault((row.model, row.prompt, row.seed), {})[row.metric] = row.value
    return found


def _check_compatible(sources: list[Source]) -> None:
    """Images of different settings are not paired, and metrics of different CLIPs do not compare."""
    first = sources[0]
    for other in sources[1:]:
        for key, what in (("settings", "generation settings"), ("clip", "CLIP scorer"), ("seeds", "seeds")):
            mine, theirs = getattr(other.manifest, key), getattr(first.manifest, key)
            if mine != theirs:
                raise StudyError(
                    f"{other.manifest_path} and {first.manifest_path} differ in their {what} "
                    f"({mine} vs {theirs}); benchmark every run with the same "
                    f"[benchmark] settings and --clip so its images and metrics can be compared")


def _is_reference(item: Path | str) -> bool:
    from benchmark.references import BASE_PREFIX, LORA_PREFIX

    return str(item).startswith((BASE_PREFIX, LORA_PREFIX))


def _find_model(item: str, sources: list[Source]) -> str:
    """The name, in the benchmarks read, of the model base:MODEL or lora:FILE[@SCALE] names: a base model by its
    name, a LoRA file by its sha256 digest (its identity, wherever the file lies) and its scale."""
    from benchmark.references import ModelReferenceError, file_digest, parse_reference

    try:
        ref = parse_reference(item, "RUN")
    except ModelReferenceError as exc:
        raise StudyError(str(exc)) from exc
    digest = file_digest(ref.path) if ref.kind == "lora" else None
    for source in sources:
        for m in source.manifest.models:
            if ref.kind == "base" and m.get("lora") is None and m.get("base") == ref.base:
                return m["name"]
            if ref.kind == "lora" and m.get("lora_sha256") == digest and m.get("lora_scale") == ref.scale:
                return m["name"]
    read = ", ".join(str(s.manifest_path) for s in sources)
    what = f"base model {ref.base}" if ref.kind == "base" else f"LoRA file {ref.path} (sha256 {digest[:16]}…)"
    raise StudyError(f"RUN {item}: no model of the benchmarks read ({read}) is the {what}; benchmark it first "
                     f"(`ccub benchmark --model {item} ... --output DIR`) and pass --benchmark DIR")


def _external_models(record: BenchmarkRecord) -> list[str]:
    """The model names of a benchmark of images made elsewhere (`ccub benchmark --images`), else []."""
    if any(m.get("source") == "external" for m in record.models):
        return [m["name"] for m in record.models]
    return []


def _by_prompt(models: dict[str, dict[str, Any]], order: list[str]) -> list[tuple[str, dict[str, int]]]:
    """Images made elsewhere with no (prompt, seed) shared by every model: per prompt that every model
    has, the models' images matched in seed order (the k-th seed of each), one item per match."""
    seeds: dict[str, dict[str, list[int]]] = {}
    for name in order:
        for text, seed in models[name]["images"]:
            seeds.setdefault(text, {}).setdefault(name, []).append(seed)
    matched = []
    for text, per_model in seeds.items():
        if len(per_model) == len(order):
            lists = [sorted(per_model[name]) for name in order]
            matched += [(text, dict(zip(order, column, strict=True))) for column in zip(*lists, strict=False)]
    first = models[order[0]]["images"]
    return sorted(matched, key=lambda m: (first[(m[0], m[1][order[0]])][1]["id"], m[1][order[0]]))


def _wanted_models(runs: list[Path | str], base: bool, sources: list[Source] | None = None) -> list[str]:
    names = [_find_model(str(r), sources or []) if _is_reference(r) else Path(r).resolve().name for r in runs]
    if len(set(names)) != len(names):
        raise StudyError(f"two runs share a folder name ({', '.join(names)}); rename one so they can be told apart")
    return (["base"] if base and "base" not in names else []) + names


def _collect(sources: list[Source], wanted: list[str]) -> dict[str, dict[str, Any]]:
    """model name -> its record, image per (prompt text, seed) and metrics, from the first source holding it."""
    models: dict[str, dict[str, Any]] = {}
    for source in sources:
        prompts = {p["id"]: p for p in source.manifest.prompts}
        for record in source.manifest.models:
            name = record["name"]
            if name not in wanted:
                continue
            if name in models:
                if models[name]["key"] != record["key"]:
                    raise StudyError(f"{source.manifest_path}: model {name!r} is not the one in "
                                     f"{models[name]['source']} (another base model or LoRA file); benchmark the "
                                     f"runs on the same base model")
                continue
            images = {}
            for image in source.manifest.images:
                if image["model"] == name:
                    prompt = prompts[image["prompt"]]
                    images[(prompt["text"], image["seed"])] = (Path(image["path"]), prompt)
            models[name] = {**record, "source": str(source.manifest_path), "images": images,
                            "metrics": {k: v for k, v in source.metrics.items() if k[0] == name}}
    missing = [m for m in wanted if m not in models]
    if missing:
        raise StudyError(f"no benchmark images of {', '.join(missing)}; run `ccub benchmark --model runs/<name>` for "
                         f"each run (or `--compare` them in one benchmark) before `ccub study make`")
    return models


def choose_items(models: dict[str, dict[str, Any]], order: list[str], count: int, seed: int,
                 by_prompt: bool = False) -> list[dict]:
    """The (prompt, seed) pairs every model drew, sampled down to `count` when > 0, models shuffled into slots.

    One generator seeded with `seed` draws the sample, then one permutation per item in item order,
    so the same inputs and seed give the same bundle. With `by_prompt` (images made elsewhere), models
    that share no (prompt, seed) are matched by prompt instead (`_by_prompt`): such an item has
    `seeds` (model -> its image's seed) and `seed` is the first model's.
    """
    shared = set.intersection(*(set(models[m]["images"]) for m in order))
    pairs = sorted(shared, key=lambda k: (models[order[0]]["images"][k][1]["id"], k[1]))
    if not pairs and by_prompt:
        return _items_by_prompt(models, order, count, seed)
    if not pairs:
        raise StudyError(f"the models {', '.join(order)} share no (prompt, seed) pair: benchmark them with the same "
                         f"prompt suite and seeds")
    rng = np.random.default_rng(seed)
    if 0 < count < len(pairs):
        picked = sorted(rng.choice(len(pairs), size=count, replace=False))
        pairs = [pairs[i] for i in picked]
    items = []
    for number, (text, image_seed) in enumerate(pairs, start=1):
        prompt = models[order[0]]["images"][(text, image_seed)][1]
        shuffled = [order[i] for i in rng.permutation(len(order))]
        items.append({
            "id": f"i{number:03d}", "prompt_id": prompt["id"], "prompt": text, "category": prompt.get("category", ""),
            "seed": image_seed, "slots": {SLOTS[k]: name for k, name in enumerate(shuffled)},
            "images": {SLOTS[k]: str(models[name]["images"][(text, image_seed)][0]) for k, name in enumerate(shuffled)},
        })
    return items


def _items_by_prompt(models: dict[str, dict[str, Any]], order: list[str], count: int, seed: int) -> list[dict]:
    matched = _by_prompt(models, order)
    if not matched:
        raise StudyError(f"the models {', '.join(order)} share no prompt: give them images of the same prompts")
    rng = np.random.default_rng(seed)
    if 0 < count < len(matched):
        matched = [matched[i] for i in sorted(rng.choice(len(matched), size=count, replace=False))]
    items = []
    for number, (text, seeds) in enumerate(matched, start=1):
        prompt = models[order[0]]["images"][(text, seeds[order[0]])][1]
        shuffled = [order[i] for i in rng.permutation(len(order))]
        items.append({
            "id": f"i{number:03d}", "prompt_id": prompt["id"], "prompt": text, "category": prompt.get("category", ""),
            "seed": seeds[order[0]], "seeds": dict(seeds), "slots": {SLOTS[k]: name for k, name in enumerate(shuffled)},
            "images": {SLOTS[k]: str(models[name]["images"][(text, seeds[name])][0])
                       for k, name in enumerate(shuffled)},
        })
    return items


def study_id(models: dict[str, dict[str, Any]], items: list[dict], seed: int) -> str:
    """Same models, items and seed -> same id: a rebuilt bundle still reads the responses collected."""
    digest = hashlib.sha256()
    digest.update(json.dumps([sorted(m["key"] for m in models.values()), seed,
                              [(i["prompt"], i["seed"], i["slots"], *([i["seeds"]] if "seeds" in i else []))
                               for i in items]], sort_keys=True).encode())
    return digest.hexdigest()[:12]


def encode_jpeg(path: Path, size: int, quality: int, max_pixels: int) -> bytes:
    """A fresh JPEG with no metadata: nothing of the source file (names, PNG text chunks) reaches participants.

    The benchmark cache is a folder anyone may have written to: only JPEG, PNG and WebP of at most
    `max_pixels` pixels are decoded (`open_image` checks both on the header)."""
    from PIL import ImageOps

    from ccub.imaging.decode import open_image

    with open_image(path, max_pixels) as source:
        im = ImageOps.exif_transpose(source).convert("RGB")
    im.thumbnail((size, size))
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def make_study(opts: MakeOptions, cfg, progress: ProgressFn | None = None) -> Made:
    from benchmark.study.survey import load_texts

    s = cfg.study
    check_study_settings(s, getattr(cfg, "source", ""))
    if not opts.runs:
        raise StudyError("name at least one run folder (runs/<name>/) whose benchmark images the study shows")
    # `ccub benchmark --model runs/x --compare runs/y` writes x's benchmark only, with y's images in it.
    folders = [r for r in opts.runs if not _is_reference(r)]
    benchmarked = [*(r for r in folders if (Path(r) / "benchmark").is_dir()), *opts.benchmarks] or folders[:1]
    if not benchmarked:
        raise StudyError("base:MODEL and lora:FILE references are found in benchmarks: pass --benchmark DIR, the "
                         "folder `ccub benchmark --output DIR` wrote")
    sources = [read_source(r) for r in benchmarked]
    _check_compatible(sources)
    culture = sources[0].manifest.culture
    if opts.culture and opts.culture != culture:
        raise StudyError(f"--culture {opts.culture}, but {sources[0].manifest_path} benchmarked {culture!r} prompts; "
                         f"benchmark the runs with --culture {opts.culture} or leave --culture out")
    external = _external_models(sources[0].manifest)
    # Images made elsewhere: every model of the benchmark, the baseline first (dropped by --no-base).
    wanted = (external if opts.base else external[1:]) if external else _wanted_models(opts.runs, opts.base, sources)
    if len(wanted) < 2:
        raise StudyError("a ranking needs at least two models: name two runs, or keep the base model in")
    models = _collect(sources, wanted)
    items = choose_items(models, wanted, s.items, s.seed, by_prompt=bool(external))
    sid = study_id(models, items, s.seed)
    _check_out(opts.out, sid, opts.force)
    name = cfg.cultures[culture].name if culture in cfg.cultures else culture
    texts = load_texts(name, opts.texts)
    smoke = any(models[m]["random_weights"] for m in wanted) or sources[0].manifest.clip_random_weights
    study = StudyKey(
        study_id=sid, culture=culture, culture_name=name, seed=s.seed, smoke_run=smoke, questions=list(s.questions),
        per_participant=s.per_participant, clip=sources[0].manifest.clip, settings=sources[0].manifest.settings,
        models=[{k: models[m].get(k) for k in ("name", "key", "base", "lora", "random_weights", "source", "release",
                                               "release_digest")}
                for m in wanted],
        items=items)
    return _write_bundle(opts, study, models, texts, s, int(cfg.limits.max_megapixels * 1e6),
                         progress or (lambda stage, done, total: None))


def check_study_settings(s, source: str = "") -> None:
    """Raise ConfigError naming every [study] setting out of range (make and analyze read them);
    `source`: the config file, named first in the message."""
    from benchmark.study.responses import RESUBMISSION
    from benchmark.study.survey import QUESTIONS
    from ccub.config import ConfigError, setting_problems

    problems = setting_problems(s, {"resubmission": RESUBMISSION}, {
        "items": 0, "per_participant": 0, "image_size": 64, "jpeg_quality": 1, "bootstrap": 1})
    unknown = [q for q in s.questions if q not in QUESTIONS]
    if unknown or not s.questions:
        problems.append(f"questions = {s.questions}: choose one or more of {list(QUESTIONS)}")
    if not 0 < s.confidence < 1:
        problems.append(f"confidence = {s.confidence}: must be between 0 and 1")
    if not s.prior > 0:
        # At 0 a model that never won or never lost (in the data or in a bootstrap resample) has no
        # finite Bradley-Terry strength.
        problems.append(f"prior = {s.prior}: must be above 0 (pseudo-wins keep every Bradley-Terry strength "
                        f"finite, also in bootstrap resamples where a model never wins or never loses)")
    if problems:
        raise ConfigError((f"{source}: " if source else "") + "[study] settings: " + "; ".join(problems))


def _check_out(out: Path, sid: str, force: bool) -> None:
    existing = Path(out) / STUDY_FILE
    if not existing.is_file() or force:
        return
    try:
        old = json.loads(existing.read_text(encoding="utf-8")).get("study_id")
    except ValueError:
        old = None
    if old != sid:
        raise StudyError(f"{out} holds another study ({old}); its study.json is the only key to the responses it "
                         f"collected. Choose another --out, or pass --force to replace it")


def _write_bundle(opts: MakeOptions, study: StudyKey, models: dict, texts: dict, s, max_pixels: int,
                  progress: ProgressFn) -> Made:
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _fill(partial, opts, study, models, texts, s, max_pixels, progress)
        _swap_in(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return Made(out, study.study_id, len(study.items), study.model_names(), study.smoke_run)


def _fill(folder: Path, opts: MakeOptions, study: StudyKey, models: dict, texts: dict, s, max_pixels: int,
          progress: ProgressFn) -> None:
    from benchmark.study.survey import render_survey

    (folder / CROWD_DIR / "images").mkdir(parents=True)
    survey_items, crowd_rows = [], []
    slots = SLOTS[:len(study.models)]
    for done, item in enumerate(study.items):
        images = []
        row = {"study_id": study.study_id, "item_id": item["id"], "prompt": item["prompt"]}
        for slot in slots:
            data = _jpeg(Path(item["images"][slot]), s, max_pixels)
            name = f"{item['id']}-{slot}.jpg"
            (folder / CROWD_DIR / "images" / name).write_bytes(data)
            images.append({"slot": slot, "src": "data:image/jpeg;base64," + _b64(data)})
            row[f"image_{slot}"] = f"{opts.crowd_url}images/{name}"
        survey_items.append({"id": item["id"], "prompt": item["prompt"], "images": images})
        crowd_rows.append(row)
        progress("encoding images", done + 1, len(study.items))
    survey = {"study_id": study.study_id, "title": texts["title"], "culture": study.culture_name,
              "smoke_run": study.smoke_run, "per_participant": study.per_participant, "texts": texts,
              "questions": study.questions, "items": survey_items}
    (folder / SURVEY_FILE).write_text(render_survey(survey), encoding="utf-8")
    (folder / CROWD_DIR / "items.csv").write_text(
        csv_text(crowd_rows, ["study_id", "item_id", "prompt", *(f"image_{x}" for x in slots)]), encoding="utf-8")
    (folder / CROWD_DIR / "README.md").write_text(crowd_readme(study, slots), encoding="utf-8")
    write_rows(folder / METRICS_FILE, _metric_rows(study, models), STUDY_COLUMNS)
    (folder / "README.md").write_text(bundle_readme(study, opts.out), encoding="utf-8")
    study.write(folder / STUDY_FILE)


def _jpeg(path: Path, s, max_pixels: int) -> bytes:
    try:
        return encode_jpeg(path, s.image_size, s.jpeg_quality, max_pixels)
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: cannot read this benchmark image ({exc}); rerun `ccub benchmark`, which draws "
                         f"missing images again") from exc


def _swap_in(partial: Path, out: Path) -> None:
    """Rename the finished bundle into place; an older bundle is moved aside first, then removed."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _metric_rows(study: StudyKey, models: dict) -> list[MetricRow]:
    def seed_of(item: dict, name: str) -> int:  # items matched by prompt carry each model's seed
        return item.get("seeds", {}).get(name, item["seed"])

    return [MetricRow(item=item["id"], model=name, prompt=item["prompt_id"], seed=seed_of(item, name), metric=metric,
                      value=value)
            for item in study.items for name in item["slots"].values()
            for metric, value in sorted(models[name]["metrics"].get((name, item["prompt_id"], seed_of(item, name)),
                                                                    {}).items())]


def crowd_readme(study: StudyKey, slots: str) -> str:
    answers = ", ".join(f"`Answer.{q}`" for q in study.questions)
    return f"""# Crowd-sourcing layout of study {study.study_id}

`items.csv` has one row per item: `study_id`, `item_id`, `prompt` and one image URL per slot
(`image_{slots[0]}` ... `image_{slots[-1]}`). Host the files of `images/` and make the bundle with
`--crowd-url https://your.host/path/` so the URLs are complete. The file names say nothing about
the models.

Each task shows one item's prompt and images and asks the questions of `survey.html` (rank 1 is
always the preferred end). Export the results as CSV with one row per (worker, item) and the columns
`WorkerId` (or `participant`), `Input.item_id` (or `item_id`), `Input.study_id` (or `study_id`;
optional when one study is analysed) and {answers} (or the
question names alone), each a full ranking of the slots, best first, joined by `>`: `C>A>D>B`.
An optional `Answer.identifies` column (`yes`, `no`, `unsaid`) carries the self-identified
cultural affiliation. Put that file in the responses folder given to `ccub study analyze`.
Consent is the platform's task: every row of a results file is read as consented.
"""


def bundle_readme(study: StudyKey, out: Path) -> str:
    smoke = ("\n**TEST STUDY: the images come from models with random weights. Do not run it with "
             "people.**\n" if study.smoke_run else "")
    return f"""# ccub study {study.study_id}: {markdown_text(study.culture_name)}
{smoke}
{len(study.items)} items, {len(study.models)} images each, questions: {', '.join(study.questions)}.

- Send participants `survey.html` only. It works offline in any current browser, loads nothing
  from the network, and saves the answers to a file the participant sends back to you.
- Keep `study.json` private: it is the key from the shuffled slots to the models, and the only way
  to read the responses. Rebuilding the bundle from the same runs and `[study] seed` gives the same key.
- Crowd-sourcing platforms: see `crowd/README.md`.
- Put the returned files (`.json` or `.csv`) in one folder and run
  `ccub study analyze {out} responses/`.
"""
