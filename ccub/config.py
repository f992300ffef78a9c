"""The one configuration: every threshold and vocabulary, loadable from `ccub.toml`.

Defaults live in dataclasses, one per section: a family of checks keeps its own section beside
its checks (`ccub/checks/images.py` holds [geometry] and [quality], ...); the sections every
part reads ([limits], [export]) and the stages' own ([prepare], [benchmark], [fetch], [study])
are below; cultures and categories are in `vocabulary.toml`. A user's `ccub.toml` overrides any
of them; unknown keys are errors so a typo never silently leaves a default in force.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from ccub.checks.captions import Captions
from ccub.checks.duplicates import Duplicates
from ccub.checks.images import Geometry, Quality
from ccub.checks.labels import Labels
from ccub.checks.rights import Rights

CONFIG_FILE_NAME = "ccub.toml"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and key."""


@dataclass
class Limits:
    # Files over these caps are rejected before they are decoded (decompression bombs,
    # accidental RAW/video uploads). The pixel cap is checked on the header, below Pillow's
    # own bomb limit (89.5 MP), and bounds the memory of every decoder ccub runs.
    max_file_mb: float = 50.0
    max_megapixels: float = 50.0
    min_file_bytes: int = 1024
    max_caption_chars: int = 2000
    # Metadata, manifests, caption files and response files are untrusted too: a file over
    # max_metadata_mb is not read; a longer line, a deeper JSON value or a larger CSV cell is a
    # finding on its row and the rest of the file is still read.
    max_metadata_mb: float = 200.0
    max_line_bytes: int = 1_048_576
    max_json_depth: int = 32
    max_field_chars: int = 65_536
    # An .xlsx manifest is a zip and a Parquet one is compressed: what they declare they unpack
    # to (a Parquet file's cells counted at 8 bytes each at least) is capped before they are read.
    max_unpacked_mb: float = 500.0


@dataclass
class Export:
    jpeg_quality: int = 95
    webp_quality: int = 95
    thumbnail_size: int = 160


@dataclass
class Prepare:
    """`ccub prepare`: what SCoFT needs beyond the community's own pairs.

    Models are hub ids (read from the local Hugging Face cache) or local paths; `ccub prepare
    --base tiny` swaps all four for tiny random ones.
    """

    # Generic captions (`blip_text`): "caption" runs an image-to-text model, "strip" removes
    # the culture's lexicon terms from the community caption, "column" keeps the dataset's own.
    captions: str = "caption"
    captioner: str = "Salesforce/blip-image-captioning-large"
    caption_prompt: str = ""  # a text prefix some captioners continue ("a photography of")
    caption_max_tokens: int = 30
    caption_batch_size: int = 16
    # A captioner may still name the culture ("a korean woman in a hanbok"): strip its output
    # with the same lexicon, since the generic caption must carry no cultural context.
    strip_model_captions: bool = True
    # Negatives (`negative_imgpath`): the base model's own rendering of each community
    # caption, laid out like the community image by a depth ControlNet.
    negatives_per_image: int = 3
    base: str = "CompVis/stable-diffusion-v1-4"
    controlnet: str = "lllyasviel/control_v11f1p_sd15_depth"
    depth_model: str = "Intel/dpt-hybrid-midas"
    scheduler: str = "dpm-solver"  # dpm-solver, unipc, ddim, or "model" (the base model's own)
    steps: int = 30
    guidance_scale: float = 7.5
    controlnet_scale: float = 1.0
    negative_prompt: str = ""
    # Shorter side of a negative in pixels (aspect ratio kept, sides rounded to multiples of 8).
    resolution: int = 512
    seed: int = 1024
    batch_size: int = 4  # community images per generation batch (each gives negatives_per_image)
    dtype: str = "auto"  # auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32


@dataclass
class Benchmark:
    """`ccub benchmark`: generation settings (the study's), the CLIP model, and the statistics."""

    seeds: int = 4  # images per prompt and model
    scheduler: str = "dpm-solver"
    steps: int = 50
    guidance: float = 4.5
    lora_scale: float = 1.0
    resolution: int = 0  # 0: the run's training resolution
    batch_size: int = 8
    dtype: str = "auto"
    clip: str = "ViT-B-32:openai"  # MODEL:PRETRAINED, a local checkpoint, or tiny
    logit_scale: float = 100.0  # zero-shot identification softmax temperature (CLIP's)
    copy_threshold: float = 0.95  # CLIP cosine at which a generated image counts as a copy of a training image
    lpips: bool = True  # LPIPS diversity and memorisation (needs the VGG16 weights)
    kid_subset_size: int = 1000
    bootstrap: int = 10000
    confidence: float = 0.95
    correction: str = "holm"  # holm or bh, across the whole table


