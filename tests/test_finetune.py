"""`ccub finetune` on tiny random models: a run's outputs, LoRA loading, kohya export, exact resume,
two processes, and the config round trip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from helpers import make_image, write_jsonl  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from benchmark.study.bundle import read_study  # noqa: E402
from ccub.cli import app  # noqa: E402
from finetune import checkpoints  # noqa: E402
from finetune import prepare as prep  # noqa: E402
from finetune.components import sd_family  # noqa: E402
from finetune.config import ScoftConfig, dump_toml, load_scoft_config  # noqa: E402
from finetune.outputs import kohya_metadata, render_card  # noqa: E402
from finetune.run_record import RunRecord  # noqa: E402
from finetune.tiny import tiny_models  # noqa: E402
from finetune.train import RunOptions, train  # noqa: E402


@pytest.fixture(autouse=True)
def shared_tiny_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Four images, one without negatives (masked out of L_C), prepared with the tiny models."""
    os.environ.setdefault("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))
    root = tmp_path_factory.mktemp("scoft") / "korea"
    rows = []
    for i in range(4):
        name = f"images/FOOD_{i}.jpg"
        make_image(root / "train" / name, size=(80, 64), seed=40 + i)
        rows.append({"file_name": name, "text": f"A bowl of kimchi stew number {i} in Seoul", "culture": "korea"}
                    | ({"license": "CC-BY-4.0"} if i < 3 else {}))
    write_jsonl(root / "train" / "metadata.jsonl", rows)
    from helpers import config

    cfg = config()
    cfg.prepare = prep.smoke_settings(cfg.prepare, "tiny", set())
    cfg.prepare.negatives_per_image = 2
    prep.prepare(prep.Options(root=root, tiny="tiny", device="cpu"), cfg)
    meta = root / "train" / "metadata.jsonl"
    rows = [json.loads(line) for line in meta.read_text().splitlines()]
    rows[3]["negative_imgpath"] = []
    write_jsonl(meta, rows)
    return root


def smoke(**changes) -> ScoftConfig:
    values = {"base": "tiny", "resolution": 32, "max_train_steps": 4, "checkpointing_steps": 2,
              "validation_steps": 0, "validation_inference_steps": 2, "perceptual_interval": 2,
              "sampler_steps": 4, "rank": 4, "tensorboard": False} | changes
    return load_scoft_config(None, **values)


def run(prepared: Path, out: Path, cfg: ScoftConfig, resume: str | None = None):
    return train(cfg, RunOptions(dataset=prepared, output=out, culture="korea", culture_name="South Korea",
                                 resume=resume))


def lora_of(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "pytorch_lora_weights.safetensors"))


# --------------------------------------------------------------------------- the run and its outputs


def test_scoft_run_writes_every_output(prepared, tmp_path):
    out = tmp_path / "runs" / "korea-MPC"
    result = run(prepared, out, smoke(tensorboard=True, export_kohya=True))
    assert result.smoke_run and result.steps == 4
    for name in ("pytorch_lora_weights.safetensors", "pytorch_lora_weights_kohya.safetensors", "config.toml",
                 "train_log.jsonl", "README.md", "run.json", "checkpoint-2", "samples/step-000004.png"):
        assert (out / name).exists(), name
    assert list((out / "logs").rglob("events.out.tfevents.*")), "TensorBoard logs"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for record in log:
        terms = {"loss/total", "loss/ldm", "loss/memorisation", "loss/perceptual", "loss/contrastive"}
        assert {"lr", *terms} <= set(record)
        assert all(v == v and abs(v) != float("inf") for k, v in record.items() if k.startswith("loss/"))
    facts = json.loads((out / "run.json").read_text())
    assert facts["smoke_run"] is True and facts["variant"] == "MPC" and facts["culture"] == "korea"
    assert facts["base_model"] == "tiny" and facts["images"] == 4
    assert facts["data_licenses"] == {"CC-BY-4.0": 3}
    card = (out / "README.md").read_text()
    assert "RANDOM WEIGHTS" in card
    assert_card_is_hub_valid(card, base_model=None)
    assert str(tmp_path) not in card and str(prepared) not in card and "CCUB_CACHE" not in card
    assert os.environ["CCUB_CACHE"] not in card, "the tiny model's cache folder"
    assert 'pipe.load_lora_weights("korea-MPC")' in card and 'tiny_models("tiny").base' in card
    assert "CC-BY-4.0 (3 images), none given (1 image)" in card
    assert load_scoft_config(out / "config.toml") == smoke(tensorboard=True, export_kohya=True)


