"""CLIP image embeddings and cosine-similarity search for the semantic-duplicate check.

torch and open_clip are imported inside `embed_images` only, so importing this module (as
`ccub validate` does) stays light. The pair searches are plain numpy, done in blocks so memory
stays bounded (block x block float32 similarities at a time) however many images there are.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ccub.models import ClipSpec, load_clip

__all__ = ["embed_images", "embed_texts", "similar_between", "similar_pairs"]

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]

# float32 dot products of unit vectors land a few ulp off: an image against its exact copy can
# give 0.99999994. Similarities this close below the threshold still count, so threshold 1.0
# means "identical embedding".
TOLERANCE = 1e-6


@functools.lru_cache(maxsize=2)
def _model(spec: ClipSpec, device: str):
    return load_clip(spec, device=device)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_image(path: Path, preprocess):
    from ccub.imaging.decode import open_image

    try:
        # ccub's own small copies (semantic_size), so a modest pixel cap holds.
        with open_image(path, 16_000_000) as im:
            return preprocess(im.convert("RGB"))
    except Exception as exc:  # a decoding error names the file, not just PIL's internals
        raise OSError(f"cannot read image {path} for embedding: {exc}") from exc


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def embed_images(paths: list[Path], spec: ClipSpec, batch_size: int = 32, device: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """CLIP image embeddings of `paths`, one row per path: float32 (n, d), each row L2-normalised.

    Images are opened with PIL, converted to RGB and passed through open_clip's evaluation
    transform; decoding runs in a few threads while the model works on the previous batch.
    `device` defaults to cuda when available, else cpu. `progress(done, total)` is called after
    every batch. The loaded model is cached per (spec, device) for the process.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = device or _default_device()
    model, preprocess = _model(spec, device)
    paths = [Path(p) for p in paths]
    total = len(paths)
    if not total:
        return np.empty((0, _embed_dim(model, device)), dtype=np.float32)
    out: np.ndarray | None = None
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(8, os.cpu_count() or 1, batch_size))
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode():
        pending = None
        for batch in _batches(paths, batch_size):
            submitted = [pool.submit(_load_image, p, preprocess) for p in batch]
            if pending is not None:
                out, done = _encode(model, pending, out, done, total, device)
                if progress is not None:
                    progress(done, total)
            pending = [f.result() for f in submitted]
        out, done = _encode(model, pending, out, done, total, device)
        if progress is not None:
            progress(done, total)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out


def embed_texts(texts: list[str], spec: ClipSpec, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """CLIP text embeddings of `texts`: float32 (n, d), each row L2-normalised, with the model's own tokenizer."""
    import open_clip
    import torch

    device = device or _default_device()
    model, _ = _model(spec, device)
    tokenizer = open_clip.get_tokenizer(_architecture(spec))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start:start + batch_size])).to(device)
            rows.append(model.encode_text(tokens, normalize=True).float().cpu().numpy())
    if not rows:
        return np.empty((0, _embed_dim(model, device)), dtype=np.float32)
    return np.concatenate(rows).astype(np.float32)


def _architecture(spec: ClipSpec) -> str:
    """The name open_clip knows the spec's architecture by (local folders are registered by `load_clip`)."""
    if spec.model.startswith("local-dir:"):
        import json

        from ccub.models.clip import CONFIG_NAME, _config_name

        config = json.loads((Path(spec.model[len("local-dir:"):]) / CONFIG_NAME).read_text(encoding="utf-8"))
        return _config_name(config.get("model_cfg", config))
    return spec.model


def _embed_dim(model, device: str) -> int:
    dim = getattr(model.visual, "output_dim", None)
    if dim:
        return int(dim)
    import torch  # timm towers do not say: ask the model

    size = model.visual.preprocess_cfg.get("size", 224)
    height, width = (size, size) if isinstance(size, int) else size
    with torch.inference_mode():
        return int(model.encode_image(torch.zeros(1, 3, height, width, device=device)).shape[-1])


def _encode(model, tensors: list, out: np.ndarray | None, done: int, total: int, device: str):
    import torch

    batch = torch.stack(tensors).to(device, non_blocking=True)
    features = model.encode_image(batch, normalize=True).float().cpu().numpy()
    if out is None:
        out = np.empty((total, features.shape[1]), dtype=np.float32)
    out[done:done + len(tensors)] = features
    return out, done + len(tensors)


def _check(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) array, got shape {x.shape}")
    return x


def _pack(i: list[np.ndarray], j: list[np.ndarray], cos: list[np.ndarray]) -> Pairs:
    if not i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    ii, jj, cc = np.concatenate(i), np.concatenate(j), np.concatenate(cos)
    order = np.lexsort((jj, ii))
    return ii[order], jj[order], np.minimum(cc[order], 1.0)


def similar_pairs(embeddings: np.ndarray, threshold: float, block: int = 4096) -> Pairs:
    """All pairs ``i < j`` with ``cos(embeddings[i], embeddings[j]) >= threshold``.

    Rows are assumed L2-normalised (cosine = dot product); cosines within `TOLERANCE` below the
    threshold count (float32 rounding). Returns ``(i, j, cos)``: int64,
    int64, float32 arrays sorted by (i, j), cosines capped at 1.0. Only the upper triangle is
    computed, ``block`` rows against ``block`` rows at a time.
    """
    e = _check("embeddings", embeddings)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    n = len(e)
    found_i, found_j, found_c = [], [], []
    for a in range(0, n, block):
        rows = e[a:a + block]
        for b in range(a, n, block):
            sims = rows @ e[b:b + block].T
            hit = sims >= threshold - TOLERANCE
            if a == b:
                hit = np.triu(hit, k=1)
            r, c = np.nonzero(hit)
            if len(r):
                found_i.append(r + a)
                found_j.append(c + b)
                found_c.append(sims[r, c])
    return _pack(found_i, found_j, found_c)


def similar_between(new: np.ndarray, old: np.ndarray, threshold: float, block: int = 4096) -> Pairs:
    """All pairs ``(i_new, j_old)`` with ``cos(new[i_new], old[j_old]) >= threshold``.

    For matching a new submission against an existing collection. Rows L2-normalised; returns
    int64, int64, float32 arrays sorted by (i_new, j_old), computed in blocks like `similar_pairs`.
    """
    a, b = _check("new", new), _check("old", old)
    if len(a) and len(b) and a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: new has {a.shape[1]}, old has {b.shape[1]}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    found_i, found_j, found_c = [], [], []
    for s in range(0, len(a), block):
        rows = a[s:s + block]
        for t in range(0, len(b), block):
            sims = rows @ b[t:t + block].T
            r, c = np.nonzero(sims >= threshold - TOLERANCE)
            if len(r):
                found_i.append(r + s)
                found_j.append(c + t)
                found_c.append(sims[r, c])
    return _pack(found_i, found_j, found_c)
