"""`ccub prepare`: fill in what SCoFT needs and communities do not provide.

Reads a SCoFT imagefolder (`finetune.dataset`), writes generic captions into ``blip_text``
(`finetune.captions`) and K self-generated negatives per image into ``negatives/generated/``
and ``negative_imgpath`` (`finetune.negatives`), and records how every caption and negative
was made in ``prepare.json`` at the dataset root, so a rerun reproduces them.

Safe to interrupt at any point. Work is committed batch by batch in this order: image files
(each written to a temporary name, then renamed), then ``prepare.json``, then the metadata
files (rewritten atomically). A row therefore never names a file that is missing or half
written; an interrupted batch leaves at most unreferenced files, which the next run
overwrites. Rows already done are skipped unless ``force``; one failing image is reported
and the others go on.

A dataset that `ccub validate` published (``DATA/clean/<culture>/``) is prepared while holding
DATA's lock (`ccub.outdir.exclusive`), and its data cards are refreshed afterwards, even after
a failure or an interruption: they state the sha256 and the columns of every metadata file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import posixpath
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from ccub import __version__
from ccub.config import Config, Prepare, setting_problems
from ccub.files import atomic_write
from ccub.imaging.decode import open_image
from ccub.models import ModelRef, resolve
from ccub.outdir import JOURNAL, exclusive
from ccub.recordfile import RecordError, RecordFile
from data_cards import refresh_cards
from finetune.captions import STRATEGIES
from finetune.dataset import (
    GENERIC,
    NEGATIVES,
    Dataset,
    DatasetError,
    MetadataFile,
    generic_caption,
    listed_negatives,
    missing_for_scoft,
    read_dataset,
    write_metadata,
)
from finetune.negatives import SCHEDULERS, generation_size, negative_seed
from finetune.runtime import DTYPES

MANIFEST = "prepare.json"
GENERATED = "negatives/generated"
SOURCE = "blip_source"  # column saying how each generic caption was made
STAGES = ("captions", "negatives")

ProgressFn = Callable[[str, int, int], None]
Row = tuple[MetadataFile, dict[str, Any]]


class PrepareError(ValueError):
    """Options or a dataset that `prepare` cannot work with; the message says what to change."""


@dataclass
class Options:
    root: Path
    culture: str | None = None
    tiny: str | None = None  # a `finetune.tiny` preset replacing all four models
    stages: tuple[str, ...] = STAGES
    force: bool = False
    device: str | None = None


@dataclass
class Failure:
    image: str
    stage: str
    message: str


@dataclass
class Result:
    root: Path
    culture: str | None
    settings: Prepare
    counts: Counter = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    smoke_run: bool = False
    cards: list[Path] = field(default_factory=list)  # data cards refreshed (a published dataset)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def check_settings(s: Prepare) -> None:
    problems = setting_problems(
        s, {"captions": STRATEGIES, "scheduler": SCHEDULERS, "dtype": DTYPES},
        {"negatives_per_image": 0, "steps": 1, "resolution": 1, "batch_size": 1, "caption_batch_size": 1,
         "caption_max_tokens": 1})
    if problems:
        raise PrepareError("[prepare] settings: " + "; ".join(problems))


# --------------------------------------------------------------------------- the manifest


@dataclass
class PrepareManifest(RecordFile):
    """`prepare.json`: how every generic caption and negative was made, by image key."""

    SCHEMA: ClassVar[str] = "ccub.prepare"
    VERSION: ClassVar[int] = 1
    UNVERSIONED_IS_V1: ClassVar[bool] = True
    FIX: ClassVar[str] = "move it away and rerun `ccub prepare --force`"

    captions: dict[str, dict[str, Any]] = field(default_factory=dict)
    negatives: dict[str, dict[str, Any]] = field(default_factory=dict)
    tool: str = "ccub prepare"
    ccub_version: str = __version__
    updated: str = ""
    smoke_run: bool = False  # some caption or negative was made with random weights
    models: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def made_with_random_weights(self) -> bool:
        return any(e.get("random_weights") for e in (*self.captions.values(), *self.negatives.values()))


def read_manifest(root: Path) -> PrepareManifest:
    """The dataset's manifest; an empty one when it has none yet."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return PrepareManifest()
    try:
        return PrepareManifest.read(path)
    except RecordError as exc:
        raise PrepareError(str(exc)) from exc


