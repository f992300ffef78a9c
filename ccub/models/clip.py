"""Model plumbing shared by all of ccub: which model, where its weights are, how to load it.

Nothing here imports torch or open_clip at module level: `ccub validate` imports this module
without the semantic check and must stay light. The heavy imports live inside the functions.

A CLIP model is named by a spec string, parsed by `parse_clip`:

* ``MODEL:PRETRAINED``: an open_clip architecture and a pretrained tag from
  ``open_clip.list_pretrained()`` (``ViT-B-32:laion2b_s34b_b79k``) or a local checkpoint file
  (``ViT-B-32:/models/clip.safetensors``);
* ``hf-hub:ORG/REPO``: an open_clip repository on the Hugging Face hub (from the local cache
  when offline);
* a path to a directory holding ``open_clip_config.json`` and the weights (the layout of
  open_clip repositories on the hub), loaded by open_clip's own ``local-dir:`` support;
  ``local-dir:PATH`` means the same; or a path to one checkpoint file with the folder's
  ``open_clip_config.json`` beside it;
* ``tiny`` (or another name in `TINY_CLIP_PRESETS`): a tiny randomly initialised model, built
  into the cache directory, saved and loaded back through open_clip's own loading path. Its
  embeddings mean nothing; it exists so tests and dry runs work without any download, and
  `ClipSpec.random_weights` says so to whoever reports results.

Weights never come from the network silently failing: a model that is neither cached nor
downloadable raises `ModelUnavailable`, whose message says how to get it. With
``HF_HUB_OFFLINE=1`` the cache is consulted without any network attempt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccub.files import atomic_write
from ccub.models.common import (
    RANDOM_MARKER,
    ModelUnavailable,
    _hub_endpoint,
    _reachable,
    hub_offline,
    load_presets,
    random_marker,
)
from ccub.models.needs import Need

CONFIG_NAME = "open_clip_config.json"
# What open_clip's `local-dir:` loading takes from a folder; with none of them it would build the
# model with random weights and only log a warning, so ccub refuses such a folder first.
LOCAL_DIR_WEIGHTS = (".safetensors", ".bin", ".pth")
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".npz")
TINY_CHECKPOINT = "open_clip_model.safetensors"
# Tiny open_clip architectures (name -> open_clip model config), from ccub/tiny_clip/*.toml.
TINY_CLIP_PRESETS = load_presets("ccub", "tiny_clip")


@dataclass(frozen=True)
class ClipSpec:
    """A resolved CLIP choice.

    ``model`` is an open_clip architecture name (built in or in `TINY_CLIP_PRESETS`), or
    ``hf-hub:ORG/REPO``, or ``local-dir:DIR`` (config read from ``DIR/open_clip_config.json``).
    ``pretrained`` is an open_clip pretrained tag or a local checkpoint path, or None when the
    model string itself says where the weights are (hf-hub).
    ``random_weights`` is True for models built by `build_tiny_clip`: results computed with
    them are meaningless and must be reported as such.
    """

    model: str
    pretrained: str | None
    random_weights: bool = False

    def describe(self) -> str:
        """One line for logs and reports; says loudly when the weights are random."""
        name = self.model if self.pretrained is None else f"{self.model}:{self.pretrained}"
        if self.model in TINY_CLIP_PRESETS:
            name = self.model
        if self.random_weights:
            return f"{name} (RANDOM WEIGHTS: a test model, similarities mean nothing)"
        return name


# --------------------------------------------------------------------------- errors


def _get_it_hint(model: str, tag: str) -> str:
    return (f"download it on a machine with network access "
            f"({_get_it_command(model, tag)}) and copy ~/.cache/huggingface (and ~/.cache/clip), "
            f"or pass a local checkpoint path")


def _get_it_command(model: str, tag: str | None = None) -> str:
    """The one shell command that puts open_clip model `model` (with pretrained `tag`) in the caches."""
    pretrained = "" if tag is None else f", pretrained=\"{tag}\""
    return f"python -c 'import open_clip; open_clip.create_model_and_transforms(\"{model}\"{pretrained})'"


def _unavailable(model: str, tag: str, why: str) -> ModelUnavailable:
    return ModelUnavailable(f"open_clip model {model}:{tag} {why}; {_get_it_hint(model, tag)}")


# --------------------------------------------------------------------------- open_clip config registry

_registry_dir: Path | None = None


def _config_name(cfg: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    return f"ccub-local-{digest}"


def register_clip_config(name: str, cfg: dict[str, Any]) -> str:
    """Make model config `cfg` known to open_clip as architecture `name`; return `name`.

    Uses the public ``open_clip.add_model_config`` with a JSON file. open_clip re-reads every
    registered file on each addition, so the files live for the whole process (in a private
    temporary directory); a changed config for the same name gets a new file, added last, which
    wins.
    """
    import open_clip

    if open_clip.get_model_config(name) == cfg:
        return name
    global _registry_dir
    if _registry_dir is None:
        import atexit
        import shutil

        _registry_dir = Path(tempfile.mkdtemp(prefix="ccub-open_clip-configs-"))
        atexit.register(shutil.rmtree, _registry_dir, True)
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    path = _registry_dir / digest / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    open_clip.add_model_config(path)
    if open_clip.get_model_config(name) != cfg:  # pragma: no cover - open_clip changed its registry
        raise RuntimeError(f"open_clip did not register model config {name!r} from {path}")
    return name


# --------------------------------------------------------------------------- tiny models


def _preset(name: str) -> dict[str, Any]:
    try:
        return deepcopy(TINY_CLIP_PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown tiny CLIP preset {name!r}; known: {', '.join(TINY_CLIP_PRESETS)}") from None


def _marker(name: str, seed: int) -> dict[str, Any]:
    return {"random_weights": True, "preset": name, "seed": seed,
            "config_sha256": hashlib.sha256(json.dumps(TINY_CLIP_PRESETS[name], sort_keys=True)
                                             .encode()).hexdigest()}


def build_tiny_clip(name: str, directory: Path, seed: int = 0) -> Path:
    """Create tiny preset `name` with random weights (seeded) and save it into `directory`.

    Writes ``open_clip_model.safetensors`` and ``open_clip_config.json`` (open_clip's hub layout)
    and the `RANDOM_MARKER` file, and returns the checkpoint path.
    Loading goes back through ``open_clip.create_model_and_transforms`` like any real checkpoint.
    Files are written atomically, so concurrent builders (test workers) do not see half a file.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = _preset(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    register_clip_config(name, cfg)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with _quiet_random_init_warning():
            model = open_clip.create_model(name, pretrained=None, device="cpu")
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    checkpoint = directory / TINY_CHECKPOINT
    atomic_write(checkpoint, lambda tmp: save_file(state, tmp, metadata={"format": "pt", "ccub": "random"}))
    config = {"model_cfg": cfg, "preprocess_cfg": dict(model.visual.preprocess_cfg)}
    atomic_write(directory / CONFIG_NAME,
                  lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2), encoding="utf-8"))
    atomic_write(directory / RANDOM_MARKER,
                  lambda tmp: Path(tmp).write_text(json.dumps(_marker(name, seed), indent=2), encoding="utf-8"))
    return checkpoint


