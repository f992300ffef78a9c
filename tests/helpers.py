"""Helpers every test module shares: photo-like images, submissions, rows, validation runs and
what they found, snapshots of input trees. One API: a generator takes (seed, size)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

import ccub.pipeline
from ccub.config import Config, load_config
from ccub.pipeline import Options, Outcome, Result
from ccub.report import write_reports

DEFAULT_SIZE = (600, 520)


def photo(seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
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


def make_image(path: Path, seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE, mode: str = "RGB",
               format: str | None = None, image: Image.Image | None = None, **save_kwargs: Any) -> Path:
    """Write a photo-like image (or `image`) to `path`; format from the suffix unless given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = image if image is not None else photo(seed, size)
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


GOOD = {"license": "CC-BY-4.0", "creator": "Kim Minji", "contributor": "c1", "consent": "n/a"}


def row(file_name: str, i: int = 0, **fields: Any) -> dict[str, Any]:
    """A metadata row that passes every record check, captioned `caption_for(i)`; `fields` override
    (`text=` any caption, of any type; None removes a field)."""
    values: dict[str, Any] = {"file_name": file_name, "text": caption_for(i), **GOOD, **fields}
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


def run(root: Path, out: Path, cfg: Config | None = None, *, reports: bool = False, include_review: bool = False,
        flags: dict[str, str] | None = None, workers: int = 1, **options: Any) -> Result:
    """Validate `root` into `out` (other Options as keywords); `reports` writes them as `ccub validate`
    does. Every exported image is checked to be clean."""
    options = Options(root=Path(root), out=Path(out), flags=flags or {}, include_review=include_review,
                      workers=workers, **options)
    # Looked up at call time, so the hostile tests' input guard sees every run.
    result = ccub.pipeline.validate(options, cfg or config(), None, write_reports if reports else None)
    for item in result.outcomes:
        if item.output:
            assert_clean_export(options.out / item.output)
    return result


def assert_clean_export(path: Path) -> None:
    """Every exported image opens and carries no EXIF, ICC, XMP, comment or text chunk."""
    with Image.open(path, formats=("JPEG", "PNG", "WEBP")) as im:  # what export writes, nothing else
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


def noisy_photo(seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
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


def jpeg_bytes(seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    buf = io.BytesIO()
    noisy_photo(seed, size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_image(path: Path, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "PNG" or (fmt is None and path.suffix.lower() == ".png"):
        noisy_photo(seed).save(path, "PNG")
    else:
        path.write_bytes(jpeg_bytes(seed))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def imagefolder(folder: Path, items: list[tuple[str, str]], seed: int = 0,
                fmt: str = "jsonl", **extra: Any) -> list[dict[str, Any]]:
    """Images plus metadata.<fmt> in `folder`; items are (file name, caption)."""
    rows = []
    for i, (name, caption) in enumerate(items):
        write_image(folder / name, seed + i)
        rows.append(row(name, text=caption, **extra))
    (write_jsonl if fmt == "jsonl" else write_csv)(folder / f"metadata.{fmt}", rows)
    return rows


def by_image(result: Result):
    return {o.record.image: o for o in result.outcomes}


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


def all_checks(result: Result) -> set[str]:
    """Every check id the run reported, for any record or none."""
    return {i.finding.check for i in result.issues}


OUTPUTS_DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"


def documented_columns() -> dict[str, list[str]]:
    """CSV file name (as its `### \\`name\\`` heading in docs/outputs.md says it) -> the column
    patterns documented for it: the rows of its table, and those of the table that opens its
    `##` section (columns every file of the section shares). `<slot>` stands for A, B, ..."""
    import re

    found: dict[str, list[str]] = {}
    shared: list[str] = []
    current: str | None = None
    for line in OUTPUTS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            shared, current = [], None
        elif line.startswith("### "):
            name = re.fullmatch(r"### `([^`]+\.csv)`", line)
            current = name.group(1) if name else None
            if current:
                found[current] = list(shared)
        elif line.startswith("| `"):
            first = line.split("|")[1]
            names = re.findall(r"`([^`]+)`", first)
            if current is not None:
                found[current] += names
            else:  # a table before the section's first file: columns all of them share
                shared += names
    return found


def undocumented_columns(folder: Path) -> dict[str, list[str]]:
    """Every CSV under `folder` -> its header columns that docs/outputs.md does not list for it
    (a file it has no heading for: all of them)."""
    import re

    documented = documented_columns()
    missing = {}
    for path in sorted(Path(folder).rglob("*.csv")):
        relative = path.relative_to(folder).as_posix()
        key = next((k for k in documented if relative == k or relative.endswith("/" + k)), None)
        patterns = [re.escape(p).replace(re.escape("<slot>"), "[A-Z]") for p in documented.get(key, [])]
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        absent = [c for c in header if not any(re.fullmatch(p, c) for p in patterns)]
        if absent:
            missing[relative] = absent
    return missing


def prepared_korean_set(root: Path, counts: dict[str, int], cfg: Config) -> Path:
    """An imagefolder of noisy photos (`counts`: images per split) captioned as Korean food, prepared
    for SCoFT on the tiny models (generic captions, one negative each): what a tiny run trains on."""
    from finetune import prepare as prep

    for split, count in counts.items():
        rows = []
        for i in range(count):
            name = f"images/{split}_{i}.jpg"
            (root / split / name).parent.mkdir(parents=True, exist_ok=True)
            noisy_photo(60 + i + 10 * len(split), (72, 64)).save(root / split / name)
            rows.append({"file_name": name, "text": f"A bowl of bibimbap number {i} in Seoul", "culture": "korea"})
        write_jsonl(root / split / "metadata.jsonl", rows)
    cfg.prepare = prep.smoke_settings(cfg.prepare, "tiny", set())
    cfg.prepare.negatives_per_image = 1
    prep.prepare(prep.Options(root=root, tiny="tiny", device="cpu"), cfg)
    return root