class Committer:
    """Writes the manifest and then the metadata, each atomically, after every batch."""

    def __init__(self, dataset: Dataset, manifest: PrepareManifest, settings: Prepare, models: dict[str, str]):
        self.dataset, self.manifest, self.settings, self.models = dataset, manifest, settings, models

    def __call__(self) -> None:
        m = self.manifest
        m.ccub_version, m.updated = __version__, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        m.smoke_run, m.models, m.settings = m.made_with_random_weights(), self.models, dataclasses.asdict(self.settings)
        m.write(self.dataset.root / MANIFEST)
        write_metadata(self.dataset)


# --------------------------------------------------------------------------- images


def open_rgb(path: Path, max_pixels: int):
    """The image upright and in RGB; only JPEG, PNG and WebP, with the pixel cap checked
    before decoding (limits.max_megapixels)."""
    from PIL import ImageOps

    with open_image(path, max_pixels) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


def upright_size(path: Path, max_pixels: int) -> tuple[int, int]:
    with open_image(path, max_pixels) as im:
        rotated = im.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
        return (im.height, im.width) if rotated else (im.width, im.height)


def batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def each_or_alone(batch: list, work: Callable[[list], None], fail: Callable[[Any, Exception], None]) -> None:
    """Run `work` on the whole batch; if it raises, once per item, so one bad image fails alone.

    `work` must change nothing visible before it has computed everything it needs.
    """
    try:
        work(batch)
    except Exception as exc:  # noqa: BLE001 - retried item by item, where the error is reported
        if len(batch) == 1:
            fail(batch[0], exc)
            return
        for item in batch:
            try:
                work([item])
            except Exception as exc:  # noqa: BLE001 - one image's failure must not stop the rest
                fail(item, exc)


# --------------------------------------------------------------------------- models and settings


@dataclass(frozen=True)
class Models:
    captioner: ModelRef
    depth: ModelRef
    controlnet: ModelRef
    base: ModelRef


def choose_models(settings: Prepare, tiny: str | None) -> Models:
    """The configured models, or all four of a tiny random preset."""
    if tiny:
        from finetune.tiny import tiny_models

        t = tiny_models(tiny)
        return Models(*(ModelRef(f"{tiny}:{part}", str(getattr(t, part)), random_weights=True, local=True)
                        for part in ("captioner", "depth", "controlnet", "base")))
    return Models(resolve(settings.captioner, "captioning model"), resolve(settings.depth_model, "depth model"),
                  resolve(settings.controlnet, "ControlNet"), resolve(settings.base, "base model"))


def smoke_settings(settings: Prepare, tiny: str, keep: set[str]) -> Prepare:
    """Settings for a tiny preset: its native resolution and few steps, unless set in `keep`."""
    from finetune.tiny import TINY_PRESETS

    changes = {"resolution": TINY_PRESETS[tiny]["resolution"], "steps": 4}
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if k not in keep})


def apply_flags(settings: Prepare, given: dict[str, Any], base: str | None) -> tuple[Prepare, str | None]:
    """The settings with the command line's values (None: not given) and the tiny preset that
    `base` names, if it names one: then the preset's smoke settings, except where a flag says."""
    from finetune.tiny import is_tiny

    given = {k: v for k, v in given.items() if v is not None}
    tiny = base if is_tiny(base) else None
    if base and not tiny:
        given["base"] = base
    settings = dataclasses.replace(settings, **given)
    return (smoke_settings(settings, tiny, set(given)) if tiny else settings), tiny


def prepare_if_missing(opts: Options, cfg: Config, progress: ProgressFn | None = None,
                       announce: Callable[[str], None] = print) -> Result | None:
    """Run `prepare` when rows lack a generic caption or negatives (after telling `announce` what
    is missing); None when nothing is. `finetune` calls it before training."""
    missing = missing_for_scoft(read_dataset(opts.root))
    if not any(missing.values()):
        return None
    what = ", ".join(f"{n} rows without {k}" for k, n in missing.items() if n)
    announce(f"{opts.root}: {what}; running `ccub prepare` first.")
    if opts.tiny:
        cfg = copy.copy(cfg)  # the caller's config stays as it was
        cfg.prepare = smoke_settings(cfg.prepare, opts.tiny, set())
    return prepare(opts, cfg, progress)


def needs_preparing(root: Path) -> bool:
    """Would `prepare_if_missing` run `prepare` on the dataset at `root`? False when it cannot be read
    (the run reports that itself)."""
    try:
        return any(missing_for_scoft(read_dataset(root)).values())
    except DatasetError:
        return False


