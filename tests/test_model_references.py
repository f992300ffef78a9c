"""Model references (benchmark/references.py): base models alone and LoRA files from outside, in
diffusers/peft and kohya format, benchmarked and studied like `ccub finetune` runs (tiny random models)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from helpers import config, prepared_korean_set  # noqa: E402
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from benchmark.record import BenchmarkRecord  # noqa: E402
from benchmark.references import ModelReferenceError, lora_format, parse_reference  # noqa: E402
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
category = "CITIES"
text = "Photo of a street, in South Korea"
generic = "Photo of a street"
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A tiny run exported in both formats, its two LoRA files copied out of it (files from 'outside')."""
    os.environ["CCUB_CACHE"] = str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache")
    top = tmp_path_factory.mktemp("refs")
    root = prepared_korean_set(top / "data" / "korea", {"train": 3, "test": 2}, config())
    scoft = load_scoft_config(None, base="tiny", variant="lora", resolution=32, max_train_steps=2, rank=4,
                              checkpointing_steps=100, validation_steps=0, validation_inference_steps=1,
                              validation_seeds=[0], tensorboard=False, learning_rate=5e-2, export_kohya=True)
    run = top / "runs" / "korea-lora"
    train(scoft, RunOptions(dataset=root, output=run, culture="korea", culture_name="South Korea"))
    outside = top / "outside"
    outside.mkdir()
    shutil.copy(run / "pytorch_lora_weights.safetensors", outside / "peft_lora.safetensors")
    shutil.copy(run / "pytorch_lora_weights_kohya.safetensors", outside / "kohya_lora.safetensors")
    (top / "suite.toml").write_text(SUITE)
    (top / "ccub.toml").write_text('[benchmark]\nsteps = 2\nclip = "tiny"\nbootstrap = 100\n')
    return {"run": run, "peft": outside / "peft_lora.safetensors", "kohya": outside / "kohya_lora.safetensors",
            "suite": top / "suite.toml", "toml": top / "ccub.toml", "top": top}


def bench(made, tmp_path, *args: str) -> object:
    return CliRunner().invoke(app, ["benchmark", *args, "--prompts", str(made["suite"]), "--seeds", "2",
                                    "--config", str(made["toml"]), "--device", "cpu"])


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def images_of(folder: Path) -> dict[str, dict[tuple[str, int], Path]]:
    record = BenchmarkRecord.read(folder / "benchmark.json")
    found: dict[str, dict[tuple[str, int], Path]] = {}
    for image in record.images:
        found.setdefault(image["model"], {})[(image["prompt"], image["seed"])] = Path(image["path"])
    return found


def test_formats_are_told_from_the_file(made, tmp_path):
    assert lora_format(made["peft"], "x") == "peft" and lora_format(made["kohya"], "x") == "kohya"
    import torch
    from safetensors.torch import save_file

    odd = tmp_path / "odd.safetensors"
    save_file({"weights.0": torch.zeros(2)}, str(odd))
    with pytest.raises(ModelReferenceError, match=r"--compare lora:.*unknown LoRA format"):
        parse_reference(f"lora:{odd}", "--compare")
    ref = parse_reference(f"lora:{made['kohya']}@0.8", "--model")
    assert (ref.kind, ref.scale, ref.lora_format) == ("lora", 0.8, "kohya")
    assert parse_reference("base:tiny", "--model").base == "tiny"


@pytest.mark.parametrize(("args", "says"), [
    (["--model", "lora:{missing}", "--base", "tiny"], "--model lora:"),
    (["--model", "base:tiny", "--compare", "lora:{peft}@abc"], "--compare lora:"),
    (["--model", "base:tiny", "--compare", "lora:{peft}@nan"], "not a finite number"),
    (["--model", "lora:{peft}", "--culture", "korea"], "pass --base"),
    (["--model", "base:tiny"], "pass --culture"),
    (["--model", "base:tiny", "--compare", "lora:{peft}", "--culture", "korea", "--baseline", "nope"],
     "--baseline nope"),
])
def test_bad_references_are_refused_naming_the_argument(made, tmp_path, args, says):
    given = [a.format(missing=tmp_path / "missing.safetensors", peft=made["peft"]) for a in args]
    result = bench(made, tmp_path, *given, "--output", str(tmp_path / "out"))
    assert result.exit_code == 2 and says in result.output, result.output
    if "missing" in args[1]:
        assert "no such LoRA file" in result.output


