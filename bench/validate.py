"""Time `ccub validate` against a naive reference on synthetic 12 MP phone photos.

    python bench/validate.py [--images N] [--workers W]

Builds, in a temporary folder, an imagefolder submission of N phone-sized JPEGs (4032 x 3024,
quality 90, 3-5 MB, EXIF with orientation 1 and a GPS IFD) with clean metadata, then times in
the same run:

* naive: one process; for each file `Image.open(p).convert("RGB")` (a full decode) and
  `imagehash.phash(img)`; the minimum any curation script does;
* ccub: `ccub.pipeline.validate` with `workers=W` and no report writer (and, when
  `ccub.report` is importable, once more with the full report writer).

Each is run once, after one warm-up file. Throughput is images per second of wall time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 4032, 3024
LOW = 8  # pixels are drawn at 1/8 scale, then upscaled
QUALITY = 90
NOISE_SIGMA = 6.5
DATASET = "korea-bench"
CATEGORIES = ("FOOD", "ARCH", "CLOTH", "CITIES")
DISHES = ("tteokbokki", "bibimbap", "kimchi jjigae", "japchae", "naengmyeon", "samgyeopsal",
          "hotteok", "bindaetteok")
PLACES = ("a street stall in Seoul", "Gwangjang market", "a family dinner in Daegu",
          "a temple stay in Gyeongju", "a night market in Busan", "a roadside rest stop",
          "a university canteen in Daejeon", "a Chuseok table in Jeonju")

# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------

_NOISE: np.ndarray | None = None


def _noise_field() -> np.ndarray:
    """One shared sensor-noise field per process; each image reads it at its own offset."""
    global _NOISE
    if _NOISE is None:
        rng = np.random.default_rng(12345)
        _NOISE = (rng.standard_normal((HEIGHT + 64, WIDTH + 64), np.float32) * NOISE_SIGMA
                  ).astype(np.int16)
    return _NOISE


def _low_res_scene(rng: np.random.Generator) -> Image.Image:
    w, h = WIDTH // LOW, HEIGHT // LOW
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :, None]
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(30, 200, 3)
    base = top + (bottom - top) * y + x * rng.uniform(-40, 40, 3)
    base += rng.normal(0, 6, (h, w, 3))  # surface texture, medium frequency once upscaled
    im = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sw, sh = rng.uniform(4, w / 4), rng.uniform(4, h / 4)
        box = [cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2]
        if rng.integers(2):
            draw.ellipse(box, fill=colour, outline=(20, 20, 20))
        else:
            draw.rectangle(box, fill=colour, outline=(235, 235, 235))
    return im


def _exif(index: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "samsung", "Galaxy S23"  # Make, Model
    exif[0x0112] = 1  # Orientation
    exif[0x0132] = f"2024:05:{1 + index % 28:02d} 12:{index % 60:02d}:00"  # DateTime
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (37.0, 34.0, float(index % 60))
    gps[3], gps[4] = "E", (126.0, 58.0, float(index % 60))
    return exif.tobytes()


def make_photo(task: tuple[int, str]) -> int:
    """Write photo number `index` to `path`; returns its size in bytes."""
    index, path = task
    rng = np.random.default_rng(1000 + index)
    up = _low_res_scene(rng).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    dy, dx = (int(v) for v in rng.integers(0, 64, 2))
    pixels = np.asarray(up, np.int16) + _noise_field()[dy:dy + HEIGHT, dx:dx + WIDTH, None]
    im = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=QUALITY, exif=_exif(index))
    Path(path).write_bytes(out.getvalue())
    return len(out.getvalue())


def caption(index: int) -> str:
    dish, place = DISHES[index % len(DISHES)], PLACES[(index // len(DISHES)) % len(PLACES)]
    text = f"A plate of {dish} served at {place}"
    rounds = index // (len(DISHES) * len(PLACES))
    return text + (f", visit {rounds + 1}" if rounds else "")


def build_corpus(root: Path, n: int, workers: int) -> tuple[list[Path], float]:
    images = root / DATASET / "train" / "images"
    images.mkdir(parents=True)
    paths, rows = [], []
    for i in range(n):
        name = f"{CATEGORIES[i % len(CATEGORIES)]}_{i + 1}.jpg"
        paths.append(images / name)
        rows.append({"file_name": f"images/{name}", "text": caption(i), "culture": "korea",
                     "license": "CC-BY-4.0", "creator": "Kim Min-ji", "contributor": "k-017",
                     "consent": "yes"})
    (root / DATASET / "train" / "metadata.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    tasks = [(i, str(p)) for i, p in enumerate(paths)]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        sizes = list(pool.map(make_photo, tasks))
    return paths, sum(sizes) / len(sizes)


def single_image_corpus(root: Path, image: Path) -> None:
    """A one-image copy of the corpus, for warming up ccub's imports and models."""
    folder = root / DATASET / "train"
    (folder / "images").mkdir(parents=True)
    shutil.copy(image, folder / "images" / image.name)
    row = {"file_name": f"images/{image.name}", "text": caption(0), "culture": "korea",
           "license": "CC-BY-4.0", "creator": "Kim Min-ji", "consent": "yes"}
    (folder / "metadata.jsonl").write_text(json.dumps(row) + "\n", "utf-8")