def culture_of(root: Path, cfg: Config) -> str | None:
    """`dataset_culture` of the dataset at `root`; None when it cannot be read."""
    try:
        return dataset_culture(read_dataset(root), cfg)
    except DatasetError:
        return None


def dataset_culture(dataset: Dataset, cfg: Config) -> str | None:
    """The culture most rows name (slug, name or ISO code), if the vocabulary knows it."""
    from ccub.vocab import Vocabulary

    vocab = Vocabulary(cfg)
    named = Counter(vocab.culture(row.get("culture")) for _, row in dataset.rows()
                    if isinstance(row.get("culture"), str))
    named.pop(None, None)
    return named.most_common(1)[0][0] if named else None


def _lexicon(cfg: Config, culture: str | None):
    from finetune.lexicon import Lexicon

    return Lexicon.for_culture(cfg.cultures[culture]) if culture in cfg.cultures else None


# --------------------------------------------------------------------------- the run


def published_in(root: Path) -> Path | None:
    """The `ccub validate --out` folder when `root` is one of its DATA/clean/<culture>/ datasets."""
    clean = Path(root).resolve().parent
    data = clean.parent
    if clean.name == "clean" and ((data / "reports").is_dir() or (data / JOURNAL).is_file()):
        return data
    return None


def prepare(opts: Options, cfg: Config, progress: ProgressFn | None = None) -> Result:
    """Fill in generic captions and negatives of the dataset at ``opts.root`` (see the module doc).

    Raises `ccub.outdir.OutputBusy`/`OutputError` when a published dataset's folder is held by
    another run or cannot be written, `data_cards.facts.CardError` when its cards cannot be."""
    data = published_in(opts.root)
    if data is None:
        return _prepare(opts, cfg, progress)
    with exclusive(data, command="ccub prepare"):
        try:
            result = _prepare(opts, cfg, progress)
        finally:
            cards = refresh_cards(data)  # every batch committed so far changed metadata.jsonl
    result.cards = cards.paths
    return result


def _prepare(opts: Options, cfg: Config, progress: ProgressFn | None) -> Result:
    settings = cfg.prepare
    check_settings(settings)
    unknown = sorted(set(opts.stages) - set(STAGES))
    if unknown:
        raise PrepareError(f"unknown stage(s) {', '.join(unknown)}; expected {' / '.join(STAGES)}")
    dataset = read_dataset(opts.root)
    culture = opts.culture or dataset_culture(dataset, cfg)
    if culture is not None and culture not in cfg.cultures:
        raise PrepareError(f"unknown culture {culture!r}; `ccub checks --vocabulary` lists them, and "
                           f"[cultures.{culture}] in ccub.toml adds one")
    lexicon = _lexicon(cfg, culture)
    if "captions" in opts.stages and settings.captions == "strip" and lexicon is None:
        raise PrepareError(f"{dataset.root}: --captions strip needs the culture (its lexicon); pass --culture")
    manifest = read_manifest(dataset.root)
    result = Result(dataset.root, culture, settings)
    commit = Committer(dataset, manifest, settings, result.models)
    report = progress or (lambda stage, done, total: None)
    _preflight(settings, opts.stages, opts.tiny)
    models = choose_models(settings, opts.tiny)
    from finetune.runtime import pick_device, pick_dtype

    device = pick_device(opts.device)
    dtype = pick_dtype(settings.dtype, device)
    max_pixels = int(cfg.limits.max_megapixels * 1_000_000)
    if "captions" in opts.stages:
        stage = CaptionStage(dataset, manifest, settings, lexicon, models.captioner, result, max_pixels)
        stage.run(opts.force, device, dtype, commit, report)
    if "negatives" in opts.stages and settings.negatives_per_image:
        stage = NegativeStage(dataset, manifest, settings, models, result, max_pixels)
        stage.run(opts.force, device, dtype, commit, report)
    commit()
    result.smoke_run = manifest.made_with_random_weights()
    return result


def _preflight(settings: Prepare, stages: tuple[str, ...], tiny: str | None) -> None:
    """Check every model a stage will need before the first stage starts (hours may separate them);
    one error names all that are missing."""
    from ccub.models import require_all
    from finetune.needs import prepare_needs

    if not tiny:  # tiny models are built on first use
        require_all(prepare_needs(settings, stages))