def test_outside_lora_files_draw_the_runs_images(made, tmp_path):
    """The run, its peft file and its kohya file copied out, on the same base: the same images (the kohya
    file within two grey levels: the conversion may round)."""
    run = bench(made, tmp_path, "--model", str(made["run"]), "--cache", str(tmp_path / "c1"))
    assert run.exit_code == 0, run.output
    out = tmp_path / "outside-bench"
    result = bench(made, tmp_path, "--model", f"lora:{made['peft']}", "--compare", f"lora:{made['kohya']}@1",
                   "--base", "tiny", "--culture", "korea", "--output", str(out),
                   "--cache", str(tmp_path / "c2"))
    assert result.exit_code == 0, result.output
    theirs, ours = images_of(made["run"] / "benchmark"), images_of(out)
    assert set(ours) == {"base", "peft_lora", "kohya_lora"}
    for key, path in theirs["korea-lora"].items():
        assert (pixels(ours["peft_lora"][key]) == pixels(path)).all()
        assert np.abs(pixels(ours["kohya_lora"][key]) - pixels(path)).max() <= 2
        assert (pixels(ours["base"][key]) == pixels(theirs["base"][key])).all()
    assert any((pixels(theirs["korea-lora"][k]) != pixels(theirs["base"][k])).any() for k in theirs["base"])
    record = BenchmarkRecord.read(out / "benchmark.json")
    entries = {m["name"]: m for m in record.models}
    assert record.baseline == "base" and entries["base"]["kind"] == "base" and entries["base"]["lora"] is None
    kohya = entries["kohya_lora"]
    assert kohya["kind"] == "lora" and kohya["lora_format"] == "kohya" and kohya["lora_scale"] == 1.0
    assert kohya["lora_sha256"] == hashlib.sha256(made["kohya"].read_bytes()).hexdigest()
    assert all(m["random_weights"] for m in record.models) and record.smoke_run
    md, html = (out / "summary.md").read_text(), (out / "report.html").read_text()
    for text in (md, html):
        assert "kohya format, sha256 " + kohya["lora_sha256"][:16] in text and "RANDOM WEIGHTS" in text
    run_entry = {m["name"]: m for m in BenchmarkRecord.read(made["run"] / "benchmark" / "benchmark.json").models}
    assert run_entry["korea-lora"]["kind"] == "run"


def test_scale_zero_is_the_base_model(made, tmp_path):
    out = tmp_path / "zero"
    result = bench(made, tmp_path, "--model", "base:tiny", "--compare", f"lora:{made['peft']}@0", "--culture",
                   "korea", "--output", str(out), "--cache", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    found = images_of(out)
    assert all((pixels(found["peft_lora"][k]) == pixels(p)).all() for k, p in found["base"].items())


def test_base_models_alone(made, tmp_path):
    out = tmp_path / "bases"
    result = bench(made, tmp_path, "--model", "base:tiny", "--compare", "base:tiny-v", "--culture", "korea",
                   "--output", str(out), "--cache", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    record = BenchmarkRecord.read(out / "benchmark.json")
    assert [(m["name"], m["kind"], m["base"]) for m in record.models] == [("base", "base", "tiny"),
                                                                          ("tiny-v", "base", "tiny-v")]
    summary = (out / "summary.csv").read_text()
    assert "tiny-v" in summary and "SMOKE RUN" in (out / "summary.md").read_text()
    # --baseline puts another model first: the comparison is then base minus tiny-v.
    result = bench(made, tmp_path, "--model", "base:tiny", "--compare", "base:tiny-v", "--culture", "korea",
                   "--output", str(tmp_path / "swapped"), "--cache", str(tmp_path / "c"), "--baseline", "tiny-v")
    assert result.exit_code == 0, result.output
    record = BenchmarkRecord.read(tmp_path / "swapped" / "benchmark.json")
    assert record.baseline == "tiny-v" and record.models[0]["name"] == "tiny-v"


def test_study_from_outside_references(made, tmp_path):
    out = tmp_path / "bench"
    result = bench(made, tmp_path, "--model", f"lora:{made['peft']}", "--compare", f"lora:{made['kohya']}",
                   "--base", "tiny", "--culture", "korea", "--output", str(out), "--cache", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    study = CliRunner().invoke(app, ["study", "make", "base:tiny", f"lora:{made['kohya']}", f"lora:{made['peft']}",
                                     "--benchmark", str(out), "--out", str(tmp_path / "study")])
    assert study.exit_code == 0, study.output
    key = json.loads((tmp_path / "study" / "study.json").read_text())
    assert [m["name"] for m in key["models"]] == ["base", "kohya_lora", "peft_lora"] and key["smoke_run"]
    # A LoRA at a scale the benchmark did not draw is refused, naming it.
    missing = CliRunner().invoke(app, ["study", "make", f"lora:{made['peft']}@0.5", "--benchmark", str(out),
                                       "--out", str(tmp_path / "study2")])
    assert missing.exit_code == 2 and "no model of the benchmarks read" in missing.output, missing.output
