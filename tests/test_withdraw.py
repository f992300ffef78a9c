"""`ccub withdraw`: consent withdrawn in the published data, its cards, and the models that used it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import config, read_jsonl, row, submission
from typer.testing import CliRunner

from ccub.cli import app
from ccub.steward import Steward
from ccub.steward.withdraw import AFFECTED_FILE, AffectedMark, Target, read_list, scan_affected

K = "korea/"
REASON = "moved away, private matter"
WHO = "ana.kwon"  # the withdrawing contributor


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate(root: Path, out: Path) -> int:
    result = CliRunner().invoke(app, ["validate", str(root), "--out", str(out), "--workers", "1"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code


def withdraw(out: Path, *args: str, runs: Path | None = None):
    extra = ["--runs", str(runs)] if runs else []
    return CliRunner().invoke(app, ["withdraw", str(out), *args, *extra, "--studies", str(out / "no-studies")])


def clean_rows(out: Path) -> list[dict]:
    return [r for m in sorted((out / "clean").glob("*/*/metadata.jsonl")) for r in read_jsonl(m)]


def three(root: Path) -> None:
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, contributor=WHO),
                      row("FOOD_3.jpg", 3, contributor=WHO), row("FOOD_4.jpg", 4)])


@pytest.fixture
def tiny_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))


def test_withdrawing_a_contributor_reaches_the_data_the_cards_and_the_run(root, tmp_path, tiny_cache):
    pytest.importorskip("diffusers")
    three(root)
    out = tmp_path / "out"
    validate(root, out)
    assert len(clean_rows(out)) == 4
    runs = tmp_path / "runs"
    trained = CliRunner().invoke(app, ["finetune", "--dataset", str(out / "clean" / "korea"), "--base", "tiny",
                                       "--variant", "M", "--steps", "1", "--output", str(runs / "korea-M")])
    assert trained.exit_code == 0, trained.output
    run_json = json.loads((runs / "korea-M" / "run.json").read_text())
    assert run_json["schema_version"] == 2 and run_json["data_contributors"] == ["ana.kwon", "c1"]
    assert sorted(run_json["data_sources"]) == sorted(sha(root / "korea" / f"FOOD_{i}.jpg") for i in range(1, 5))
    withdrawn_images = [out / "clean" / "korea" / "train" / "images" / f"FOOD_{i}.jpg" for i in (2, 3)]
    assert all(p.is_file() for p in withdrawn_images)
    korea = out / "clean" / "korea"
    negatives_before = {p for p in (korea / "negatives").rglob("*") if p.is_file()}

    result = withdraw(out, "--contributor", WHO, "--reason", REASON, runs=runs)
    assert result.exit_code == 0, result.output
    assert "2 published item(s) matched" in result.output and "2 row(s) and" in result.output
    assert str(runs / "korea-M") in result.output
    # The data: rows and images gone, the others untouched; the steward keeps the reason.
    assert [r["contributor"] for r in clean_rows(out)] == ["c1", "c1"]
    assert not any(p.exists() for p in withdrawn_images)
    assert (out / "clean" / "korea" / "train" / "images" / "FOOD_1.jpg").is_file()
    # Their generated negatives and prepare.json entries too; every negative still listed is there.
    listed = {korea / n for r in clean_rows(out) for n in r.get("negative_imgpath") or []}
    assert listed and all(p.is_file() for p in listed)
    assert {p for p in (korea / "negatives").rglob("*") if p.is_file()} < negatives_before
    manifest = json.loads((korea / "prepare.json").read_text())
    assert not [k for k in (*manifest["captions"], *manifest["negatives"]) if "FOOD_2" in k or "FOOD_3" in k]
    [recorded] = read_jsonl(out / "steward" / "withdrawals.jsonl")
    assert recorded["reason"] == REASON and len(recorded["items"]) == 2
    # The cards count what is left and say how many were withdrawn, never whose or why.
    card = (out / "clean" / "README.md").read_text("utf-8")
    assert "2 items withdrawn" in card and "### Changelog" in card
    croissant = (out / "clean" / "croissant.json").read_text("utf-8")
    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    assert sum(1 for r in report["records"] if r["output"]) == 2
    assert sorted(r["status"] for r in report["records"]) == ["accepted", "accepted"]
    assert report["summary"]["status"]["korea"]["withdrawn"] == 2
    for text in (card, croissant, result.output, *(p.read_text("utf-8", "replace") for p in (out / "reports").iterdir()
                                                   if p.is_file())):
        assert REASON not in text
    for text in (card, croissant, result.output, (out / "reports" / "report.json").read_text("utf-8"),
                 (out / "reports" / "report.html").read_text("utf-8"), (out / "reports" / "issues.csv").read_text()):
        assert WHO not in text
    # The run is marked, and the benchmark and the study refuse it without --allow-withdrawn.
    mark = AffectedMark.read(runs / "korea-M" / AFFECTED_FILE)
    assert (mark.kind, mark.items, mark.contributors) == ("run", 2, 1)
    assert WHO not in (runs / "korea-M" / AFFECTED_FILE).read_text()
    refused = CliRunner().invoke(app, ["benchmark", "--model", str(runs / "korea-M"), "--clip", "tiny"])
    assert refused.exit_code == 2 and "--allow-withdrawn" in refused.output and "korea-M" in refused.output
    study = CliRunner().invoke(app, ["study", "make", str(runs / "korea-M"), "--out", str(tmp_path / "study")])
    assert study.exit_code == 2 and "--allow-withdrawn" in study.output
    # Validating again: the withdrawn items stay out, also a copy sent again by someone else.
    (root / "korea" / "FOOD_9.jpg").write_bytes((root / "korea" / "FOOD_2.jpg").read_bytes())
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, contributor=WHO),
                      row("FOOD_3.jpg", 3, contributor=WHO), row("FOOD_4.jpg", 4),
                      row("FOOD_9.jpg", 9, contributor="c7")], images=False)
    assert validate(root, out) == 1
    assert sorted(r["source_file"] for r in clean_rows(out)) == [K + "FOOD_1.jpg", K + "FOOD_4.jpg"]
    assert "2 items withdrawn" in (out / "clean" / "README.md").read_text("utf-8")


def test_an_image_by_its_digest_and_a_second_run_changes_nothing(root, tmp_path):
    three(root)
    out = tmp_path / "out"
    validate(root, out)
    digest = sha(root / "korea" / "FOOD_4.jpg")
    result = withdraw(out, "--image", digest.upper())
    assert result.exit_code == 0, result.output
    assert sorted(r["source_file"] for r in clean_rows(out)) == [K + f"FOOD_{i}.jpg" for i in (1, 2, 3)]
    assert "1 item withdrawn" in (out / "clean" / "README.md").read_text("utf-8")
    before = (out / "clean" / "korea" / "train" / "metadata.jsonl").read_bytes()
    again = withdraw(out, "--image", digest)
    assert again.exit_code == 0 and "0 withdrawal(s) recorded" in again.output and "1 already" in again.output
    assert (out / "clean" / "korea" / "train" / "metadata.jsonl").read_bytes() == before
    assert len(read_jsonl(out / "steward" / "withdrawals.jsonl")) == 1
    bad = withdraw(out, "--image", "not-a-digest")
    assert bad.exit_code == 2 and "not a SHA-256" in bad.output


def test_a_list_with_hostile_lines_withdraws_the_good_ones_and_names_the_bad_by_line(root, tmp_path):
    three(root)
    out = tmp_path / "out"
    validate(root, out)
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"# withdrawals of December\n" + sha(root / "korea" / "FOOD_1.jpg").encode() + b"\n"
                        b"\n" + b"ana.kwon\n" + b"bad\x07bell\n" + b"\xff\xfe not utf-8\n" + b"x" * 3000 + b"\n")
    result = withdraw(out, "--list", str(listing))
    assert result.exit_code == 1, result.output
    for line in (5, 6, 7):
        assert f"list.txt:{line}:" in result.output.replace("\n", "")
    assert [r["source_file"] for r in clean_rows(out)] == [K + "FOOD_4.jpg"]
    steward = Steward.load(out, config().limits)
    assert steward.withdrawn_contributors == {WHO} and len(steward.withdrawn_images) == 3


def test_a_csv_list_reads_its_named_columns(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("name,contributor,image_sha256\nx,c5,\ny,,"
                    + "A" * 64 + "\nz,,abc\n", encoding="utf-8")
    targets, problems = read_list(path, config().limits)
    assert targets == [Target("contributor", "c5"), Target("image", "a" * 64)]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:4: image_sha256:")
    (tmp_path / "none.csv").write_text("name\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no column named contributor"):
        read_list(tmp_path / "none.csv", config().limits)


def test_an_interrupted_rebuild_leaves_the_old_clean_set_whole(root, tmp_path, monkeypatch):
    three(root)
    out = tmp_path / "out"
    validate(root, out)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "clean").rglob("*") if p.is_file()}
    import ccub.steward.withdraw as w

    def die(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w, "_index", die)  # after the new clean/ was staged, before the publish
    result = withdraw(out, "--contributor", WHO)
    assert result.exit_code == 2 and "disk is full" in result.output
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "clean").rglob("*") if p.is_file()}
    assert after == before
    assert not list(out.glob(".ccub-tmp-*"))
    # Recorded first, so the next run (or validate) carries it out.
    monkeypatch.undo()
    finished = withdraw(out)
    assert finished.exit_code == 0, finished.output
    assert [r["contributor"] for r in clean_rows(out)] == ["c1", "c1"]


def test_lineage_marks_runs_benchmarks_and_studies_that_used_withdrawn_data(tmp_path, monkeypatch):
    from benchmark.record import BenchmarkRecord
    from benchmark.study.bundle import StudyKey
    from finetune.run_record import RunRecord

    monkeypatch.chdir(tmp_path)
    fields = dict(base_model="tiny", base_path="/m", culture="korea", dataset="/d", data_card=None, images=2,
                  variant="M", loss_weights={}, backbones={}, steps=1, resumed_from=0, skipped_steps=0, seconds=1.0,
                  hardware={}, versions={}, smoke_run=True, config={"resolution": 32})
    RunRecord(output="runs/a", data_sources=["a" * 64], data_contributors=["c1"], **fields).write_to(Path("runs/a"))
    RunRecord(output="runs/b", data_sources=["b" * 64], data_contributors=["c3"], **fields).write_to(Path("runs/b"))
    bench = dict(culture="korea", clip="tiny", clip_random_weights=True, smoke_run=True, suite="built-in",
                 settings={}, seeds=[0], prompts=[], images=[])
    # b's benchmark compares a (whose LoRA used withdrawn data); c's scored against a withdrawn reference image.
    BenchmarkRecord(models=[{"name": "a", "lora": "runs/a/lora.safetensors"}], **bench).write(
        Path("runs/b/benchmark/benchmark.json"))
    RunRecord(output="runs/c", **fields).write_to(Path("runs/c"))
    BenchmarkRecord(models=[], reference_sources=["d" * 64], **bench).write(Path("runs/c/benchmark/benchmark.json"))
    StudyKey(study_id="s1", culture="korea", culture_name="Korea", seed=0, smoke_run=True, questions=[],
             per_participant=0, clip="tiny", settings={},
             models=[{"name": "c", "source": "runs/c/benchmark/benchmark.json", "lora": None}],
             items=[]).write(Path("study/korea/study.json"))
    found = scan_affected([Path("runs")], [Path("study")], {"a" * 64, "d" * 64}, set())
    assert [(a.kind, a.folder.as_posix(), a.items) for a in found] == [
        ("run", "runs/a", 1), ("benchmark", "runs/b/benchmark", 0), ("benchmark", "runs/c/benchmark", 1),
        ("study", "study/korea", 0)]
    # b, and its own benchmark
    assert [a.kind for a in scan_affected([Path("runs")], [], set(), {"c3"})] == ["run", "benchmark"]