@dataclass
class Fetch:
    """`ccub fetch`: downloading a URL manifest politely (per host) and resumably."""

    contact: str = ""  # an e-mail in the User-Agent; hosts such as Wikimedia require one
    info_url: str = "https://arxiv.org/abs/2401.08053"  # the "+URL" of the User-Agent
    workers: int = 8  # downloads in flight over all hosts
    per_host_concurrency: int = 2
    per_host_rate: float = 1.0  # request starts per second per host; 0: no limit
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds without a byte arriving
    retries: int = 4  # further attempts after timeouts, connection errors, 429 and 5xx
    backoff_base: float = 1.0  # seconds; doubles per attempt, with up to 100% jitter
    backoff_max: float = 60.0
    retry_after_max: float = 120.0  # a longer Retry-After is capped to this many seconds
    max_mb: float = 50.0  # enforced while streaming
    max_redirects: int = 5
    # Manifests come from strangers: loopback, private, link-local, multicast and reserved
    # addresses are refused (checked on the resolved address of every request and redirect)
    # unless this is true (tests, intranet mirrors).
    allow_private: bool = False
    total_timeout: float = 300.0  # seconds one download may take, all attempts together
    min_bytes_per_second: float = 1024.0  # a slower transfer is abandoned (after rate_grace)
    rate_grace: float = 10.0  # seconds a transfer may be slow before min_bytes_per_second applies


@dataclass
class Study:
    """`ccub study`: the survey bundle made from benchmark images, and the analysis of the rankings."""

    seed: int = 0  # shuffles the models within each item and picks the items; recorded in study.json
    items: int = 0  # (prompt, seed) items in the bundle, drawn at random; 0: every pair the benchmark drew
    per_participant: int = 0  # items each participant ranks, drawn at random in the survey; 0: all
    questions: list[str] = field(default_factory=lambda: ["alignment", "representation", "stereotypes",
                                                            "offensiveness"])
    image_size: int = 512  # longest side of the survey's JPEGs, in pixels
    jpeg_quality: int = 90
    bootstrap: int = 2000  # resamples: participants for Bradley-Terry, prompts for Kendall's tau
    confidence: float = 0.95
    prior: float = 0.5  # pseudo-wins each way per pair of models: keeps Bradley-Terry finite
    # A participant who appears in two response files with different answers: keep the
    # "latest" (by saved_at), the "first", or "drop" the participant; each conflict is reported.
    resubmission: str = "latest"


@dataclass
class Culture:
    name: str
    adjective: str
    iso3: str
    iso2: str
    languages: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    # The lexicon of `ccub prepare --captions strip`, which turns a community caption into a
    # generic one. Place names are removed with the preposition that introduces them ("in
    # Seoul"); `generic` maps a culture-specific term to generic wording ("" drops it).
    places: list[str] = field(default_factory=list)
    generic: dict[str, str] = field(default_factory=dict)


@dataclass
class Category:
    name: str
    aliases: list[str] = field(default_factory=list)
    people: bool = False


@dataclass
class Config:
    limits: Limits = field(default_factory=Limits)
    geometry: Geometry = field(default_factory=Geometry)
    quality: Quality = field(default_factory=Quality)
    captions: Captions = field(default_factory=Captions)
    rights: Rights = field(default_factory=Rights)
    labels: Labels = field(default_factory=Labels)
    duplicates: Duplicates = field(default_factory=Duplicates)
    export: Export = field(default_factory=Export)
    prepare: Prepare = field(default_factory=Prepare)
    benchmark: Benchmark = field(default_factory=Benchmark)
    fetch: Fetch = field(default_factory=Fetch)
    study: Study = field(default_factory=Study)
    # check id -> severity, overriding the check's default (like a linter's rule config).
    severity: dict[str, str] = field(default_factory=dict)
    # check ids that do not run at all.
    disable: list[str] = field(default_factory=list)
    cultures: dict[str, Culture] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    # SCoFT's hyperparameters (`finetune.config.ScoftConfig`), kept as given: the fine-tuning
    # package owns and checks them, and the curation install has no use for them.
    scoft: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in defaults"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def lookup(self, dotted: str) -> Any:
        """Value of a threshold by its dotted name, e.g. 'geometry.min_short_side_error'."""
        section, _, key = dotted.partition(".")
        return getattr(getattr(self, section), key)


_SECTIONS = {f.name: f.type for f in fields(Config)}
# The sections holding one dataclass of settings each ([limits] ... [study]).
THRESHOLD_SECTIONS = tuple(name for name, value in vars(Config()).items() if dataclasses.is_dataclass(value))


