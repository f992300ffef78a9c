"""Where a diffusers or transformers model comes from: a local folder, the Hugging Face cache,
or (when online) the hub; and the one error users see when it is nowhere to be found.

A model is named the way users name it everywhere else: a hub id
(``CompVis/stable-diffusion-v1-4``) or a local folder written by ``save_pretrained``. Folders
built by `finetune.tiny` carry a marker file saying their weights are random, and every
loader reports that, so a smoke run is never mistaken for a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ccub.models.common import ModelUnavailable, hf_cache_dir, hub_reachable, random_marker
from ccub.models.needs import Need

T = TypeVar("T")


@dataclass(frozen=True)
class ModelRef:
    """A model as asked for (`name`) and what ``from_pretrained`` gets (`source`)."""

    name: str
    source: str  # a local folder, or the hub id (read from the cache unless online)
    random_weights: bool = False
    local: bool = False

    def describe(self) -> str:
        if self.random_weights:
            return f"{self.name} (RANDOM WEIGHTS: a smoke-run model, its outputs mean nothing)"
        return self.name


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def resolve(name: str, role: str) -> ModelRef:
    """A `ModelRef` for `name` (hub id or local folder); `role` names it in errors ("depth model")."""
    name = name.strip()
    if not name:
        raise ValueError(f"no {role} given")
    folder = Path(name).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        return ModelRef(name, str(folder), random_marker(folder) is not None, local=True)
    if _looks_like_path(name) or folder.exists():
        raise ModelUnavailable(f"{role} {name}: no such folder; pass a folder written by save_pretrained "
                               f"or a Hugging Face hub id")
    return ModelRef(name, name)


def _hint(ref: ModelRef) -> str:
    return (f"on a machine with network access run `hf download {ref.name}` and copy "
            f"~/.cache/huggingface here (or set HF_HOME to a copy), or pass a local folder "
            f"written by save_pretrained")


def load_pretrained(ref: ModelRef, role: str, loader: Callable[..., T], **kwargs: Any) -> T:
    """``loader(ref.source, **kwargs)``, from the local cache unless the hub can be reached.

    Missing files become `ModelUnavailable` naming the model, its role and how to get it, instead
    of the libraries' connection errors (or their minute of retries without network).
    """
    if not ref.local and not hub_reachable():
        kwargs["local_files_only"] = True
    try:
        return loader(ref.source, **kwargs)
    except OSError as exc:  # what transformers, diffusers and huggingface_hub raise for missing files
        where = f"folder {ref.source}" if ref.local else "the local Hugging Face cache"
        raise ModelUnavailable(f"{role} {ref.name} could not be loaded from {where} "
                               f"({type(exc).__name__}: {_first_line(exc)}); {_hint(ref)}") from exc


def check_pretrained(model: ModelRef | str, role: str, index_file: str = "config.json", *,
                     network: bool = True, cache_dir: str | Path | None = None) -> Need:
    """Whether `model` (a `ModelRef`, or a name to `resolve`) can be loaded, as a `Need`.

    A local folder needs `index_file`; a hub model needs `index_file` in the Hugging Face cache
    (`cache_dir`, default the library's) unless `network` is allowed and the hub can be reached now.
    Never downloads anything.
    """
    if isinstance(model, str):
        try:
            model = resolve(model, role)
        except (ModelUnavailable, ValueError) as exc:
            return Need(role, model, str(exc))
    ref = model
    if ref.local:
        if not (Path(ref.source) / index_file).is_file():
            return Need(role, ref.name, f"{role} {ref.name}: {ref.source} has no {index_file}; pass a folder "
                                        f"written by save_pretrained")
        return Need(role, ref.name, note="random weights (tiny)" if ref.random_weights else "folder")
    if network and hub_reachable():
        return Need(role, ref.name, note="hub reachable")
    if hub_cached(ref.source, index_file, cache_dir):
        return Need(role, ref.name, note="cache")
    return Need(role, ref.name, f"{role} {ref.name} is not in the local Hugging Face cache and the hub cannot be "
                                f"reached; {_hint(ref)}", command=f"hf download {ref.name}",
                copy="~/.cache/huggingface")


def hub_cached(repo_id: str, filename: str, cache_dir: str | Path | None = None) -> bool:
    """Is `filename` of hub model `repo_id` in the Hugging Face cache? Never touches the network;
    works without huggingface_hub installed (by the cache's layout)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        folder = Path(cache_dir or hf_cache_dir()) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
        return any((snapshot / filename).is_file() for snapshot in folder.glob("*"))
    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=None if cache_dir is None else str(cache_dir))
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str) and Path(found).is_file()


def ensure_available(ref: ModelRef, role: str, index_file: str = "config.json") -> None:
    """Fail before any work starts when `ref` cannot be loaded: a local folder without
    `index_file`, or a hub model that is not cached while the hub cannot be reached."""
    need = check_pretrained(ref, role, index_file)
    if not need.ok:
        raise ModelUnavailable(need.problem)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
