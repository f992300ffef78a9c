"""The hash index kept beside a clean dataset (`<out>/index/`), so new submissions are checked
against it (`ccub validate --against DIR`) without decoding a single accepted image again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccub.imaging.phash import VARIANTS, WORDS

INDEX_NAME = "ccub-index.npz"
INDEX_VERSION = 1


class AcceptedIndexError(ValueError):
    """The --against folder has no usable index; the message says how to make one."""


@dataclass
class AcceptedIndex:
    root: Path  # the clean/ folder; `images` are relative to it
    images: list[str]
    sha256: list[str]
    pixel_keys: list[str]
    decode_scales: list[int]
    cultures: list[str]
    categories: list[str | None]
    splits: list[str]
    pixels: list[int]
    hashes: np.ndarray  # (n, 8, 4) uint64
    embeddings: np.ndarray | None = None  # (n, d) float32, L2-normalised
    clip_model: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: Path) -> None:
        meta = {"version": INDEX_VERSION, "images": self.images, "sha256": self.sha256,
                "pixel_keys": self.pixel_keys, "decode_scales": self.decode_scales,
                "cultures": self.cultures, "categories": self.categories,
                "splits": self.splits, "pixels": self.pixels, "clip_model": self.clip_model}
        arrays = {"hashes": self.hashes, "meta": np.frombuffer(
            json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, folder: Path) -> AcceptedIndex:
        """The index of `folder`: a validate --out folder (or the index/ folder inside it)."""
        index_dir = folder / "index" if (folder / "index" / INDEX_NAME).is_file() else folder
        path, root = index_dir / INDEX_NAME, index_dir.parent / "clean"
        if not path.is_file():
            raise AcceptedIndexError(f"{folder}: no {INDEX_NAME}; give the --out folder of an earlier "
                              "`ccub validate` run (ccub 0.1 or newer writes the index)")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                hashes = data["hashes"]
                embeddings = data.get("embeddings")
        except (OSError, ValueError, KeyError) as exc:
            raise AcceptedIndexError(f"{path}: unreadable ({exc}); rerun `ccub validate` on the "
                              "accepted submissions to rebuild it") from exc
        if meta.get("version") != INDEX_VERSION or hashes.shape[1:] != (VARIANTS, WORDS):
            raise AcceptedIndexError(f"{path}: index version {meta.get('version')} is not "
                              f"{INDEX_VERSION}; rerun `ccub validate` to rebuild it")
        return cls(root=root, images=meta["images"], sha256=meta["sha256"],
                   pixel_keys=meta["pixel_keys"], decode_scales=meta["decode_scales"],
                   cultures=meta["cultures"], categories=meta["categories"],
                   splits=meta["splits"], pixels=meta["pixels"], hashes=hashes,
                   embeddings=embeddings, clip_model=meta.get("clip_model"))
