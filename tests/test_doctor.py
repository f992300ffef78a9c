"""`ccub doctor` and the one-error-for-all-missing-models checks (`require_all`) of the model commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_image, write_jsonl
from typer.testing import CliRunner

from ccub.cli import app
from ccub.models import ModelRef, ModelUnavailable, Need, require_all

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "400"}


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Every cache a model could be in is an empty folder; the working folder has no ccub.toml."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path / "ccub-cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def doctor(*args: str):
    """`ccub doctor` on a console wide enough that no path in its tables is folded (the console
    reads COLUMNS once, when it is made)."""
    from ccub.commands.common import console

    width = console._width
    console.width = 400
    try:
        return CliRunner().invoke(app, ["doctor", *args], env=WIDE)
    finally:
        console._width = width


def test_doctor_lists_every_missing_model_and_one_download_list(empty_caches):
    result = doctor()
    assert result.exit_code == 1, result.output
    out = result.output
    for name in ("Salesforce/blip-image-captioning-large", "Intel/dpt-hybrid-midas",
                 "lllyasviel/control_v11f1p_sd15_depth", "CompVis/stable-diffusion-v1-4", "ViT-B-32:openai",
                 "vgg16-397923af.pth", "dreamsim"):
        assert name in out, name
    assert "not ready" in out and "missing" in out
    downloads = out.split("download list")[1]
    for command in ("hf download Salesforce/blip-image-captioning-large", "hf download Intel/dpt-hybrid-midas",
                    "hf download lllyasviel/control_v11f1p_sd15_depth", "hf download CompVis/stable-diffusion-v1-4",
                    "open_clip.create_model_and_transforms(\"ViT-B-32\", pretrained=\"openai\")",
                    "torchvision.models.vgg16(weights='IMAGENET1K_V1')", "from dreamsim import dreamsim"):
        assert downloads.count(command) == 1, command  # each once, however many commands need it
    assert "Python" in out and "free disk" in out and "installed extras" in out and "config: built-in defaults" in out
    assert str(empty_caches / "hf" / "hub") in out  # the Hugging Face cache it looked in


def test_doctor_finds_a_cached_hub_model(empty_caches):
    snapshot = empty_caches / "hf" / "hub" / "models--Intel--dpt-hybrid-midas" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    result = doctor()
    assert result.exit_code == 1
    assert "hf download Intel/dpt-hybrid-midas" not in result.output
    assert "hf download CompVis/stable-diffusion-v1-4" in result.output


def test_doctor_with_tiny_base_is_ready(empty_caches):
    pytest.importorskip("diffusers")
    result = doctor("--base", "tiny")
    assert result.exit_code == 0, result.output
    assert "ready:" in result.output and "random weights (tiny)" in result.output


def test_doctor_with_every_model_in_local_folders_is_ready(empty_caches, tmp_path_factory, monkeypatch):
    pytest.importorskip("diffusers")
    from finetune.tiny import tiny_models

    # Built once into a cache shared with the other tests; the caches the doctor reads stay empty.
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))
    t = tiny_models("tiny")
    Path("ccub.toml").write_text(
        f'[prepare]\ncaptioner = "{t.captioner}"\ndepth_model = "{t.depth}"\ncontrolnet = "{t.controlnet}"\n'
        f'base = "{t.base}"\n[benchmark]\nclip = "tiny"\nlpips = false\n')
    Path("scoft.toml").write_text(f'base = "{t.base}"\nvariant = "lora"\n')
    result = doctor("--scoft-config", "scoft.toml")
    assert result.exit_code == 0, result.output
    assert "ccub.toml" in result.output and "missing" not in result.output


def test_doctor_without_torch_says_the_model_stack_is_not_installed(empty_caches):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from typer.testing import CliRunner\nfrom ccub.cli import app\n"
            "r = CliRunner().invoke(app, ['doctor'], env={'COLUMNS': '400'})\n"
            "print(r.output); print('exception:', repr(r.exception)); print('torch' in sys.modules and "
            "sys.modules['torch'] is not None)\nsys.exit(r.exit_code)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=Path.cwd())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "model stack is not installed" in done.stdout and "pip install -e '.[models]'" in done.stdout
    assert "hf download CompVis/stable-diffusion-v1-4" in done.stdout  # the caches are still checked
    assert "exception: SystemExit(1)" in done.stdout or "exception: None" in done.stdout
    assert done.stdout.strip().endswith("False"), "torch was not imported"


def test_require_all_names_every_missing_model_in_one_error(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "config.json").write_text("{}")
    good = ModelRef("good", str(tmp_path / "good"), local=True)
    with pytest.raises(ModelUnavailable) as info:
        require_all([(good, "depth model"), (str(tmp_path / "nope-a"), "captioning model"),
                     (ModelRef("b", str(tmp_path), local=True), "ControlNet"),
                     Need("base model", "someone/sd", "base model someone/sd is not cached",
                          command="hf download someone/sd", copy="~/.cache/huggingface"), None])
    message = str(info.value)
    assert message.startswith("3 models are missing")
    assert "captioning model" in message and "nope-a: no such folder" in message
    assert f"ControlNet b: {tmp_path} has no config.json" in message
    assert "hf download someone/sd" in message and "~/.cache/huggingface" in message
    assert "good" not in message.replace(str(tmp_path), "")
    require_all([(good, "depth model"), None])  # nothing missing: returns


def test_require_all_keeps_the_single_models_own_message(tmp_path):
    with pytest.raises(ModelUnavailable, match=r"^base model .*nope: no such folder; pass a folder"):
        require_all([(str(tmp_path / "nope"), "base model", "model_index.json")])


def _dataset(root: Path) -> Path:
    make_image(root / "train" / "images" / "a.jpg", size=(72, 96))
    write_jsonl(root / "train" / "metadata.jsonl",
                [{"file_name": "images/a.jpg", "text": "Jollof rice in Lagos", "culture": "nigeria"}])
    return root


def test_prepare_names_two_missing_local_models_in_one_error(empty_caches):
    pytest.importorskip("diffusers")
    root = _dataset(empty_caches / "ds")
    result = CliRunner().invoke(app, ["prepare", str(root), "--captioner", "./no-captioner",
                                      "--depth-model", "./no-depth"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1
    assert "./no-captioner: no such folder" in result.output and "./no-depth: no such folder" in result.output
    assert "hf download lllyasviel/control_v11f1p_sd15_depth" in result.output  # the defaults, uncached here
    assert not (root / "prepare.json").exists(), "nothing is written before the models are found"


def test_finetune_names_base_and_backbone_in_one_error(empty_caches):
    pytest.importorskip("diffusers")
    root = _dataset(empty_caches / "ds")
    Path("scoft.toml").write_text('backbone_weights = "./no-dreamsim"\n')
    result = CliRunner().invoke(app, ["finetune", "--dataset", str(root), "--base", "./no-base", "--config",
                                      "scoft.toml", "--no-prepare", "--output", "run"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1
    assert "./no-base: no such folder" in result.output and "no-dreamsim" in result.output
    assert "vgg16-397923af.pth" in result.output  # the perceptual term's weights, not in the empty TORCH_HOME
    assert not Path("run").exists()


def test_torch_free_vgg16_path_is_torchvisions(monkeypatch, tmp_path):
    pytest.importorskip("torchvision")
    from finetune import backbones, needs

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert needs.vgg16_checkpoint() == backbones.vgg16_checkpoint()
    monkeypatch.delitem(sys.modules, "torch")  # as without torch: from the environment alone
    assert needs.vgg16_checkpoint() == tmp_path / "torch" / "hub" / "checkpoints" / needs.VGG16_FILE


def test_browser_paths_match_the_browser_tests():
    from browser import CHROMEDRIVER, CHROMIUM

    from ccub.commands.doctor import BROWSER

    assert BROWSER == (CHROMIUM, CHROMEDRIVER)
