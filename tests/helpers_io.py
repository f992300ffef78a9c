"""Shared helpers for the reader, CLI and hostile-input tests: images, trees, hashes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import ccub.pipeline
from ccub.config import load_config
from ccub.pipeline import Options, Result
from ccub.report import write_reports

SIZE = (600, 520)
GOOD = {"license": "CC-BY-4.0", "creator": "Test Photographer", "contributor": "c1",
        "consent": "n/a"}


def photo(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A photo-like RGB image: smooth colour gradients, blobs and sensor noise, unique per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(0.005, 0.03, 3)
        img[..., c] = 110 + 60 * np.sin(a * x + p * 7) * np.cos(b * y + c)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(30, 120)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-70, 70, 3)
    img += rng.normal(0, 9, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    buf = io.BytesIO()
    photo(seed, size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_image(path: Path, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "PNG" or (fmt is None and path.suffix.lower() == ".png"):
        photo(seed).save(path, "PNG")
    else:
        path.write_bytes(jpeg_bytes(seed))
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(file_name: str, caption: str, **extra: Any) -> dict[str, Any]:
    return {"file_name": file_name, "text": caption, **GOOD, **extra}


def imagefolder(folder: Path, items: list[tuple[str, str]], seed: int = 0,
                fmt: str = "jsonl", **extra: Any) -> list[dict[str, Any]]:
    """Images plus metadata.<fmt> in `folder`; items are (file name, caption)."""
    rows = []
    for i, (name, caption) in enumerate(items):
        write_image(folder / name, seed + i)
        rows.append(row(name, caption, **extra))
    (write_jsonl if fmt == "jsonl" else write_csv)(folder / f"metadata.{fmt}", rows)
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def run(root: Path, out: Path, flags: dict[str, str] | None = None,
        include_review: bool = False, workers: int = 1, cfg=None) -> Result:
    """The pipeline with the real report writer, as `ccub validate` runs it."""
    # Looked up at call time, so the hostile tests' input guard sees every run.
    return ccub.pipeline.validate(Options(root=root, out=out, flags=flags or {}, include_review=include_review,
                            workers=workers),
                    cfg or load_config(cwd=root), None, write_reports)


def by_image(result: Result):
    return {o.record.image: o for o in result.outcomes}


def checks_of(result: Result, record_key: str | None = None) -> set[str]:
    return {i.finding.check for i in result.issues
            if record_key is None or i.finding.record == record_key}


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """path -> (sha256 or link target, mtime_ns, mode) for everything under root."""
    state = {}
    for current, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(current) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                state[rel] = ("-> " + os.readlink(path), st.st_mtime_ns, st.st_mode)
            elif stat.S_ISREG(st.st_mode):
                state[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns,
                              st.st_mode)
            else:  # a folder, FIFO, socket or device: never opened
                state[rel] = ("other", st.st_mtime_ns, st.st_mode)
    return state


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}
