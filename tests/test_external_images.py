"""`ccub benchmark --images FOLDER`: images made elsewhere, scored and compared paired or unpaired,
a study built from them, and hostile maps rejected row by row."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import noisy_photo, undocumented_columns
from typer.testing import CliRunner

from benchmark.prompts import suite_for
from benchmark.record import BenchmarkRecord
from benchmark.stats import UNPAIRED_INTERVAL_METHOD, compare_unpaired, unpaired_intervals
from ccub.cli import app

CONFIG = "[benchmark]\nbootstrap = 200\nlpips = false\n"
PROMPTS = suite_for("india")[:4]


def _png(path: Path, seed: int) -> None:
    noisy_photo(seed, (64, 64)).save(path, format="PNG")


def _images(folder: Path) -> list[dict]:
    """base and ft share (prompt, seed) for seeds 0-2; other has seeds 10-11 of the same prompts."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for m, (model, seeds) in enumerate((("base", (0, 1, 2)), ("ft", (0, 1, 2)), ("other", (10, 11)))):
        (folder / model).mkdir(exist_ok=True)
        for i, prompt in enumerate(PROMPTS):
            for seed in seeds:
                name = f"{model}/{i}_{seed}.png"
                _png(folder / name, 1000 * m + 100 * i + seed)
                # Half the rows name the prompt by its text, half by its id.
                key = {"prompt": prompt.text} if i % 2 else {"prompt_id": prompt.id}
                rows.append({"file": name, "model": model, "seed": str(seed), "culture": "india", **key})
    return rows


