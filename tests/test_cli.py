"""The `ccub` command line: help, version, checks, config, validate's exit codes and outputs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import imagefolder, read_jsonl, row, write_image, write_jsonl
from typer.testing import CliRunner

from ccub import __version__
from ccub.checks.registry import all_specs
from ccub.cli import app

WIDE = {"COLUMNS": "200"}
CAPTIONS = [("FOOD_1.jpg", "a bowl of bibimbap with seasoned vegetables"),
            ("ARCH_2.jpg", "the main gate of Gyeongbokgung palace in Seoul")]


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


def flat(text: str) -> str:
    return " ".join(text.split())


def validate(root: Path, out: Path, *extra: str | Path):
    return invoke("validate", root, "--out", out, "--workers", "1", *extra)


@pytest.fixture
def clean_set(tmp_path) -> Path:
    root = tmp_path / "sub"
    imagefolder(root / "korea", CAPTIONS)
    return root


@pytest.fixture
def mixed_set(tmp_path) -> Path:
    """One accepted record, one rejected (no licence), one held for review (no consent)."""
    root = tmp_path / "sub"
    base = root / "korea"
    for i, name in enumerate(("FOOD_1.jpg", "FOOD_2.jpg", "PEOPLE_3.jpg")):
        write_image(base / name, 20 + i)
    write_jsonl(base / "metadata.jsonl", [
        row("FOOD_1.jpg", text="a bowl of bibimbap with seasoned vegetables"),
        row("FOOD_2.jpg", text="a plate of spicy rice cakes", license=""),
        row("PEOPLE_3.jpg", text="a woman selling kimchi at a busy market", consent=""),
    ])
    return root


# --- help, version, checks, config --------------------------------------------------------


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("validate", "checks", "config"):
        assert command in result.output
    sub = invoke("validate", "--help")
    assert sub.exit_code == 0
    for option in ("--out", "--config", "--culture", "--include-review", "--workers"):
        assert option in sub.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"ccub {__version__}"


def test_console_script_is_installed():
    exe = shutil.which("ccub") or str(Path(sys.executable).parent / "ccub")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ccub {__version__}"


def test_checks_lists_every_check_id():
    result = invoke("checks")
    assert result.exit_code == 0
    ids = [spec.id for spec in all_specs()]
    assert len(ids) == len(set(ids)) > 30
    assert [i for i in ids if i not in result.output] == []
    # Ids are never folded over two lines, even on a narrow terminal (grep-able).
    narrow = CliRunner().invoke(app, ["checks"], env={"COLUMNS": "70"})
    assert [i for i in ids if i not in narrow.output] == []


def test_checks_vocabulary_and_config_override(tmp_path):
    result = invoke("checks", "--vocabulary")
    assert result.exit_code == 0
    for word in ("cultures", "categories", "korea", "South Korea", "KOR", "FOOD", "ARCH"):
        assert word in result.output
    config = tmp_path / "ccub.toml"
    config.write_text('disable = ["quality.dark"]\n[severity]\n"caption.repeated" = "error"\n',
                      "utf-8")
    lines = invoke("checks", "--config", config).output.splitlines()
    assert "disabled" in next(line for line in lines if "quality.dark" in line)
    assert "error" in next(line for line in lines if "caption.repeated" in line)


def test_config_prints_toml_that_round_trips(tmp_path):
    result = invoke("config")
    assert result.exit_code == 0
    data = tomllib.loads(result.stdout)  # what `ccub config > file` keeps; stderr names the config read
    assert "config: built-in defaults" in result.stderr
    assert data["limits"]["max_megapixels"] == 50.0
    assert "korea" in data["cultures"] and "FOOD" in data["categories"]
    assert len(data["captions"]["placeholders"]) >= 3  # long lines survive unwrapped
    saved = tmp_path / "saved.toml"
    saved.write_text(result.stdout, "utf-8")
    again = invoke("config", "--config", saved)
    assert again.exit_code == 0
    assert tomllib.loads(again.stdout) == data
    assert str(saved) in again.stdout.splitlines()[0] and f"config: {saved}" in again.stderr


def test_ccub_toml_in_working_directory_is_used(tmp_path, monkeypatch, clean_set):
    work = tmp_path / "work"
    work.mkdir()
    (work / "ccub.toml").write_text("[limits]\nmax_caption_chars = 20\n", "utf-8")
    monkeypatch.chdir(work)
    shown = invoke("config")
    assert shown.exit_code == 0
    assert tomllib.loads(shown.stdout)["limits"]["max_caption_chars"] == 20
    assert "ccub.toml" in shown.stdout.splitlines()[0] and f"config: {work / 'ccub.toml'}" in shown.stderr
    # validate reads it too: both captions are now too long.
    result = validate(clean_set, tmp_path / "out")
    assert result.exit_code == 1
    report = json.loads((tmp_path / "out" / "reports" / "report.json").read_text("utf-8"))
    assert report["config"]["source"].endswith("ccub.toml")
    assert report["summary"]["checks"]["caption.too_long"] == 2


def test_invalid_ccub_toml_exits_2_naming_file_and_key(tmp_path, monkeypatch, clean_set):
    work = tmp_path / "work"
    work.mkdir()
    (work / "ccub.toml").write_text("[limits]\nmax_caption_charz = 20\n", "utf-8")
    monkeypatch.chdir(work)
    for args in (("config",), ("checks",), ("validate", clean_set, "--out", tmp_path / "out")):
        result = invoke(*args)
        assert result.exit_code == 2, args
        message = flat(result.output)
        assert "ccub.toml" in message and "max_caption_charz" in message
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    # A value of the wrong type is a config error too, never an internal error later in the run.
    (work / "ccub.toml").write_text('[geometry]\nmin_short_side_error = "big"\n', "utf-8")
    result = invoke("validate", clean_set, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "internal error" not in result.output
    assert "[geometry]: min_short_side_error = 'big' (str); expected an integer" in flat(result.output)
    assert not (tmp_path / "out").exists()
    bad_severity = tmp_path / "bad.toml"
    bad_severity.write_text('[severity]\n"caption.nope" = "error"\n', "utf-8")
    result = invoke("checks", "--config", bad_severity)
    assert result.exit_code == 2 and "caption.nope" in flat(result.output)


# --- validate: exit codes -----------------------------------------------------------------


def test_exit_0_on_a_clean_set(tmp_path, clean_set):
    result = validate(clean_set, tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "out" / "clean" / "korea" / "train" / "metadata.jsonl")
    assert [r["text"] for r in rows] == [c for _, c in CAPTIONS]


def test_exit_1_when_rejected_or_held_for_review(tmp_path, mixed_set):
    assert validate(mixed_set, tmp_path / "out").exit_code == 1
    # Only held for review (nothing rejected) is also 1.
    review_only = tmp_path / "review"
    imagefolder(review_only / "korea", [("PEOPLE_1.jpg", "an old man playing the janggu drum")],
                consent="")
    assert validate(review_only, tmp_path / "out2").exit_code == 1
    report = json.loads((tmp_path / "out2" / "reports" / "report.json").read_text("utf-8"))
    assert report["summary"]["status"] == {"korea": {"review": 1}}


def test_exit_2_for_unusable_paths(tmp_path, clean_set):
    missing = validate(tmp_path / "nowhere", tmp_path / "out")
    assert missing.exit_code == 2 and "not a folder" in flat(missing.output)
    inside = validate(clean_set, clean_set / "out")
    assert inside.exit_code == 2 and "inside the submissions folder" in flat(inside.output)
    assert not (clean_set / "out").exists()
    a_file = clean_set / "korea" / "metadata.jsonl"
    given_file = validate(a_file, tmp_path / "out")
    assert given_file.exit_code == 2 and "not a folder" in flat(given_file.output)
    assert not (tmp_path / "out").exists()
    assert all("Traceback" not in r.output for r in (missing, inside, given_file))


# --- validate: outputs --------------------------------------------------------------------


def test_validate_writes_clean_set_and_reports(tmp_path, mixed_set):
    out = tmp_path / "out"
    result = validate(mixed_set, out)
    assert result.exit_code == 1
    rows = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    assert [r["file_name"] for r in rows] == ["images/FOOD_1.jpg"]
    assert (out / "clean" / "korea" / "train" / "images" / "FOOD_1.jpg").is_file()

    reports = out / "reports"
    report = json.loads((reports / "report.json").read_text("utf-8"))
    assert report["schema"] == "ccub.validate.report" and report["schema_version"] == 3
    assert report["config"]["limits"]["max_caption_chars"] == 2000
    assert report["config"]["source"] == "built-in defaults"
    assert report["summary"]["exit_code"] == 1
    assert report["summary"]["status"]["korea"] == {"accepted": 1, "rejected": 1, "review": 1}
    statuses = {r["image"]: r["status"] for r in report["records"]}
    assert statuses == {"korea/FOOD_1.jpg": "accepted", "korea/FOOD_2.jpg": "rejected",
                        "korea/PEOPLE_3.jpg": "review"}
    assert report["issues"]
    for issue in report["issues"]:
        for key in ("check", "severity", "message", "fix"):
            assert issue[key], (key, issue)
    checks = {i["check"] for i in report["issues"]}
    assert {"rights.license_missing", "rights.consent_missing"} <= checks

    with (reports / "issues.csv").open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["contributor", "culture", "file", "record", "line", "field", "check",
                        "severity", "message", "fixed", "fix"]
    assert len(table) - 1 == len(report["issues"])
    assert sorted(r[6] for r in table[1:]) == sorted(i["check"] for i in report["issues"])

    md = (reports / "report.md").read_text("utf-8")
    assert md.startswith("# ccub validate report") and "rights.license\\_missing" in md
    html = (reports / "report.html").read_text("utf-8")
    assert "<html" in html.lower() and "rights.license_missing" in html
    # The summary table on the console names the culture.
    assert "korea" in result.output


def test_include_review_exports_review_records(tmp_path, mixed_set):
    without = validate(mixed_set, tmp_path / "a")
    with_review = validate(mixed_set, tmp_path / "b", "--include-review")
    assert without.exit_code == with_review.exit_code == 1
    names = {p: [r["file_name"] for r in read_jsonl(
        tmp_path / p / "clean" / "korea" / "train" / "metadata.jsonl")] for p in ("a", "b")}
    assert names == {"a": ["images/FOOD_1.jpg"],
                     "b": ["images/FOOD_1.jpg", "images/PEOPLE_3.jpg"]}
    report = json.loads((tmp_path / "b" / "reports" / "report.json").read_text("utf-8"))
    assert report["output"]["include_review"] is True


def test_workers_do_not_change_the_output(tmp_path):
    root = tmp_path / "sub"
    imagefolder(root / "korea", [(f"FOOD_{i}.jpg", f"a bowl of dish number {i} with rice")
                                 for i in range(5)])
    one = validate(root, tmp_path / "one")
    two = invoke("validate", root, "--out", tmp_path / "two", "--workers", "2")
    assert one.exit_code == two.exit_code == 0, two.output
    clean_one, clean_two = tmp_path / "one" / "clean", tmp_path / "two" / "clean"
    files = sorted(p.relative_to(clean_one) for p in clean_one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(clean_two) for p in clean_two.rglob("*") if p.is_file())
    assert len(files) == 11  # 5 images, metadata.jsonl, README.md, croissant.json, 3 card plots
    for rel in files:
        assert (clean_one / rel).read_bytes() == (clean_two / rel).read_bytes(), rel
    for name in ("one", "two"):
        report = json.loads((tmp_path / name / "reports" / "report.json").read_text("utf-8"))
        assert report["input"]["images_analysed"] == 5


def test_csv_issues_parse_back_with_awkward_messages(tmp_path):
    root = tmp_path / "sub"
    imagefolder(root / "korea", [("x.jpg", 'rice,\n"hot"')], license="Not A Licence")
    assert validate(root, tmp_path / "out").exit_code == 1
    text = (tmp_path / "out" / "reports" / "issues.csv").read_text("utf-8")
    parsed = {r["check"]: r for r in csv.DictReader(io.StringIO(text))}
    assert "Not A Licence" in parsed["rights.license_invalid"]["message"]
    assert 'rice, "hot"' in parsed["caption.too_short"]["message"]


def test_licence_with_a_comma_is_a_finding_not_a_crash(tmp_path):
    root = tmp_path / "sub"
    imagefolder(root / "korea", [("x.jpg", "a bowl of bibimbap with vegetables")],
                license="CC-BY-4.0, CC0-1.0")
    result = validate(root, tmp_path / "out")
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "out" / "reports" / "report.json").read_text("utf-8"))
    assert report["summary"]["checks"]["rights.license_invalid"] == 1


def test_card_init_writes_a_template_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = invoke("card", "--init")
    assert first.exit_code == 0, first.output
    template = tomllib.loads((tmp_path / "card.toml").read_text("utf-8"))
    assert {"license", "publication_date", "citation", "creators", "version"} <= set(template)
    again = invoke("card", "--init")
    assert again.exit_code == 2 and "never overwrites" in flat(again.output)


def test_validate_writes_cards_and_card_regenerates_them(clean_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = validate(clean_set, out)
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    # The licence comes from the data (every record is CC-BY-4.0); the rest must be written.
    assert "card incomplete: add publication_date, citation, creators, version to" in text
    readme = (out / "clean" / "README.md").read_text("utf-8")
    assert "ccub_card_status: incomplete" in readme
    assert json.loads((out / "clean" / "croissant.json").read_text("utf-8"))["name"]
    (tmp_path / "card.toml").write_text(
        'version = "1.0.0"\nlicense = "CC-BY-4.0"\npublication_date = "2026-11-29"\n'
        'citation = "@misc{x, title={x}}"\ncreators = ["Kim Minji"]\n', "utf-8")
    regenerated = invoke("card", out)
    assert regenerated.exit_code == 0, regenerated.output
    assert "incomplete" not in flat(regenerated.output)
    assert "ccub_card_status: complete" in (out / "clean" / "README.md").read_text("utf-8")


def test_card_needs_a_validate_output(tmp_path):
    result = invoke("card", tmp_path / "nothing")
    assert result.exit_code == 2 and "report.json not found" in flat(result.output)


def test_help_fits_80_columns_without_internal_types_or_cut_flags():
    for args in (["--help"], ["validate", "--help"], ["benchmark", "--help"], ["finetune", "--help"],
                 ["prepare", "--help"], ["config", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, args
        text = result.output
        assert max(len(line) for line in text.splitlines()) <= 80, args
        assert "…" not in text and "list[" not in text, args
        assert "[default: 2]" not in text, args
    assert "--no-include-review" in CliRunner().invoke(app, ["validate", "--help"], env={"COLUMNS": "80"}).output
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).output
    assert "list[Path]" not in CliRunner().invoke(app, ["benchmark", "--help"], env={"COLUMNS": "80"}).output


def test_console_tables_fold_long_names_instead_of_cutting_them():
    from rich.console import Console

    import ccub.commands.benchmark as command
    from benchmark.run import Outcome
    from benchmark.stats import Comparison

    comparisons = [Comparison(metric=metric, model=model, baseline="base", n_prompts=4, n_pairs=8, base_mean=0.3,
                              model_mean=0.3, difference=-0.00044, ci_low=-0.0123, ci_high=0.0157, confidence=0.95,
                              win_rate=0.5, p_value=0.5, p_adjusted=0.04321, higher_is_better=True)
                   for metric in ("nearest_training_similarity", "cultural_relevance")
                   for model in ("india-MPC", "india-lora-rank64-long-schedule")]
    outcome = Outcome(output=Path("runs/india-MPC/benchmark"), comparisons=comparisons, sets={}, notes=[],
                      smoke_run=False, files=[], generated=0, counts={"prompts": 4})
    console = Console(width=80, record=True, force_terminal=False)
    original = command.console
    command.console = console
    try:
        command.print_benchmark_summary(outcome)
    finally:
        command.console = original
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("metric"))
    start = lines[header].index("model")
    rows = lines[header + 2:]
    rows = rows[:next(i for i, line in enumerate(rows) if not line.strip())]  # the table, before the notes
    metrics = "".join(line[:start].strip() for line in rows)
    models = "".join(line[start:].split()[0] for line in rows if line[start:].strip())
    assert "nearest_training_similarity ↑cultural_relevance ↑" in metrics.replace("↑", " ↑").replace("  ", " ")
    assert "india-MPCindia-lora-rank64-long-schedule" in models
    assert "-0.00044" in text and "[-0.012, +0.016]" in text


def test_mistyped_cultures_are_answered_at_once_with_the_closest(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "data" / "clean" / "india").mkdir(parents=True)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    cases = [
        (["validate", tmp_path / "subs", "--culture", "koria", "--out", tmp_path / "out"], "did you mean korea?"),
        (["validate", tmp_path / "subs", "--category", "fod", "--out", tmp_path / "out"], "did you mean FOOD?"),
        (["finetune", "--culture", "indai", "--data", tmp_path / "data", "--base", "tiny"], "did you mean india?"),
        (["prepare", "--culture", "indai", "--data", tmp_path / "data", "--base", "tiny"], "did you mean india?"),
        (["benchmark", "--model", tmp_path / "runs" / "x", "--culture", "koria"], "did you mean korea?"),
        (["benchmark", "--model", tmp_path / "runs" / "missing"], "no such run folder"),
    ]
    for args, expected in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in flat(result.output), (args, result.output)
    assert not (tmp_path / "out").exists()


def test_a_culture_named_by_its_name_finds_its_folder(tmp_path):
    from ccub.commands.common import culture_dataset
    from ccub.config import load_config

    (tmp_path / "clean" / "korea").mkdir(parents=True)
    assert culture_dataset(load_config(None), "South Korea", tmp_path) == tmp_path / "clean" / "korea"
    assert culture_dataset(load_config(None), "KR", tmp_path) == tmp_path / "clean" / "korea"