def _free_memory() -> None:
    """Return freed model memory to the GPU: captioner and generator need not fit side by side."""
    import gc

    gc.collect()
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclass
class CaptionStage:
    dataset: Dataset
    manifest: PrepareManifest
    settings: Prepare
    lexicon: Any
    model: ModelRef
    result: Result
    max_pixels: int

    def run(self, force: bool, device: str, dtype: Any, commit: Callable[[], None], report: ProgressFn) -> None:
        rows = list(self.dataset.rows())
        for _, row in rows:  # captions that came with the dataset say so
            if generic_caption(row) is not None and not row.get(SOURCE):
                row[SOURCE] = "dataset"
        strategy = self.settings.captions
        todo = [(mf, row) for mf, row in rows
                if generic_caption(row) is None or (force and strategy != "column")]
        self.result.counts["captions kept"] = len(rows) - len(todo)
        if not todo:
            return
        if strategy == "column":
            for mf, row in todo:
                self.fail((mf, row), ValueError(f"no '{GENERIC}' in this row; choose --captions caption or strip"))
            return
        report("captions", 0, len(todo))
        if strategy == "strip":
            for item in todo:
                self.apply(item, self.lexicon.strip(item[1]["text"]), f"strip:{self.lexicon_name()}", None)
            commit()
            report("captions", len(todo), len(todo))
            return
        from ccub.progress import phase
        from finetune.captions import Captioner

        with phase(report, f"loading the captioner {self.model.describe()}"):
            captioner = Captioner(self.model, device, dtype, self.settings.caption_prompt,
                                  self.settings.caption_max_tokens)
        self.result.models["captioner"] = self.model.describe()
        done = 0
        for batch in batches(todo, self.settings.caption_batch_size):
            each_or_alone(batch, lambda b, c=captioner: self.caption(b, c), self.fail)
            commit()
            done += len(batch)
            report("captions", done, len(todo))
        del captioner
        _free_memory()

    def lexicon_name(self) -> str:
        return f"{self.result.culture} lexicon"

    def caption(self, batch: list[Row], captioner: Any) -> None:
        images = [open_rgb(self.dataset.image_path(mf, row), self.max_pixels) for mf, row in batch]
        texts = captioner(images)
        if self.settings.strip_model_captions and self.lexicon is not None:
            texts = [self.lexicon.strip(t) if t else t for t in texts]
        if not all(texts):
            raise ValueError("the captioning model returned an empty caption")
        for item, text in zip(batch, texts, strict=True):
            self.apply(item, text, f"caption:{self.model.name}", self.model)

    def apply(self, item: Row, text: str, source: str, model: ModelRef | None) -> None:
        mf, row = item
        row[GENERIC], row[SOURCE] = text, source
        self.manifest.captions[self.dataset.image_key(mf, row)] = {
            "strategy": self.settings.captions, "source": source,
            "prompt": self.settings.caption_prompt if model else None,
            "stripped": bool(self.lexicon) and (model is None or self.settings.strip_model_captions),
            "random_weights": bool(model and model.random_weights)}
        self.result.counts["captions written"] += 1

    def fail(self, item: Row, exc: Exception) -> None:
        mf, row = item
        self.result.failures.append(Failure(posixpath.join(mf.split, row["file_name"]), "caption", _say(exc)))


