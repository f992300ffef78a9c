"""`ccub config --write`: a commented template of every section that loads back to the same
settings, never overwrites a file, and carries SCoFT's settings as [scoft]."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from ccub.cli import app
from ccub.config import THRESHOLD_SECTIONS, ConfigError, load_config
from ccub.config_template import field_comments
from finetune.config import ScoftConfig, load_scoft_config


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_template_round_trips_to_the_defaults(tmp_path):
    path = tmp_path / "mine.toml"
    result = invoke("config", "--write", path)
    assert result.exit_code == 0, result.output
    data = tomllib.loads(path.read_text("utf-8"))
    assert set(THRESHOLD_SECTIONS) | {"scoft", "severity", "disable"} <= set(data)
    loaded = load_config(path)
    defaults = load_config(None).to_dict()  # the working folder is empty: built-in defaults
    assert loaded.to_dict() == defaults | {"scoft": data["scoft"]}
    assert load_scoft_config(None, loaded) == load_scoft_config(None)
    assert dataclasses.asdict(ScoftConfig()) == data["scoft"]


def test_template_carries_the_comments_written_in_the_code(tmp_path):
    path = tmp_path / "mine.toml"
    invoke("config", "--write", path)
    text = path.read_text("utf-8")
    for name, comments in field_comments(ScoftConfig).items():
        for line in comments:
            assert f"# {line}".rstrip() in text, (name, line)
    assert "# Files over these caps are rejected before they are decoded" in text  # [limits]
    assert "\n[scoft]\n" in text and "\n[duplicates]\n" in text


def test_write_never_overwrites(tmp_path):
    path = tmp_path / "ccub.toml"
    path.write_text("# mine\n")
    result = invoke("config", "--write", path)
    assert result.exit_code == 2 and "never overwrites" in result.output
    assert path.read_text() == "# mine\n"


def test_edited_template_values_reach_validate_and_finetune(tmp_path):
    path = tmp_path / "ccub.toml"
    invoke("config", "--write", path)
    text = path.read_text("utf-8").replace("max_file_mb = 50.0", "max_file_mb = 12.5").replace(
        'variant = "MPC"', 'variant = "MP"')
    path.write_text(text, "utf-8")
    cfg = load_config(path)
    assert cfg.limits.max_file_mb == 12.5
    assert load_scoft_config(None, cfg).variant == "MP"
    # A --config file's [scoft] table and flags come after ccub.toml's.
    scoft = tmp_path / "scoft.toml"
    scoft.write_text('[scoft]\nvariant = "M"\nrank = 8\n')
    assert (load_scoft_config(scoft, cfg).variant, load_scoft_config(scoft, cfg, rank=4).rank) == ("M", 4)


def test_a_wrong_scoft_value_in_ccub_toml_names_the_file_and_table(tmp_path):
    path = tmp_path / "ccub.toml"
    path.write_text('[scoft]\nvariant = "lroa"\n')
    try:
        load_scoft_config(None, load_config(path))
    except ConfigError as exc:
        assert f"{path} [scoft]" in str(exc) and "did you mean lora?" in str(exc)
    else:
        raise AssertionError("variant MCP was accepted")
    path.write_text('[scoft]\nrank = "big"\n')
    try:
        load_scoft_config(None, load_config(path))
    except ConfigError as exc:
        assert f"{path} [scoft]" in str(exc) and "rank" in str(exc)
    else:
        raise AssertionError("rank = 'big' was accepted")


def test_every_command_names_the_config_it_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ccub.toml").write_text("[limits]\nmax_file_mb = 10.0\n")
    result = invoke("checks")
    assert result.exit_code == 0 and "config: ccub.toml" in result.stderr.replace(str(tmp_path) + "/", "")


def test_submission_init_writes_a_template_that_validate_applies(tmp_path):
    import tomllib

    from helpers import make_image

    from ccub.readers import DEFAULTABLE

    folder = tmp_path / "subs" / "korea"
    result = invoke("submission", "init", folder, "--culture", "South Korea", "--license", "CC-BY-4.0",
                    "--creator", "Kim Min-ji", "--consent", "n/a")
    assert result.exit_code == 0, result.output
    data = tomllib.loads((folder / "submission.toml").read_text("utf-8"))
    assert data == {"culture": "korea", "license": "CC-BY-4.0", "creator": "Kim Min-ji", "consent": "n/a",
                    "caption_source": "community"}
    assert set(data) <= set(DEFAULTABLE)
    make_image(folder / "FOOD_1.jpg", seed=1)
    (folder / "FOOD_1.jpg.txt").write_text("a bowl of kimchi stew on a wooden table", encoding="utf-8")
    validated = invoke("validate", tmp_path / "subs", "--out", tmp_path / "out", "--workers", "1")
    assert validated.exit_code == 0, validated.output
    assert (tmp_path / "out" / "clean" / "korea" / "train" / "images" / "FOOD_1.jpg").is_file()


def test_submission_init_refuses_an_existing_file_and_an_unknown_culture(tmp_path):
    (tmp_path / "submission.toml").write_text("culture = 'korea'\n")
    result = invoke("submission", "init", tmp_path)
    assert result.exit_code == 2 and "never overwritten" in result.output
    assert (tmp_path / "submission.toml").read_text() == "culture = 'korea'\n"
    result = invoke("submission", "init", tmp_path / "new", "--culture", "koria")
    assert result.exit_code == 2 and "did you mean korea?" in result.output
    assert not (tmp_path / "new").exists()