def _write_map(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["file", "model", "prompt", "prompt_id", "seed", "culture"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _bench(tmp_path: Path, folder: Path, *extra: str):
    (tmp_path / "ccub.toml").write_text(CONFIG)
    out = tmp_path / "runs" / "ext" / "benchmark"
    return CliRunner().invoke(app, ["benchmark", "--images", str(folder), "--clip", "tiny", "--out", str(out),
                                    "--config", str(tmp_path / "ccub.toml"), *extra])


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("external")
    folder = tmp / "scoft-images"
    _write_map(folder / "images.csv", _images(folder))
    result = _bench(tmp, folder)
    assert result.exit_code == 0, result.output
    return tmp, folder, result


def test_external_benchmark_pairs_and_unpairs(benchmarked):
    tmp, folder, result = benchmarked
    out = tmp / "runs" / "ext" / "benchmark"
    assert "RANDOM WEIGHTS" in result.output or "SMOKE RUN" in result.output
    summary = list(csv.DictReader((out / "summary.csv").open(encoding="utf-8")))
    compared = [r for r in summary if r["level"] != "set"]
    pairing = {r["model"]: r["pairing"] for r in compared}
    assert pairing == {"ft": "paired", "other": "unpaired"}
    for r in compared:
        assert r["baseline"] == "base"
        if r["model"] == "ft":
            assert r["interval_method"] == "studentized-symmetric" and int(r["n_pairs"]) > 0
        else:
            assert r["interval_method"] == UNPAIRED_INTERVAL_METHOD and r["n_pairs"] == "0"
            assert int(r["n_prompts"]) == len(PROMPTS)
    assert all(r["random_weights"] == "True" for r in summary)  # the tiny CLIP scorer
    assert undocumented_columns(out) == {}, "docs/outputs.md lacks these columns"
    md = (out / "summary.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "| pairing |" in md and "unpaired" in md and "paired" in md
    assert "- base: images made elsewhere, from" in md and "(baseline)" in md  # what each model is
    assert "<th>pairing</th>" in html and "<td>unpaired</td>" in html and "Images made elsewhere" in html
    record = BenchmarkRecord.read(out / "benchmark.json")
    assert record.VERSION == 3 and record.settings == {"source": "external"}
    assert [m["name"] for m in record.models] == ["base", "ft", "other"]
    digest = hashlib.sha256((folder / "images.csv").read_bytes()).hexdigest()
    for m in record.models:
        assert m["source"] == "external" and m["map_sha256"] == digest and m["kind"] == "external"
        assert m["images_folder"] == str(folder.resolve()) and m["random_weights"] is False
    assert record.clip_random_weights and record.smoke_run  # the scorer's random weights still count
    # Every image scored is ccub's copy of the bytes read, inside the output folder.
    assert len(record.images) == 4 * (3 + 3 + 2)
    assert all(Path(i["path"]).is_relative_to((out / "images").resolve()) for i in record.images)


def test_study_from_external_images(benchmarked):
    tmp, _, _ = benchmarked
    study = tmp / "study"
    result = CliRunner().invoke(app, ["study", "make", str(tmp / "runs" / "ext"), "--out", str(study), "--items", "0"])
    assert result.exit_code == 0, result.output
    key = json.loads((study / "study.json").read_text())
    assert [m["name"] for m in key["models"]] == ["base", "ft", "other"]
    # "other" shares no (prompt, seed): items are matched by prompt, each model with its own seed.
    assert len(key["items"]) == len(PROMPTS) * 2
    assert all(set(i["seeds"]) == {"base", "ft", "other"} for i in key["items"])
    assert len(list((study / "crowd" / "images").iterdir())) == len(key["items"]) * 3
    metrics = list(csv.DictReader((study / "metrics.csv").open(encoding="utf-8")))
    assert {r["model"] for r in metrics} == {"base", "ft", "other"}


def _huge_png(path: Path) -> None:
    """A PNG whose header declares 30000 x 30000 pixels (900 MP) and holds almost nothing."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


def test_hostile_map_rows_rejected_one_by_one(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rows = _images(folder)
    outside = tmp_path / "secret.png"
    _png(outside, 1)
    os.symlink(outside, folder / "link.png")
    _huge_png(folder / "huge.png")
    (folder / "notes.png").write_text("not an image")
    pid = PROMPTS[0].id
    bad = [
        {"file": "missing.png", "model": "ft", "prompt_id": pid, "seed": "50"},
        {"file": "../secret.png", "model": "ft", "prompt_id": pid, "seed": "51"},
        {"file": str(outside), "model": "ft", "prompt_id": pid, "seed": "52"},
        {"file": "link.png", "model": "ft", "prompt_id": pid, "seed": "53"},
        {"file": "base/0_1.png", "model": "base", "prompt_id": pid, "seed": "1"},  # duplicate key
        {"file": "base/0_2.png", "model": "ft", "prompt_id": "india/NOPE/unknown", "seed": "54"},
        {"file": "huge.png", "model": "ft", "prompt_id": pid, "seed": "55"},
        {"file": "notes.png", "model": "ft", "prompt_id": pid, "seed": "56"},
        {"file": "base/0_0.png", "model": "ft", "prompt_id": pid, "seed": "-1"},
        {"file": "base/0_0.png", "model": "ft", "prompt_id": pid, "seed": "1.5"},
    ]
    _write_map(folder / "images.csv", rows + bad)
    result = _bench(tmp_path, folder)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    first = len(rows) + 2  # the header is line 1
    for offset, (name, why) in enumerate([
            ("missing.png", "file.missing"), ("../secret.png", "file.outside_root"),
            (str(outside), "file.outside_root"), ("link.png", "file.outside_root"),
            ("base/0_1.png", "already given on line"), ("base/0_2.png", "not in the india"),
            ("huge.png", "file.too_many_pixels"), ("notes.png", "file.format"), ("base/0_0.png", "seed '-1'"),
            ("base/0_0.png", "seed '1.5'")]):
        assert f"images.csv line {first + offset} ('{name}'): {why}" in text or (
            f"images.csv line {first + offset} ('{name}')" in text and why in text), (name, why)
    record = BenchmarkRecord.read(tmp_path / "runs" / "ext" / "benchmark" / "benchmark.json")
    assert len(record.images) == len(rows)  # the good rows are all used, no bad one
    assert "map row(s) not used" in (tmp_path / "runs" / "ext" / "benchmark" / "summary.md").read_text()


def test_nothing_usable_is_an_error(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _write_map(folder / "images.csv", [{"file": "../x.png", "model": "a", "prompt_id": PROMPTS[0].id, "seed": "0",
                                        "culture": "india"}])
    result = _bench(tmp_path, folder)
    assert result.exit_code == 2 and "no usable image" in " ".join(result.output.split())


def test_unpaired_interval_coverage():
    """Welch-type bootstrap-t over prompts: near nominal on independent prompts, conservative when the two
    models drew the same prompts (what a paired comparison would use); docs/benchmark.md has the numbers."""
    rng = np.random.default_rng(3)
    k, n, delta = 300, 12, 0.3

    def skewed(shape):
        return (np.exp(rng.standard_normal(shape)) - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)

    a = 0.5 * rng.standard_normal((k, n)) + 0.5 * skewed((k, n))
    b = 0.5 * rng.standard_normal((k, n)) + 0.5 * skewed((k, n)) + delta
    low, high = unpaired_intervals(a, b, 500, rng, 0.95)
    coverage = float(np.mean((low <= delta) & (delta <= high)))
    assert 0.91 <= coverage <= 0.99, coverage
    shared = 0.5 * rng.standard_normal((k, n))
    low, high = unpaired_intervals(shared + 0.5 * skewed((k, n)), shared + 0.5 * skewed((k, n)) + delta, 500, rng,
                                   0.95)
    assert float(np.mean((low <= delta) & (delta <= high))) >= 0.95


def test_compare_unpaired_uses_shared_prompts():
    base = (["a", "a", "b", "c", "e", "f", "g"], [1, 3, 4, 10, 2, 5, 1])
    model = (["a", "b", "b", "d", "e", "f", "g"], [5, 6, 8, math.nan, 4, 9, 2])
    c = compare_unpaired("clip_score", "x", "base", *base, *model, n_boot=500)
    # a, b, e, f and g: c has no model image, d no finite model value and no base image.
    assert c.pairing == "unpaired" and c.n_pairs == 0 and c.n_prompts == 5
    assert c.base_mean == pytest.approx((2 + 4 + 2 + 5 + 1) / 5)
    assert c.model_mean == pytest.approx((5 + 7 + 4 + 9 + 2) / 5)
    assert c.difference == pytest.approx(c.model_mean - c.base_mean) and c.win_rate == 1.0
    assert 0 < c.p_value <= 1 and c.ci_low < c.difference < c.ci_high
    assert math.isnan(compare_unpaired("m", "x", "b", ["a"], [1.0], ["a"], [2.0]).ci_low)  # one prompt: no interval