def test_lora_loads_into_a_fresh_pipeline_and_changes_its_output(prepared, tmp_path):
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    out = tmp_path / "run"
    run(prepared, out, smoke(variant="M", learning_rate=1e-2))
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_models().base), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)

    def generate():
        return pipe("A table of food in South Korea", num_inference_steps=2, height=32, width=32,
                    generator=torch.Generator().manual_seed(0), output_type="np").images

    before = generate()
    pipe.load_lora_weights(str(out))
    [adapter] = pipe.unet.peft_config
    loaded = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet, adapter_name=adapter))
    saved = lora_of(out)
    assert len(loaded) == len(saved) > 0
    assert all(torch.equal(loaded[k.removeprefix("unet.")].float(), v.float()) for k, v in saved.items())
    after = generate()
    assert not (before == after).all(), "the LoRA changes what the pipeline draws"
    # The kohya file loads into diffusers too, and draws the same images.
    kohya_out = tmp_path / "kohya"
    run(prepared, kohya_out, smoke(variant="M", learning_rate=1e-2, export_kohya=True))
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(kohya_out), weight_name="pytorch_lora_weights_kohya.safetensors")
    assert (abs(generate() - after) < 1e-4).all()


def test_kohya_keys(prepared, tmp_path):
    out = tmp_path / "run"
    run(prepared, out, smoke(variant="lora", max_train_steps=1, export_kohya=True))
    kohya = load_file(str(out / "pytorch_lora_weights_kohya.safetensors"))
    pattern = re.compile(r"lora_unet_(down|mid|up)_blocks?_[a-z0-9_]+_(to_q|to_k|to_v|to_out_0)"
                         r"\.(lora_down\.weight|lora_up\.weight|alpha)")
    assert kohya and all(pattern.fullmatch(k) for k in kohya), [k for k in kohya if not pattern.fullmatch(k)][:3]
    modules = {k.split(".")[0] for k in kohya}
    assert len(kohya) == 3 * len(modules) == 3 * len(lora_of(out)) // 2
    assert all(float(v) == 4.0 for k, v in kohya.items() if k.endswith(".alpha")), "alpha = rank: strength 1"
    down = next(v for k, v in kohya.items() if k.endswith("lora_down.weight"))
    assert down.shape[0] == 4
    assert kohya_meta(out) == {"ss_network_module": "networks.lora", "ss_network_dim": "4",
                               "ss_network_alpha": "4.0", "ss_base_model_version": "sd_v1", "ss_v2": "False"}


def kohya_meta(out: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(out / "pytorch_lora_weights_kohya.safetensors"), "pt") as fh:
        return fh.metadata()


def test_sd_family_from_the_preset_or_the_cross_attention_width():
    assert sd_family("tiny", 32) == "sd_v1" and sd_family("tiny-v", 32) == "sd_v2"
    assert sd_family("runwayml/stable-diffusion-v1-5", 768) == "sd_v1"
    assert sd_family("stabilityai/stable-diffusion-2-1", 1024) == "sd_v2"
    assert sd_family("/models/sd2", [1024, 1024, 1024, 1024]) == "sd_v2"
    assert sd_family("/models/odd", 512) is None and sd_family("/models/mixed", [768, 1024]) is None
    assert "ss_base_model_version" not in kohya_metadata(4, 4.0, None)
    assert kohya_metadata(8, 16.0, "sd_v2") == {
        "ss_network_module": "networks.lora", "ss_network_dim": "8", "ss_network_alpha": "16.0",
        "ss_base_model_version": "sd_v2", "ss_v2": "True"}


# --------------------------------------------------------------------------- the model card


def assert_card_is_hub_valid(card: str, base_model: str | None) -> None:
    """The YAML header parses into huggingface_hub's ModelCardData with the fields the hub reads."""
    from huggingface_hub import ModelCard

    data = ModelCard(card).data
    assert data.base_model == base_model
    assert data.license == "other" and data.library_name == "diffusers"
    assert {"text-to-image", "stable-diffusion", "lora", "diffusers", "scoft", "culture-korea"} <= set(data.tags)
    assert ("base_model" in data.to_dict()) == (base_model is not None)
    assert not re.search(r"(?<![\w.])(/(tmp|home|root|Users|work)\b|[A-Za-z]:\\)", card), "an absolute path"