# ---------------------------------------------------------------------------------------------
# Timed runs
# ---------------------------------------------------------------------------------------------


def naive(paths: list[Path]) -> float:
    import imagehash

    imagehash.phash(Image.open(paths[0]).convert("RGB"))  # warm-up file
    start = time.perf_counter()
    for p in paths:
        imagehash.phash(Image.open(p).convert("RGB"))
    return time.perf_counter() - start


def run_ccub(root: Path, out: Path, workers: int, report_writer=None):
    from ccub.config import load_config
    from ccub.pipeline import Options, validate

    cfg = load_config(cwd=out.parent)  # built-in defaults: no ccub.toml there
    start = time.perf_counter()
    result = validate(Options(root=root, out=out, workers=workers), cfg,
                      report_writer=report_writer)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="number of photos (default 48)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="ccub worker processes (default: all CPUs)")
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error("--images must be at least 2")
    try:
        from ccub.report import write_reports
    except ImportError:
        write_reports = None

    with tempfile.TemporaryDirectory(prefix="ccub-bench-") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        paths, mean_size = build_corpus(tmp_path / "corpus", args.images, os.cpu_count() or 1)
        generated = time.perf_counter() - t
        print(f"corpus: {args.images} JPEGs, {WIDTH}x{HEIGHT}, quality {QUALITY}, "
              f"{mean_size / 1e6:.1f} MB mean ({mean_size * args.images / 1e6:.0f} MB), "
              f"generated in {generated:.1f} s")
        print(f"cpus: {os.cpu_count()}, ccub workers: {args.workers}, python "
              f"{sys.version.split()[0]}, Pillow {Image.__version__}\n")

        naive_s = naive(paths)
        single_image_corpus(tmp_path / "warm", paths[0])
        run_ccub(tmp_path / "warm", tmp_path / "out-warm", args.workers)  # warm-up file
        ccub_s, result = run_ccub(tmp_path / "corpus", tmp_path / "out", args.workers)
        runs = [("naive: 1 process, full decode + phash", naive_s, None),
                (f"ccub validate, {args.workers} workers, no report", ccub_s, result)]
        if write_reports is not None:
            report_s, report_result = run_ccub(tmp_path / "corpus", tmp_path / "out-report",
                                               args.workers, write_reports)
            runs.append((f"ccub validate, {args.workers} workers, full report", report_s,
                         report_result))

        width = max(len(name) for name, _, _ in runs)
        print(f"{'run':<{width}}  {'seconds':>8}  {'images/s':>8}  {'vs naive':>8}")
        for name, seconds, _ in runs:
            print(f"{name:<{width}}  {seconds:8.2f}  {args.images / seconds:8.2f}  "
                  f"{naive_s / seconds:7.2f}x")

        print(f"\nccub / naive throughput ratio (no report): {naive_s / ccub_s:.2f}x")
        for name, _, res in runs[1:]:
            stages = "  ".join(f"{k} {v:.2f}" for k, v in res.timings.items())
            print(f"stages, {name.split(', ', 1)[1]} (s): {stages}")
        statuses = Counter(o.status for o in result.outcomes)
        checks = Counter(i.finding.check for i in result.issues)
        print(f"\nccub outcome: {dict(statuses)}; findings: "
              f"{', '.join(f'{k} x{v}' for k, v in sorted(checks.items())) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