class _quiet_random_init_warning:
    """Drop open_clip's "initialized randomly" root-logger warning while building on purpose."""

    @staticmethod
    def filter(record) -> bool:
        return "initialized randomly" not in record.getMessage()

    def __enter__(self):
        import logging

        logging.getLogger().addFilter(self.filter)

    def __exit__(self, *exc) -> None:
        import logging

        logging.getLogger().removeFilter(self.filter)


def _tiny_is_current(directory: Path, name: str) -> bool:
    if not ((directory / CONFIG_NAME).is_file() and (directory / TINY_CHECKPOINT).is_file()):
        return False
    marker = random_marker(directory) or {}
    return marker.get("config_sha256") == _marker(name, 0)["config_sha256"]


# --------------------------------------------------------------------------- spec parsing


def _read_local_config(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot read open_clip config {config_path}: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg", config), dict):
        raise ModelUnavailable(f"{config_path} is not an open_clip config (expected a 'model_cfg' object)")
    return config


def _local_spec(path: Path) -> ClipSpec:
    """A folder in open_clip's hub layout (open_clip's own `local-dir:` loads it), or one checkpoint
    file with the folder's open_clip_config.json beside it."""
    path = path.expanduser().resolve()
    if path.is_dir():
        directory, checkpoint = path, None
        if not any(p.is_file() and p.suffix in LOCAL_DIR_WEIGHTS for p in directory.iterdir()):
            raise ModelUnavailable(f"no weights ({', '.join('*' + s for s in LOCAL_DIR_WEIGHTS)}) in {directory}")
    elif path.is_file():
        directory, checkpoint = path.parent, str(path)
    else:
        raise ModelUnavailable(f"local CLIP checkpoint {path} does not exist")
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise ModelUnavailable(
            f"{path} has no {CONFIG_NAME} beside it, so its architecture is unknown; "
            f"pass MODEL:{path} with the open_clip architecture name (e.g. ViT-B-32:{path})")
    _read_local_config(config_path)
    return ClipSpec(f"local-dir:{directory}", checkpoint, random_marker(directory) is not None)


def parse_clip(spec: str, cache_dir: Path) -> ClipSpec:
    """Parse a CLIP spec string (see the module docstring) into a `ClipSpec`.

    ``tiny`` presets are built into ``cache_dir/<name>`` when absent (random weights). For
    ``MODEL:TAG`` the architecture and tag are checked against open_clip's lists, and with
    ``HF_HUB_OFFLINE=1`` the weights must already be cached; otherwise `ModelUnavailable`.
    Malformed strings raise ValueError.
    """
    spec = spec.strip()
    if not spec:
        raise ValueError("empty CLIP model spec")
    if spec in TINY_CLIP_PRESETS:
        directory = Path(cache_dir).expanduser() / spec
        if not _tiny_is_current(directory, spec):
            build_tiny_clip(spec, directory)
        return ClipSpec(spec, str((directory / TINY_CHECKPOINT).resolve()), True)
    if spec.startswith("hf-hub:"):
        if not spec[len("hf-hub:"):].strip("/"):
            raise ValueError("empty repository after 'hf-hub:'")
        return ClipSpec(spec, None, False)
    if spec.startswith("local-dir:"):
        return _local_spec(Path(spec[len("local-dir:"):]))
    if Path(spec).expanduser().exists():
        return _local_spec(Path(spec))
    if ":" not in spec:
        if "/" in spec or os.sep in spec or spec.endswith(CHECKPOINT_SUFFIXES):
            raise ModelUnavailable(f"local CLIP checkpoint {spec} does not exist")
        raise ValueError(f"CLIP model spec {spec!r}: expected MODEL:PRETRAINED (e.g. ViT-B-32:laion2b_s34b_b79k), "
                         f"hf-hub:ORG/REPO, a local checkpoint path, or one of: {', '.join(TINY_CLIP_PRESETS)}")
    model, pretrained = (part.strip() for part in spec.split(":", 1))
    if not model or not pretrained:
        raise ValueError(f"CLIP model spec {spec!r}: both MODEL and PRETRAINED are needed in MODEL:PRETRAINED")
    local = Path(pretrained).expanduser()
    if local.is_file():
        pretrained = str(local.resolve())
    clip = ClipSpec(model, pretrained, False)
    _check_architecture(model, pretrained)
    if not local.is_file():
        _resolve_tag(model, pretrained, download=False, must_exist=hub_offline())
    return clip


# --------------------------------------------------------------------------- weight resolution


def _check_architecture(model: str, tag: str) -> None:
    import open_clip

    if model in TINY_CLIP_PRESETS:
        register_clip_config(model, _preset(model))
    if open_clip.get_model_config(model.replace("/", "-")) is None:
        raise ModelUnavailable(f"open_clip has no architecture {model!r} (from {model}:{tag}); "
                               f"see open_clip.list_models()")


def _cached_hf_file(repo_id: str, filenames: list[str], cache_dir: str | Path | None = None) -> str | None:
    """The first of `filenames` already in the local Hugging Face cache (`cache_dir`, default the
    library's); never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=None if cache_dir is None else str(cache_dir))
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _hf_candidates(filename: str) -> list[str]:
    """open_clip's own order: a safetensors alternative first, then the named file."""
    from open_clip.pretrained import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    candidates = []
    if filename == HF_WEIGHTS_NAME:
        candidates.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.append(filename[:-4] + ".safetensors")
    return [*candidates, filename]


def _resolve_tag(model: str, tag: str, download: bool, must_exist: bool = True,
                 cache_dir: str | Path | None = None) -> tuple[str | None, dict]:
    """Local checkpoint path and pretrained config for open_clip tag `tag` of `model`.

    Looks in the local caches first, without network. When absent: with `download` (and not
    offline) fetches through open_clip's own downloader; otherwise raises ModelUnavailable if
    `must_exist`, else returns (None, cfg).
    """
    from open_clip import pretrained as oc_pretrained

    name = model.replace("/", "-")
    cfg = oc_pretrained.get_pretrained_cfg(name, tag)
    if not cfg:
        known = oc_pretrained.list_pretrained_tags_by_model(name)
        raise ModelUnavailable(f"open_clip model {model}:{tag}: {tag!r} is neither a known open_clip pretrained "
                               f"tag for {model} (known: {', '.join(known) or 'none'}) nor an existing "
                               f"checkpoint file; pass a known tag or a local checkpoint path")
    if cfg.get("file"):
        return cfg["file"], cfg
    hf_hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    found = None
    if hf_hub:
        repo_id, filename = os.path.split(hf_hub)
        found = _cached_hf_file(repo_id, _hf_candidates(filename or oc_pretrained.HF_WEIGHTS_NAME), cache_dir)
    if found is None and url:
        legacy = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        found = str(legacy) if legacy.is_file() else None
    if found is not None:
        return found, cfg
    offline = hub_offline()
    source = _hub_endpoint() if hf_hub and oc_pretrained.has_hf_hub() else url
    if download and not offline and _reachable(source):
        try:
            found = oc_pretrained.download_pretrained(cfg)
        except Exception as exc:
            raise _unavailable(model, tag, f"could not be downloaded ({type(exc).__name__}: {exc})") from exc
        if found:
            return found, cfg
    if must_exist or download:
        why = "is not in the local cache and HF_HUB_OFFLINE is set" if offline else \
            f"is not in the local cache and there is no network (cannot reach {source})"
        raise _unavailable(model, tag, why)
    return None, cfg


def _hf_repo_hint(repo_id: str) -> str:
    return (f"download it on a machine with network access (python -c 'import open_clip; "
            f"open_clip.create_model_and_transforms(\"hf-hub:{repo_id}\")') and copy ~/.cache/huggingface, "
            f"or pass a local checkpoint path")


def _resolve_hf_repo(repo_id: str) -> tuple[dict[str, Any], str]:
    """(open_clip_config.json contents, weights path) of hub repo `repo_id`, from the cache or downloaded."""
    from open_clip.pretrained import HF_WEIGHTS_NAME, download_pretrained_from_hf

    config_path = _cached_hf_file(repo_id, [CONFIG_NAME])
    weights = _cached_hf_file(repo_id, _hf_candidates(HF_WEIGHTS_NAME))
    hint = _hf_repo_hint(repo_id)
    if config_path is None or weights is None:
        if hub_offline() or not _reachable(_hub_endpoint()):
            why = "HF_HUB_OFFLINE is set" if hub_offline() else f"there is no network (cannot reach {_hub_endpoint()})"
            raise ModelUnavailable(f"open_clip model hf-hub:{repo_id} is not in the local cache and {why}; {hint}")
        try:
            config_path = config_path or download_pretrained_from_hf(repo_id, filename=CONFIG_NAME)
            weights = weights or download_pretrained_from_hf(repo_id)
        except Exception as exc:
            raise ModelUnavailable(f"open_clip model hf-hub:{repo_id} is not in the local cache and could not "
                                   f"be downloaded ({type(exc).__name__}: {exc}); {hint}") from exc
    return _read_local_config(Path(config_path)), weights


def check_clip(spec: str, cache_dir: Path, role: str = "CLIP model", *, network: bool = True,
               hf_cache: str | Path | None = None) -> Need:
    """Whether CLIP spec `spec` can be loaded, as a `Need`, without building or loading anything.

    Tiny presets count as present (built on first use). Hub weights must be in the Hugging Face
    cache (`hf_cache`, default the library's) unless `network` is allowed and their host answers.
    """
    spec = spec.strip()
    if spec in TINY_CLIP_PRESETS:
        return Need(role, spec, note=f"random weights (tiny), built on first use in {cache_dir}")
    try:
        if spec.startswith("hf-hub:"):
            return _check_hf_repo(spec, role, network, hf_cache)
        if spec.startswith("local-dir:") or Path(spec).expanduser().exists():
            _local_spec(Path(spec.removeprefix("local-dir:")))
            return Need(role, spec, note="local checkpoint")
        if ":" not in spec:
            parse_clip(spec, cache_dir)  # raises the spec's own error
        model, tag = (part.strip() for part in spec.split(":", 1))
        try:
            import open_clip  # noqa: F401
        except ImportError as exc:
            return Need(role, spec, f"{role} {spec} cannot be checked: open_clip is not installed "
                                    f"({exc.name} is missing); pip install -e '.[models]'",
                        command=_get_it_command(model, tag), copy="~/.cache/huggingface")
        _check_architecture(model, tag)
        if Path(tag).expanduser().is_file():
            return Need(role, spec, note="local checkpoint")
        found, cfg = _resolve_tag(model, tag, download=False, must_exist=False, cache_dir=hf_cache)
    except (ModelUnavailable, ValueError) as exc:
        return Need(role, spec, str(exc))
    if found is not None:
        return Need(role, spec, note="cache")
    from open_clip import pretrained as oc_pretrained

    source = _hub_endpoint() if cfg.get("hf_hub") and oc_pretrained.has_hf_hub() else cfg.get("url", "")
    if network and not hub_offline() and _reachable(source):
        return Need(role, spec, note="downloadable now")
    why = "is not in the local cache and HF_HUB_OFFLINE is set" if hub_offline() else \
        f"is not in the local cache and there is no network (cannot reach {source})" if network else \
        "is not in the local cache"
    legacy = cfg.get("url") and not cfg.get("hf_hub")  # open_clip keeps url downloads in ~/.cache/clip
    return Need(role, spec, f"{role}: {_unavailable(model, tag, why)}", command=_get_it_command(model, tag),
                copy="~/.cache/huggingface" + (" and ~/.cache/clip" if legacy else ""))


def _check_hf_repo(spec: str, role: str, network: bool, hf_cache: str | Path | None) -> Need:
    repo_id = spec[len("hf-hub:"):].strip("/")
    if not repo_id:
        raise ValueError("empty repository after 'hf-hub:'")
    weights = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if _cached_hf_file(repo_id, [CONFIG_NAME], hf_cache) and _cached_hf_file(repo_id, weights, hf_cache):
        return Need(role, spec, note="cache")
    if network and not hub_offline() and _reachable(_hub_endpoint()):
        return Need(role, spec, note="downloadable now")
    return Need(role, spec, f"{role} {spec} is not in the local Hugging Face cache; {_hf_repo_hint(repo_id)}",
                command=f"hf download {repo_id}", copy="~/.cache/huggingface")


def _preprocess_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
            "resize_mode": "image_resize_mode"}
    return {arg: cfg[key] for key, arg in keys.items() if cfg.get(key) is not None}