def setting_problems(settings: Any, choices: dict[str, Any], minimums: dict[str, int]) -> list[str]:
    """One line per field of `settings` outside its allowed `choices` or below its minimum."""
    from ccub.vocab import did_you_mean

    problems = [f"{name} = {getattr(settings, name)!r}{did_you_mean(str(getattr(settings, name)), allowed)}: "
                f"expected one of {', '.join(allowed)}"
                for name, allowed in choices.items() if getattr(settings, name) not in allowed]
    problems += [f"{name} = {getattr(settings, name)}: must be at least {least}"
                 for name, least in minimums.items() if getattr(settings, name) < least]
    return problems


def type_problem(value: Any, expected: Any) -> str | None:
    """None when `value` (as TOML gives it) fits the type hint `expected`, else the type it needed.
    Integers fit float fields (TOML writes 1 for 1.0); booleans fit only bool fields."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return None if any(type_problem(value, a) is None for a in args) else _type_name(expected)
    if expected is type(None):
        return None if value is None else "none"
    if expected is Any:
        return None
    if expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif origin is list:
        ok = isinstance(value, list) and all(type_problem(v, args[0]) is None for v in value)
    elif origin is dict:
        ok = isinstance(value, dict) and all(type_problem(k, args[0]) is None and type_problem(v, args[1]) is None
                                             for k, v in value.items())
    else:
        ok = isinstance(value, expected)
    return None if ok else _type_name(expected)


def _type_name(expected: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if expected in names:
        return names[expected]
    return str(expected).replace("typing.", "")


def build_dataclass(cls: type, data: dict[str, Any], where: str) -> Any:
    """`cls(**data)`, with unknown keys and values of the wrong type reported as ConfigError naming
    `where` (the file and section), the key, the type expected and the value found."""
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        needed = type_problem(value, hints[key])
        if needed is not None:
            raise ConfigError(f"{where}: {key} = {value!r} ({type(value).__name__}); expected {needed}")
        # Keep float thresholds floats so reports print them alike.
        if isinstance(value, int) and not isinstance(value, bool) and hints[key] is float:
            value = float(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _merge_section(current: Any, data: dict[str, Any], where: str) -> Any:
    merged = dataclasses.asdict(current) | data
    return build_dataclass(type(current), merged, where)


def _vocab_tables(cfg: Config, data: dict[str, Any], where: str) -> None:
    for kind in ("cultures", "categories"):
        for key, table in data.get(kind, {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: [{kind}.{key}] = {table!r}; expected a table")
    for slug, table in data.get("cultures", {}).items():
        base = cfg.cultures.get(slug)
        merged = (dataclasses.asdict(base) if base else {}) | table
        if base and isinstance(table.get("generic"), dict):
            # A user adds or corrects lexicon terms without restating the shipped ones.
            merged["generic"] = base.generic | table["generic"]
        cfg.cultures[slug] = build_dataclass(Culture, merged, f"{where} [cultures.{slug}]")
    for code, table in data.get("categories", {}).items():
        code = code.upper()
        base = cfg.categories.get(code)
        merged = (dataclasses.asdict(base) if base else {}) | table
        cfg.categories[code] = build_dataclass(Category, merged, f"{where} [categories.{code}]")


def _apply(cfg: Config, data: dict[str, Any], where: str) -> None:
    unknown = sorted(set(data) - set(_SECTIONS) - {"source"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(unknown)}; "
            f"valid sections: {', '.join(k for k in _SECTIONS if k != 'source')}"
        )
    hints = typing.get_type_hints(Config)
    for name, value in data.items():
        # A section is a table; severity, disable and the vocabularies have their own shapes.
        expected = dict if name in THRESHOLD_SECTIONS or name in ("cultures", "categories", "scoft") \
            else hints[name]
        needed = type_problem(value, expected)
        if needed is not None:
            shown = f"[{name}]" if expected is dict else name
            raise ConfigError(f"{where}: {shown} = {value!r} ({type(value).__name__}); expected "
                              f"{'a table' if expected is dict else needed}")
    for name in THRESHOLD_SECTIONS:
        if name in data:
            setattr(cfg, name, _merge_section(getattr(cfg, name), data[name], f"{where} [{name}]"))
    if "severity" in data:
        cfg.severity.update(data["severity"])
    if "disable" in data:
        cfg.disable = list(data["disable"])
    if "scoft" in data:
        cfg.scoft = dict(data["scoft"])
    _vocab_tables(cfg, data, where)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc


def load_config(path: Path | None = None, cwd: Path | None = None) -> Config:
    """Defaults, then `path` (or `./ccub.toml` when present)."""
    cfg = Config()
    vocab = tomllib.loads(resources.files("ccub").joinpath("vocabulary.toml").read_text("utf-8"))
    _vocab_tables(cfg, vocab, "vocabulary.toml")
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_FILE_NAME
        path = candidate if candidate.is_file() else None
    if path is not None:
        _apply(cfg, _read_toml(path), str(path))
        cfg.source = str(path)
    from ccub.checks.registry import validate_overrides  # registry imports config

    validate_overrides(cfg)
    return cfg