def card_record(base_model: str, base_path: str, **changes) -> RunRecord:
    values = dict(
        output="/home/ana/ccub/runs/korea-MPC", base_model=base_model, base_path=base_path, culture="korea",
        dataset="/home/ana/ccub/data/clean/korea", data_card="/home/ana/ccub/data/clean/README.md", images=5,
        variant="MPC", loss_weights={"ldm": 1.0}, backbones={
            "perceptual": "lpips: VGG16 trunk from /home/ana/.cache/lpips/vgg.pth; 6 layers; 224x224 px",
            "contrastive": "open_clip ViT-B-32: open_clip ViT-B-32; penultimate; 224x224 px"},
        steps=10, resumed_from=0, skipped_steps=0, seconds=12.0,
        hardware={"device": "cuda:0", "gpu": "NVIDIA H100", "processes": 1, "mixed_precision": "bf16"},
        versions={"diffusers": "0.30"}, smoke_run=False,
        config={"rank": 4, "lora_alpha": 0, "perceptual_interval": 2, "train_batch_size": 1,
                "gradient_accumulation_steps": 1, "seed": 0},
        data_licenses={"CC-BY-4.0": 3, "CC0-1.0": 2})
    return RunRecord(**(values | changes))


def test_card_names_a_hub_base_and_no_local_path():
    card = render_card(card_record("runwayml/stable-diffusion-v1-5", "runwayml/stable-diffusion-v1-5"))
    assert_card_is_hub_valid(card, base_model="runwayml/stable-diffusion-v1-5")
    assert "/home/ana" not in card
    assert 'from_pretrained("runwayml/stable-diffusion-v1-5")' in card
    assert 'load_lora_weights("korea-MPC")' in card and "clean/README.md" in card
    assert "VGG16 trunk from vgg.pth" in card
    assert "CC-BY-4.0 (3 images), CC0-1.0 (2 images)" in card


@pytest.mark.parametrize(("base", "path"), [("/home/ana/models/sd15", "/home/ana/models/sd15"),
                                            ("./models/sd15", "/home/ana/models/sd15"),
                                            ("~/models/sd15", "/home/ana/models/sd15"),
                                            ("sd15", "/home/ana/ccub/sd15"),
                                            ("C:\\Users\\ana\\sd15", "C:\\Users\\ana\\sd15"),
                                            ("tiny", "/home/ana/.cache/ccub/diffusers/tiny-abc/base")])
def test_card_omits_base_model_for_a_folder_or_tiny_preset(base, path):
    card = render_card(card_record(base, path, data_licenses={}))
    assert_card_is_hub_valid(card, base_model=None)
    assert "/home/ana" not in card and "~/" not in card and "Users" not in card
    assert "| training data licences | none given (5 images) |" in card


def test_resumed_run_ends_with_identical_weights(prepared, tmp_path, monkeypatch):
    cfg = smoke(max_train_steps=4, checkpointing_steps=2)
    straight = tmp_path / "straight"
    run(prepared, straight, cfg)
    interrupted = tmp_path / "interrupted"
    real_save = checkpoints.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # the job is killed right after its first checkpoint
    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(prepared, interrupted, cfg)
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)
    assert [s.step for s in checkpoints.list_checkpoints(interrupted)] == [2]
    assert not (interrupted / "pytorch_lora_weights.safetensors").exists()
    with (interrupted / "train_log.jsonl").open("a") as fh:  # a step logged after the last checkpoint
        fh.write(json.dumps({"step": 3, "loss/total": 0.0}) + "\n")
    result = run(prepared, interrupted, cfg, resume="latest")
    assert result.resumed_from == 2
    a, b = lora_of(straight), lora_of(interrupted)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "bitwise identical"
    log = [json.loads(line) for line in (interrupted / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]


def test_resume_refuses_changed_settings(prepared, tmp_path):
    out = tmp_path / "run"
    run(prepared, out, smoke(max_train_steps=2, checkpointing_steps=1))
    with pytest.raises(checkpoints.ResumeError, match="learning_rate"):
        run(prepared, out, smoke(max_train_steps=3, checkpointing_steps=1, learning_rate=5e-4), resume="latest")


def test_checkpoints_are_pruned_to_the_limit(prepared, tmp_path):
    out = tmp_path / "run"
    run(prepared, out, smoke(variant="lora", max_train_steps=5, checkpointing_steps=1, checkpoints_total_limit=2))
    assert [s.step for s in checkpoints.list_checkpoints(out)] == [3, 4]
    assert not list(out.glob(".checkpoint-*")), "no half-written checkpoint left"


# --------------------------------------------------------------------------- config and CLI


def test_config_round_trip_and_errors(tmp_path):
    cfg = ScoftConfig(variant="MP", rank=16, validation_prompts=["a", "b"], learning_rate=3e-4)
    path = tmp_path / "scoft.toml"
    path.write_text(dump_toml(cfg))
    assert load_scoft_config(path) == cfg
    assert load_scoft_config(path, rank=8).rank == 8
    (tmp_path / "bad.toml").write_text("ranc = 4\n")
    from ccub.config import ConfigError

    with pytest.raises(ConfigError, match="ranc"):
        load_scoft_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="variant"):
        load_scoft_config(None, variant="XYZ")
    assert ScoftConfig().lora_scale_alpha() == 64 and ScoftConfig().weight_contrastive == 0.05


