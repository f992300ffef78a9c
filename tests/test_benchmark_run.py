"""`ccub benchmark` end to end on tiny random models: outputs, labels, cache reuse and resume."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from helpers import config, prepared_korean_set, undocumented_columns  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from benchmark import generate as gen  # noqa: E402
from benchmark.record import BenchmarkRecord  # noqa: E402
from benchmark.run import Options, run_benchmark  # noqa: E402
from ccub.cli import app  # noqa: E402
from finetune.config import load_scoft_config  # noqa: E402
from finetune.train import RunOptions, train  # noqa: E402

SUITE = """
[[prompt]]
culture = "korea"
category = "FOOD"
text = "A table of food in South Korea"
generic = "A table of food"

[[prompt]]
culture = "korea"
category = "CLOTH"
text = "People wearing traditional clothing, in South Korea"
generic = "People wearing traditional clothing"

[[prompt]]
culture = "korea"
category = "CITIES"
text = "Photo of a street, in South Korea"
generic = "Photo of a street"
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs (M and plain LoRA) on a prepared Korean set with a held-out test split."""
    os.environ["CCUB_CACHE"] = str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache")
    top = tmp_path_factory.mktemp("bench")
    root = prepared_korean_set(top / "data" / "korea", {"train": 4, "test": 3}, bench_config())
    found = {}
    for variant in ("M", "lora"):
        scoft = load_scoft_config(None, base="tiny", variant=variant, resolution=32, max_train_steps=2, rank=4,
                                  checkpointing_steps=100, validation_steps=0, validation_inference_steps=1,
                                  validation_seeds=[0], tensorboard=False, learning_rate=1e-2)
        out = top / "runs" / f"korea-{variant}"
        train(scoft, RunOptions(dataset=root, output=out, culture="korea", culture_name="South Korea"))
        found[variant] = out
    (top / "suite.toml").write_text(SUITE)
    found["suite"] = top / "suite.toml"
    return found


def bench_config():
    return config(benchmark={"steps": 3, "clip": "tiny", "bootstrap": 500})


def test_benchmark_writes_every_output_with_smoke_labels(runs, tmp_path):
    cache = tmp_path / "cache"
    outcome = run_benchmark(Options(run=runs["M"], compare=[runs["lora"]], prompts=runs["suite"], seeds=2,
                                    cache=cache, device="cpu"), bench_config())
    assert outcome.smoke_run and outcome.generated == 3 * 3 * 2  # base + two runs, 3 prompts x 2 seeds
    out = runs["M"] / "benchmark"
    assert outcome.output == out
    for name in ("results.csv", "summary.csv", "summary.md", "report.html", "benchmark.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "benchmark.json").read_text())
    record = BenchmarkRecord.read(out / "benchmark.json")
    assert record.clip_random_weights and record.clip.startswith("tiny")
    assert [m["name"] for m in manifest["models"]] == ["base", "korea-M", "korea-lora"]
    assert manifest["smoke_run"] and manifest["culture"] == "korea" and manifest["seeds"] == [0, 1]
    assert len(manifest["images"]) == 3 * 3 * 2 and all(Path(i["path"]).is_file() for i in manifest["images"])
    assert {(i["model"], i["prompt"], i["seed"]) for i in manifest["images"]} == {
        (m, p["id"], s) for m in ("base", "korea-M", "korea-lora") for p in manifest["prompts"] for s in (0, 1)}
    results = list(csv.DictReader((out / "results.csv").open()))
    assert {r["model"] for r in results} == {"base", "korea-M", "korea-lora"}
    assert all(r["random_weights"] == "True" for r in results)
    per_image = [r for r in results if r["metric"] == "clip_score"]
    assert len(per_image) == 3 * 3 * 2
    summary = list(csv.DictReader((out / "summary.csv").open()))
    metrics = {r["metric"] for r in summary}
    assert {"clip_score", "relevance_margin", "target_probability", "identified", "confused", "framing_margin",
            "homogeneity", "vendi", "nearest_training_clip", "cmmd", "kid", "copy_rate"} <= metrics
    paired = [r for r in summary if r["level"] != "set"]
    assert all(r["p_adjusted"] != "" and r["n_prompts"] == "3" for r in paired)
    assert {r["model"] for r in paired} == {"korea-M", "korea-lora"}
    md = (out / "summary.md").read_text()
    assert "SMOKE RUN" in md and "RANDOM WEIGHTS" in md and "| clip\\_score |" in md
    html = (out / "report.html").read_text()
    assert "SMOKE RUN" in html and html.count("data:image/jpeg;base64") == 3 * 3 * 2
    assert "data:image/png;base64" in html, "forest plot"
    assert sorted(p.name for p in out.rglob("*.csv")) == ["results.csv", "summary.csv"]
    assert undocumented_columns(out) == {}, "docs/outputs.md lacks these columns"


def test_cache_reuse_and_resume(runs, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real = gen.ImageCache.store
    stored = []

    def store_then_die(self, model, prompt, seed, image):
        path = real(self, model, prompt, seed, image)
        stored.append(path)
        if len(stored) == 4:
            raise KeyboardInterrupt  # the benchmark is killed while the base model draws
        return path

    monkeypatch.setattr(gen.ImageCache, "store", store_then_die)
    options = Options(run=runs["M"], prompts=runs["suite"], seeds=2, cache=cache, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(options, bench_config())
    monkeypatch.setattr(gen.ImageCache, "store", real)
    resumed = run_benchmark(options, bench_config())
    assert resumed.generated == 2 * 3 * 2 - 4, "only what was missing"
    again = run_benchmark(options, bench_config())
    assert again.generated == 0
    # A benchmark of another run against the same base reuses the base model's images.
    other = run_benchmark(Options(run=runs["lora"], prompts=runs["suite"], seeds=2, cache=cache, device="cpu"),
                          bench_config())
    assert other.generated == 3 * 2


def test_paired_generation_uses_the_same_latents(runs, tmp_path):
    """Same seed, same latent for every model: the base model redrawn gives the same pixels."""
    from PIL import Image

    options = Options(run=runs["M"], prompts=runs["suite"], seeds=1, cache=tmp_path / "a", device="cpu")
    run_benchmark(options, bench_config())
    run_benchmark(Options(run=runs["M"], prompts=runs["suite"], seeds=1, cache=tmp_path / "b", device="cpu"),
                  bench_config())
    first = sorted((tmp_path / "a").rglob("*.png"))
    second = sorted((tmp_path / "b").rglob("*.png"))
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    assert all((Image.open(a).tobytes() == Image.open(b).tobytes()) for a, b in zip(first, second, strict=True))


def test_cli_benchmark(runs, tmp_path):
    toml = tmp_path / "ccub.toml"
    toml.write_text("[benchmark]\nsteps = 2\nclip = \"tiny\"\nbootstrap = 200\n")
    # `--compare runs/y runs/z`: the spelling (the second run is read as a positional argument).
    result = CliRunner().invoke(app, ["benchmark", "--model", str(runs["M"]), "--prompts", str(runs["suite"]),
                                      "--seeds", "2", "--cache", str(tmp_path / "cache"), "--config", str(toml),
                                      "--device", "cpu", "--compare", str(runs["lora"]), str(runs["M"])])
    assert result.exit_code == 2 and "share the folder name" in result.output, result.output
    result = CliRunner().invoke(app, ["benchmark", "--model", str(runs["M"]), "--prompts", str(runs["suite"]),
                                      "--seeds", "2", "--cache", str(tmp_path / "cache"), "--config", str(toml),
                                      "--device", "cpu", "--compare", str(runs["lora"])])
    assert result.exit_code == 0, result.output
    assert "SMOKE RUN" in result.output and "clip_score" in result.output and "korea-lora" in result.output
    # Not a terminal: the settings first, then log lines per image with totals and an ETA.
    assert "ccub benchmark:" in result.output and "3 prompts x 2 seeds x 3 models = 18" in result.output
    assert "generating: base: 0/6 images" in result.output and "generating: base: 6/6 images" in result.output
    assert "scoring: 0/" in result.output and "images (100%)" in result.output
    assert "ETA" in result.output and "scoring 0/1" not in result.output
    missing = CliRunner().invoke(app, ["benchmark", "--model", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "run.json" in missing.output
    assert json.loads((runs["M"] / "run.json").read_text())["culture"] == "korea"


def test_two_processes_split_the_generation(runs, tmp_path):
    import subprocess
    import sys

    toml = tmp_path / "ccub.toml"
    toml.write_text("[benchmark]\nsteps = 2\nclip = \"tiny\"\nbootstrap = 200\n")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ccub", "benchmark",
               "--model", str(runs["M"]), "--prompts", str(runs["suite"]), "--seeds", "2", "--cache",
               str(tmp_path / "cache"), "--config", str(toml)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 2 * 3 * 2
    assert done.stdout.count("outputs:") == 1, "only the main process scores and writes"
