"""What every model of ccub shares: the error users see when weights are missing, where tiny models
are built, whether the Hugging Face hub may be asked, the one random-weights marker, and tiny
presets kept as data files."""

from __future__ import annotations

import functools
import json
import os
import tomllib
from copy import deepcopy
from importlib import resources
from pathlib import Path
from typing import Any

# The one marker of random weights: a file in the model's folder (or the folder above it), written
# by every builder of tiny models (`build_tiny_clip`, `finetune.tiny`) and read by `random_marker`.
RANDOM_MARKER = "ccub_random_weights.json"


class ModelUnavailable(RuntimeError):
    """The requested model's weights are neither on this machine nor downloadable now."""


def random_marker(folder: Path) -> dict[str, Any] | None:
    """The random-weights marker of the model in `folder` (or the folder above it), else None."""
    for candidate in (Path(folder) / RANDOM_MARKER, Path(folder).parent / RANDOM_MARKER):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {"random_weights": True}
    return None


def load_presets(package: str, folder: str) -> dict[str, dict[str, Any]]:
    """name -> config of every `<name>.toml` in `package`/`folder` (the way open_clip keeps its
    model configs as files). A preset may say `extends = "other"`: its tables are merged over the
    other's, key by key."""
    files = {f.name[:-5]: tomllib.loads(f.read_text("utf-8"))
             for f in resources.files(package).joinpath(folder).iterdir() if f.name.endswith(".toml")}

    def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = deepcopy(base)
        for key, value in over.items():
            out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    def resolved(name: str) -> dict[str, Any]:
        data = dict(files[name])
        parent = data.pop("extends", None)
        return merged(resolved(parent), data) if parent else data

    return {name: resolved(name) for name in sorted(files)}


def model_cache() -> Path:
    """Where tiny random models are built (CCUB_CACHE, else ~/.cache/ccub)."""
    return Path(os.environ.get("CCUB_CACHE", Path.home() / ".cache" / "ccub"))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment says now (HF_HUB_CACHE, else HF_HOME/hub, else
    XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub): huggingface_hub's own rule,
    read at call time instead of at its import."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE).

    Read from the environment at call time, since huggingface_hub reads it once at import.
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable() -> bool:
    """May the Hugging Face hub be asked for files now (not offline, and its host answers)?

    The probe's answer is kept for the process: one run loads many model parts, and without
    network each probe could wait for its timeout.
    """
    return not hub_offline() and _reachable_once(_hub_endpoint())


@functools.lru_cache(maxsize=8)
def _reachable_once(url: str) -> bool:
    return _reachable(url)


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Can a TCP connection to `url`'s host be opened? A quick probe before any download, because
    huggingface_hub retries an unreachable host with backoff for most of a minute.

    Behind a proxy (HTTP(S)_PROXY set) the direct probe says nothing, so it answers True.
    """
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                           "ALL_PROXY", "all_proxy")):
        return True
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