def test_cli_tiny_run_and_missing_base(prepared, tmp_path):
    out = tmp_path / "runs" / "cli"
    result = CliRunner().invoke(app, ["finetune", "--dataset", str(prepared), "--base", "tiny", "--variant", "M",
                                      "--steps", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "SMOKE RUN" in result.output and (out / "pytorch_lora_weights.safetensors").is_file()
    missing = CliRunner().invoke(app, ["finetune", "--dataset", str(prepared), "--base", "nobody/no-such-model",
                                       "--output", str(tmp_path / "x"), "--no-prepare"])
    assert missing.exit_code == 2
    assert "nobody/no-such-model" in missing.output and "hf download" in missing.output


def test_log_lines_without_a_terminal_and_the_settings_block(prepared, tmp_path):
    """CliRunner's output is no terminal: plain lines, the first before training, then every step."""
    out = tmp_path / "runs" / "logged"
    result = CliRunner().invoke(app, ["finetune", "--dataset", str(prepared), "--base", "tiny", "--variant", "M",
                                      "--steps", "3", "--output", str(out), "--no-prepare"])
    assert result.exit_code == 0, result.output
    text = result.output
    for row in ("ccub finetune:", "base       tiny (RANDOM WEIGHTS)", "3 optimizer steps of 1 x 4 images",
                "lr 0.0001", "device     cpu", f"output     {out}", "config     defaults (no --config)"):
        assert row in text, row
    assert "loading UNet from" in text and "caching text: " in text
    first = text.index("training: 0/3 steps (0%)")
    assert text.index("loading UNet from") < first < text.index("training: 1/3 steps")
    steps = re.findall(r"training: (\d)/3 steps \(\d+%\) \| loss=\S+ .*\| ([\d.]+ s/step|[\d.]+ steps/s) \| "
                       r"elapsed \S+ \| ETA \d:\d\d:\d\d", text)
    assert [s[0] for s in steps] == ["1", "2", "3"], text
    assert "ldm=" in text and "memorisation=" in text


def test_dry_run_prints_steps_and_memory_and_writes_nothing(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in prepared.rglob("*"))
    result = CliRunner().invoke(app, ["finetune", "--dataset", str(prepared), "--base", "tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "steps: 6" in result.output, result.output
    assert re.search(r"dataset: 4 images, \d+ negatives", result.output)  # another test may prepare row 3
    assert re.search(r"estimated peak GPU memory \(bf16, batch 1, 32 px; an estimate, not a measurement\): "
                     r"[\d.]+ GB", result.output)
    assert "training:" not in result.output and "loading UNet" not in result.output
    assert not (tmp_path / "runs").exists() and sorted(p.name for p in prepared.rglob("*")) == before


def test_cpu_warning_for_a_real_size_model(prepared, tmp_path, monkeypatch):
    from finetune import estimate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimate, "real_size", lambda base: True)  # as if `tiny` were a real model
    monkeypatch.setattr(estimate, "training_device", lambda: "cpu")
    args = ["finetune", "--dataset", str(prepared), "--base", "tiny", "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: training tiny on a CPU \(no CUDA GPU found\): about \S+ \S+ for 6 steps "
                     r"\(an estimate", result.output), result.output
    monkeypatch.setattr(estimate, "training_device", lambda: "cuda")
    assert "warning" not in CliRunner().invoke(app, args).output


def test_two_processes_with_accelerate_launch(prepared, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ccub", "finetune",
               "--dataset", str(prepared), "--base", "tiny", "--variant", "M", "--steps", "2", "--output", str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads((out / "run.json").read_text())
    assert facts["hardware"]["processes"] == 2
    assert (out / "pytorch_lora_weights.safetensors").is_file()


def test_v_prediction_batches_and_memory_options(prepared, tmp_path):
    """SD 2.x style (v-prediction), batches of 2 with 2 or 0 negatives, min-SNR, checkpointing, random step."""
    out = tmp_path / "v"
    result = run(prepared, out, smoke(base="tiny-v", train_batch_size=2, gradient_accumulation_steps=2,
                                      max_train_steps=2, perceptual_interval=1, snr_gamma=5.0, grad_step="random",
                                      gradient_checkpointing=True, vae_gradient_checkpointing=True,
                                      export_kohya=True))
    assert result.steps == 2 and result.skipped_steps == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(abs(r["loss/contrastive"]) < float("inf") and r["loss/perceptual"] >= 0 for r in log)
    assert json.loads((out / "run.json").read_text())["base_model"] == "tiny-v"
    assert kohya_meta(out)["ss_base_model_version"] == "sd_v2" and kohya_meta(out)["ss_v2"] == "True"


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/submissions not generated")
def test_readme_sequence_validate_finetune_benchmark_study(tmp_path, monkeypatch):
    """The README's commands on tiny models, from an empty folder:
    `ccub validate examples/submissions`, `ccub finetune --culture india --base tiny`,
    `ccub benchmark --model runs/india-MPC --clip tiny`, then the study (`_readme_study`)."""
    monkeypatch.chdir(tmp_path)
    validated = CliRunner().invoke(app, ["validate", str(EXAMPLES), "--workers", "2"])
    assert validated.exit_code == 1 and Path("data/clean/india").is_dir(), validated.output
    trained = CliRunner().invoke(app, ["finetune", "--culture", "india", "--base", "tiny"])
    assert trained.exit_code == 0, trained.output
    run_dir = Path("runs/india-MPC")
    assert (run_dir / "pytorch_lora_weights.safetensors").is_file()
    facts = json.loads((run_dir / "run.json").read_text())
    assert facts["smoke_run"] and facts["images"] == 6 and facts["culture"] == "india"
    assert "South Korea" not in (run_dir / "samples" / "step-000006.json").read_text()
    assert "India" in (run_dir / "samples" / "step-000006.json").read_text()
    assert json.loads(Path("data/clean/india/prepare.json").read_text())["smoke_run"] is True
    benchmarked = CliRunner().invoke(app, ["benchmark", "--model", str(run_dir), "--clip", "tiny", "--seeds", "1"])
    assert benchmarked.exit_code == 0, benchmarked.output
    assert "SMOKE RUN" in benchmarked.output and "relevance_margin" in benchmarked.output
    for name in ("results.csv", "summary.csv", "summary.md", "report.html"):
        assert (run_dir / "benchmark" / name).is_file(), name
    _readme_study(run_dir)


def _readme_study(run_dir: Path) -> None:
    """The study commands of docs/study.md on the benchmark just made: make, complete the survey in Chromium
    (when there is one; CI requires it), analyse the answers with simulated ones beside them."""
    import browser

    made = CliRunner().invoke(app, ["study", "make", str(run_dir), "--out", "study", "--per-participant", "3"])
    assert made.exit_code == 0 and "TEST STUDY" in made.output, made.output
    key = read_study(Path("study"))
    assert key.model_names() == ["base", "india-MPC"] and len(key.items) == 39
    problem = browser.browser_problem()
    if problem and os.environ.get("CCUB_BROWSER_TESTS") == "required":
        pytest.fail(f"browser tests are required but cannot run: {problem}")
    answered = None
    if problem is None:
        # The participant always ranks slot B first; the key says which model that was, item by item.
        with browser.chromium(Path("responses")) as driver:
            answered = browser.complete_survey(driver, Path("study/survey.html").resolve(), Path("responses"),
                                               lambda item, prompt, question, slots: sorted(slots, reverse=True))
        assert len(answered["items_shown"]) == 3 and len(answered["answers"]) == 3 * 4
    simulated = CliRunner().invoke(app, ["study", "simulate", "study", "--out", "responses", "--participants", "4"])
    assert simulated.exit_code == 0, simulated.output
    analysed = CliRunner().invoke(app, ["study", "analyze", "study", "responses"])
    assert analysed.exit_code == 0, analysed.output
    assert "TEST STUDY" in analysed.output and "SIMULATED" in analysed.output
    rankings = Path("study/analysis/rankings.csv").read_text()
    assert ",india-MPC," in rankings and ",base," in rankings
    if answered is not None:
        assert f"{4 + 1} participants" in analysed.output
        from benchmark.study.responses import read_responses

        found, rejected = read_responses(Path("responses"), [key])
        by_item = {i["id"]: i["slots"] for i in key.items}
        mine = [r for r in found[key.study_id].rankings if r.participant == answered["participant"]]
        assert rejected == [] and len(mine) == 3 * 4
        assert all(r.models == (by_item[r.item]["B"], by_item[r.item]["A"]) for r in mine), "slot B ranked first"