def _is_hub_error(exc: BaseException) -> bool:
    while exc is not None:
        module = type(exc).__module__ or ""
        if module.startswith(("huggingface_hub", "requests", "httpx", "urllib3")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def load_clip(spec: ClipSpec, device: str = "cpu"):
    """Load `spec` and return ``(model, preprocess)``: eval mode, no gradients, on `device`.

    `preprocess` is open_clip's evaluation transform (PIL image -> tensor). Every path ends in
    ``open_clip.create_model_and_transforms(name, pretrained=<local checkpoint file>)``: weights
    are resolved beforehand (cache first; download only when online), so open_clip itself never
    goes to the network, and anything missing raises `ModelUnavailable` at once.
    """
    import open_clip

    kwargs: dict[str, Any] = {}
    if spec.model.startswith("local-dir:") and spec.pretrained is None:
        model, _, preprocess = open_clip.create_model_and_transforms(spec.model, device=device)  # open_clip's own
        model.eval()
        model.requires_grad_(False)
        return model, preprocess
    if spec.model.startswith(("hf-hub:", "local-dir:")):
        if spec.model.startswith("hf-hub:"):
            config, checkpoint = _resolve_hf_repo(spec.model[len("hf-hub:"):].strip("/"))
        else:  # one checkpoint file of the folder
            config = _read_local_config(Path(spec.model[len("local-dir:"):]) / CONFIG_NAME)
            checkpoint = spec.pretrained
        model_cfg = config.get("model_cfg", config)
        name = register_clip_config(_config_name(model_cfg), model_cfg)
        kwargs.update(_preprocess_kwargs(config.get("preprocess_cfg", {})))
    else:
        name = spec.model
        if not spec.pretrained:
            raise ValueError(f"{spec.model}: no pretrained weights given (MODEL:PRETRAINED)")
        _check_architecture(spec.model, spec.pretrained)
        if Path(spec.pretrained).expanduser().is_file():
            checkpoint = str(Path(spec.pretrained).expanduser())
        else:
            checkpoint, tag_cfg = _resolve_tag(spec.model, spec.pretrained, download=True)
            kwargs.update(_preprocess_kwargs(tag_cfg))
            if tag_cfg.get("quick_gelu"):  # the weights were trained with QuickGELU: build it so
                kwargs["force_quick_gelu"] = True
    if not Path(checkpoint).is_file():
        raise ModelUnavailable(f"CLIP checkpoint {checkpoint} for {spec.describe()} does not exist")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=str(checkpoint), device=device, **kwargs)
    except Exception as exc:
        if _is_hub_error(exc):  # e.g. an hf text tower whose tokenizer/config is not cached
            raise ModelUnavailable(f"open_clip model {spec.describe()} needs files that are not in the "
                                   f"local cache ({type(exc).__name__}: {exc})") from exc
        raise
    model.eval()
    model.requires_grad_(False)
    return model, preprocess