def _say(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no details'}"


def is_generated(path: str) -> bool:
    return PurePosixPath(path).parts[:2] == tuple(PurePosixPath(GENERATED).parts)


@dataclass
class NegativeStage:
    dataset: Dataset
    manifest: PrepareManifest
    settings: Prepare
    models: Models
    result: Result
    max_pixels: int

    def todo(self, force: bool) -> list[Row]:
        """Rows needing negatives; drops listed files that are gone, keeps the community's own."""
        todo = []
        for mf, row in self.dataset.rows():
            where = f"{mf.path} (file_name {row['file_name']}): {NEGATIVES}"
            listed = listed_negatives(row)
            present = [p for p in listed if self.dataset.negative_path(p, where).is_file()]
            damaged = len(present) < len(listed)
            if damaged:
                self.result.counts["missing negatives dropped"] += len(listed) - len(present)
            community = [p for p in present if not is_generated(p)]
            generated = [p for p in present if is_generated(p)]
            row[NEGATIVES] = present
            if community and not generated:
                self.result.counts["negatives kept (community)"] += 1
            elif generated and not (force or damaged):  # a damaged set is redrawn whole, same seeds
                self.result.counts["negatives kept (generated)"] += 1
            else:
                row[NEGATIVES] = community
                todo.append((mf, row))
        return todo

    def run(self, force: bool, device: str, dtype: Any, commit: Callable[[], None], report: ProgressFn) -> None:
        todo = self.todo(force)
        if not todo:
            return
        from ccub.progress import phase
        from finetune.negatives import ControlNetGenerator, DepthEstimator

        report("negatives", 0, len(todo))
        with phase(report, f"loading the depth model {self.models.depth.describe()}"):
            depth = DepthEstimator(self.models.depth, device, dtype)
        with phase(report, f"loading ControlNet {self.models.controlnet.describe()} on {self.models.base.describe()}"):
            generator = ControlNetGenerator(self.models.base, self.models.controlnet, self.settings.scheduler,
                                            device, dtype)
        self.result.models.update({"depth model": self.models.depth.describe(),
                                   "ControlNet": self.models.controlnet.describe(),
                                   "base model": self.models.base.describe()})
        groups: dict[tuple[int, int], list[Row]] = {}
        for item in todo:
            try:
                size = upright_size(self.dataset.image_path(*item), self.max_pixels)
            except Exception as exc:  # noqa: BLE001 - an unreadable image fails alone
                self.fail(item, exc)
                continue
            key = generation_size(*size, self.settings.resolution, generator.vae_factor)
            groups.setdefault(key, []).append(item)
        done = 0
        for size, items in sorted(groups.items()):
            for batch in batches(items, self.settings.batch_size):
                each_or_alone(batch, lambda b, size=size, d=depth, g=generator: self.generate(b, size, d, g),
                              self.fail)
                commit()
                done += len(batch)
                report("negatives", done, len(todo))
        del depth, generator
        _free_memory()

    def generate(self, batch: list[Row], size: tuple[int, int], depth: Any, generator: Any) -> None:
        s, k_count = self.settings, self.settings.negatives_per_image
        images = [open_rgb(self.dataset.image_path(mf, row), self.max_pixels) for mf, row in batch]
        controls = depth(images, size)
        keys = [self.dataset.image_key(mf, row) for mf, row in batch]
        seeds = [[negative_seed(s.seed, key, k) for k in range(k_count)] for key in keys]
        prompts = [row["text"] for _, row in batch]
        outputs = generator([p for p in prompts for _ in range(k_count)],
                            [c for c in controls for _ in range(k_count)],
                            [seed for row_seeds in seeds for seed in row_seeds], size,
                            steps=s.steps, guidance=s.guidance_scale, control_scale=s.controlnet_scale,
                            negative_prompt=s.negative_prompt)
        paths = [[negative_name(key, k) for k in range(k_count)] for key in keys]
        for image, path in zip(outputs, (p for row_paths in paths for p in row_paths), strict=True):
            atomic_write(self.dataset.root / path, lambda tmp, image=image: image.save(tmp, format="PNG"))
        # Only now, with every file in place, do the rows name them.
        random = any(m.random_weights for m in (self.models.base, self.models.controlnet, self.models.depth))
        for (_, row), key, row_paths, row_seeds, prompt in zip(batch, keys, paths, seeds, prompts, strict=True):
            row[NEGATIVES] = [*listed_negatives(row), *row_paths]
            self.manifest.negatives[key] = {
                "files": row_paths, "seeds": row_seeds, "prompt": prompt, "size": list(size),
                "base": self.models.base.name, "controlnet": self.models.controlnet.name,
                "depth_model": self.models.depth.name, "scheduler": s.scheduler, "steps": s.steps,
                "guidance_scale": s.guidance_scale, "controlnet_scale": s.controlnet_scale,
                "negative_prompt": s.negative_prompt, "dtype": s.dtype, "random_weights": random}
            self.result.counts["negatives written"] += len(row_paths)
            self.result.counts["images given negatives"] += 1

    def fail(self, item: Row, exc: Exception) -> None:
        mf, row = item
        self.result.failures.append(Failure(posixpath.join(mf.split, row["file_name"]), "negatives", _say(exc)))


def negative_name(image_key: str, k: int) -> str:
    """Where negative `k` of an image goes, relative to the dataset root (unique per image)."""
    return f"{GENERATED}/{posixpath.splitext(image_key)[0]}_{k}.png"
