"""Shared helpers for building small submissions in tmp_path and validating them."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Nothing in the tests may reach the network (language models, tokenizers).
os.environ["HF_HUB_OFFLINE"] = "1"
# Under pytest-xdist every worker is a process: torch's default of one thread per core would
# put cores x workers threads on the cores, and small tiny-model ops slow down many times over.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import ccub.pipeline  # noqa: E402
from ccub.config import Config, load_config  # noqa: E402
from ccub.pipeline import Options, Outcome, Result  # noqa: E402

DEFAULT_SIZE = (600, 520)


def photo(size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0) -> Image.Image:
    """Photo-like RGB content: a colour gradient, random shapes and mild noise.

    Bright enough, colourful, detailed and varied, so no quality, grayscale or
    low-information check fires on it.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = x / max(width - 1, 1), y / max(height - 1, 1)
    c = rng.uniform(40, 90, size=3)
    base = np.stack([60 + 140 * fx + c[0] * fy, 180 - 100 * fy + c[1] * fx,
                     90 + 60 * (fx + fy) / 2 + c[2]], axis=-1)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w = int(rng.integers(max(width // 20, 2), max(width // 4, 3)))
        h = int(rng.integers(max(height // 20, 2), max(height // 4, 3)))
        colour = tuple(int(v) for v in rng.integers(20, 235, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    pixels = np.asarray(im).astype(np.int16) + rng.integers(-12, 13, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_image(path: Path, size: tuple[int, int] = DEFAULT_SIZE, mode: str = "RGB", seed: int = 0,
               format: str | None = None, image: Image.Image | None = None, **save_kwargs: Any) -> Path:
    """Write a photo-like image (or `image`) to `path`; format from the suffix unless given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = image if image is not None else photo(size, seed)
    if im.mode != mode:
        im = im.convert(mode)
    fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[path.suffix.lower()]
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 90)
    im.save(path, fmt, **save_kwargs)
    return path


def _s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def rgb_icc_profile(description: str = "Display P3") -> bytes:
    """A minimal ICC v2 RGB display profile: Display P3 primaries (D50-adapted), gamma 2.2.

    Pillow can only build sRGB, LAB and XYZ profiles itself; this is a real, non-sRGB RGB
    profile that LittleCMS can convert from.
    """
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + _s15fixed16(x) + _s15fixed16(y) + _s15fixed16(z)

    text = description.encode("ascii") + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)), (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
            (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + bytes(4) + bytes([2, 0x10, 0, 0])
              + b"mntrRGB XYZ " + bytes(12) + b"acsp" + bytes(4 * 5 + 8)
              + _s15fixed16(0.9642) + _s15fixed16(1.0) + _s15fixed16(0.8249) + bytes(4 + 16 + 28))
    assert len(header) == 128
    return header + table + body


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One JSON value per line (strings are written as they are: for malformed lines)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


_CAPTION_WORDS = ("red", "green", "blue", "wooden", "clay", "golden", "small", "large", "round",
                  "painted", "woven", "carved", "bright", "quiet", "busy", "old")


def caption_for(i: int) -> str:
    """A distinct, harmless English caption for the i-th record."""
    a, b = _CAPTION_WORDS[i % len(_CAPTION_WORDS)], _CAPTION_WORDS[(i // len(_CAPTION_WORDS) + 3) % len(_CAPTION_WORDS)]
    return f"a {a} and {b} bowl of kimchi stew served on a table"


def row(file_name: str, i: int = 0, **fields: Any) -> dict[str, Any]:
    """A metadata row that passes every record check; `fields` override (None removes)."""
    values: dict[str, Any] = {
        "file_name": file_name,
        "text": caption_for(i),
        "license": "CC-BY-4.0",
        "creator": "Kim Minji",
        "contributor": "c1",
        "consent": "n/a",
    }
    values.update(fields)
    return {k: v for k, v in values.items() if v is not None}


def submission(root: Path, rows: list[dict[str, Any]], folder: str = "korea", images: bool = True,
               **image_kwargs: Any) -> Path:
    """An imagefolder submission `root/folder/metadata.jsonl`; writes a distinct image per row."""
    base = root / folder
    base.mkdir(parents=True, exist_ok=True)
    if images:
        for i, r in enumerate(rows):
            target = base / r["file_name"]
            if not target.exists():
                make_image(target, seed=i + 1, **image_kwargs)
    write_jsonl(base / "metadata.jsonl", rows)
    return base


def config(**sections: dict[str, Any]) -> Config:
    """Default config (no ccub.toml from the cwd) with attributes of sections overridden."""
    cfg = load_config(cwd=Path(__file__).parent)
    for section, values in sections.items():
        target = getattr(cfg, section)
        for key, value in values.items():
            setattr(target, key, value)
    return cfg


def run(root: Path, tmp_path: Path, cfg: Config | None = None, *, include_review: bool = False,
        flags: dict[str, str] | None = None, out: Path | None = None, **options: Any) -> Result:
    """Validate `root` into `tmp_path/out` with one worker (other Options as keywords)."""
    options = Options(root=Path(root), out=out or Path(tmp_path) / "out", flags=flags or {},
                      include_review=include_review, workers=1, **options)
    result = ccub.pipeline.validate(options, cfg or config())
    for item in result.outcomes:
        if item.output:
            assert_clean_export(options.out / item.output)
    return result


def assert_clean_export(path: Path) -> None:
    """Every exported image opens and carries no EXIF, ICC, XMP, comment or text chunk."""
    with Image.open(path) as im:
        im.load()
        assert not im.getexif(), f"{path}: EXIF left"
        for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"):
            assert not im.info.get(key), f"{path}: {key} left"
        assert not (getattr(im, "text", None) or {}), f"{path}: text chunks left"
        if im.format == "JPEG":
            assert {marker for marker, _ in im.applist} <= {"APP0", "APP14"}, f"{path}: {im.applist}"


def checks_for(result: Result, key: str | None) -> set[str]:
    """Check ids reported for the record `key` (None: file- and dataset-level findings)."""
    return {i.finding.check for i in result.issues if i.finding.record == key}


def issues_of(result: Result, check: str) -> list:
    return [i for i in result.issues if i.finding.check == check]


def outcome(result: Result, key: str) -> Outcome:
    matches = [o for o in result.outcomes if o.record.key == key]
    assert len(matches) == 1, f"{key}: {len(matches)} outcomes among {[o.record.key for o in result.outcomes]}"
    return matches[0]


def exported(result: Result, key: str) -> Path | None:
    found = outcome(result, key).output
    return result.options.out / found if found else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The submissions folder (the output goes to tmp_path/out, beside it)."""
    path = tmp_path / "subs"
    path.mkdir()
    return path
