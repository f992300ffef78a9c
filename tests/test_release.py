"""Versioned releases of the clean set (`ccub release`), their changelogs (`ccub diff`) and the
lineage of a run (`ccub lineage`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import caption_for, config, make_image, read_jsonl, row, run, snapshot, submission
from typer.testing import CliRunner

from ccub.cli import app
from ccub.recordfile import RecordError
from ccub.steward import Steward, Withdrawal, caption_digest
from ccub.steward.releases import (
    RELEASE_FILE,
    ReleaseError,
    ReleaseRecord,
    clean_digest,
    read_release,
    version_key,
)

SHORT = "kimchi stew"  # held for review (caption.too_short) until a reviewer decides


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def decide(path: Path, image: Path, verdict: str, at: str) -> Path:
    line = {"image_sha256": sha(image), "caption_sha256": caption_digest(SHORT), "decision": verdict,
            "reviewer": "steward-1", "at": at, "reason": "checked", "record": "korea/h.jpg"}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Release 1.0 of six records, then 1.1 after: b's caption changed, c's file removed, d's image
    replaced, e withdrawn, h rejected on review, f and g added. Then one more record, i, validated
    but not released."""
    tmp = tmp_path_factory.mktemp("releases")
    root, data = tmp / "submissions", tmp / "data"
    rows = {"a": row("a.jpg", 0, category="FOOD", contributor="c1"),
            "b": row("b.jpg", 1, category="FOOD", contributor="c2"),
            "c": row("c.jpg", 2, category="ARCH", contributor="c1"),
            "d": row("d.jpg", 3, category="FOOD", contributor="c3"),
            "e": row("e.jpg", 4, category="ARCH", contributor="c2"),
            "h": row("h.jpg", 5, category="FOOD", contributor="c3", text=SHORT)}
    submission(root, list(rows.values()))
    korea = root / "korea"
    accept = decide(tmp / "accept.jsonl", korea / "h.jpg", "accept", "2026-12-01T10:00:00+00:00")
    first = run(root, data, reports=True, decisions=accept)
    assert sum(bool(o.output) for o in first.outcomes) == 6
    made = invoke("release", "1.0", data)
    assert made.exit_code == 0, made.output
    v10 = {name: sha(korea / f"{name}.jpg") for name in rows}
    before = snapshot(data / "releases" / "1.0")

    # The changes of 1.1.
    rows["b"] = row("b.jpg", 1, category="FOOD", contributor="c2", text=caption_for(20))
    del rows["c"]
    (korea / "c.jpg").unlink()
    (korea / "d.jpg").unlink()
    make_image(korea / "d.jpg", seed=99)
    Steward.load(data, config().limits).add_withdrawal(
        Withdrawal(kind="image", value=v10["e"], at="2026-12-02T10:00:00+00:00"))
    reject = decide(tmp / "reject.jsonl", korea / "h.jpg", "reject", "2026-12-03T10:00:00+00:00")
    make_image(korea / "f.jpg", seed=31)
    make_image(korea / "g.jpg", seed=32)
    rows["f"] = row("f.jpg", 6, category="FOOD", contributor="c4")
    rows["g"] = row("g.jpg", 7, category="ARCH", contributor="c1")
    submission(root, list(rows.values()))
    second = run(root, data, reports=True, decisions=reject)
    assert sum(bool(o.output) for o in second.outcomes) == 5
    after_validate = snapshot(data / "releases" / "1.0")
    made = invoke("release", "1.1", data)
    assert made.exit_code == 0, made.output
    v11 = {name: sha(korea / f"{name}.jpg") for name in rows}

    # One more record, validated and not released.
    make_image(korea / "i.jpg", seed=33)
    rows["i"] = row("i.jpg", 8, category="FOOD", contributor="c5")
    submission(root, list(rows.values()))
    run(root, data, reports=True)
    return {"data": data, "v10": v10, "v11": v11, "before": before, "after_validate": after_validate,
            "release_output": made.output}


def test_the_changelog_of_1_1_is_what_was_done(released):
    data, v10, v11 = released["data"], released["v10"], released["v11"]
    folder, record = read_release(data, "1.1")
    log = record.log()
    assert (record.previous, log.old, log.new, log.before, log.after) == ("1.0", "1.0", "1.1", 6, 5)
    assert log.added == sorted([v11["d"], v11["f"], v11["g"]])
    assert log.removed == {"withdrawn": [v10["e"]], "rejected": [v10["h"]], "replaced": [v10["d"]],
                           "other": [v10["c"]]}
    assert log.captions_changed == [v10["b"]]
    assert log.cells == [
        {"culture": "korea", "category": "ARCH", "before": 2, "after": 1, "added": 1, "removed": 2,
         "captions_changed": 0},
        {"culture": "korea", "category": "FOOD", "before": 4, "after": 4, "added": 2, "removed": 2,
         "captions_changed": 1}]
    assert log.contributors == [
        {"contributor": "c1", "added": 1, "removed": 1, "captions_changed": 0},
        {"contributor": "c2", "added": 0, "removed": 1, "captions_changed": 1},
        {"contributor": "c3", "added": 1, "removed": 2, "captions_changed": 0},
        {"contributor": "c4", "added": 1, "removed": 0, "captions_changed": 0}]
    assert (record.images, record.contributors, record.counts) == (5, 4, {"korea": {"ARCH": 1, "FOOD": 4}})
    # The digest is the sha256 of SHA256SUMS, which lists every file of the culture folders.
    sums = (folder / "SHA256SUMS").read_text()
    assert record.digest == hashlib.sha256(sums.encode()).hexdigest() == clean_digest(folder / "clean")
    listed = {line.split("  ", 1)[1] for line in sums.splitlines()}
    assert listed == {"korea/train/metadata.jsonl", *(f"korea/train/images/{n}.jpg" for n in "abdfg")}
    assert record.files == 6
    assert "4 added" not in released["release_output"] and "1.0 -> 1.1: 6 -> 5 images; 3 added, 4 removed" in \
        released["release_output"]
    # The first release lists everything as added.
    first = read_release(data, "1.0")[1].log()
    assert (first.old, first.before, first.after, len(first.added)) == (None, 0, 6, 6)


def test_the_release_cards_carry_the_version_and_the_changelog(released):
    clean = released["data"] / "releases" / "1.1" / "clean"
    assert json.loads((clean / "croissant.json").read_text())["version"] == "1.1"
    card = (clean / "README.md").read_text()
    assert "- **Version:** 1.1" in card
    changelog = card.split("## Changelog", 1)[1].split("\n## ", 1)[0]
    assert "release 1.1" in changelog and "Compared with release 1.0: 3 images added, 4 removed (1 withdrawn, " \
        "1 rejected, 1 replaced, 1 other), 1 caption changed; 6 → 5 images" in changelog
    assert "| korea | ARCH | 2 | 1 | 1 | 2 | 0 |" in changelog and "| korea | FOOD | 4 | 4 | 2 | 2 | 1 |" in changelog
    assert "| c1 " not in changelog and "c2" not in changelog  # contributor ids stay in release.json


def test_a_release_is_unchanged_by_later_validations_and_releases(released):
    data = released["data"]
    assert released["after_validate"] == released["before"] == snapshot(data / "releases" / "1.0")
    folder, record = read_release(data, "1.0")
    assert clean_digest(folder / "clean") == record.digest
    assert not os.access(folder / RELEASE_FILE, os.W_OK) or os.geteuid() == 0
    assert not (folder / RELEASE_FILE).stat().st_mode & 0o222


def test_diff_between_releases_and_against_the_current_set(released):
    data = released["data"]
    as_json = invoke("diff", "1.0", "1.1", data, "--json")
    assert as_json.exit_code == 0, as_json.output
    found = json.loads(as_json.output)
    recorded = read_release(data, "1.1")[1].changelog
    assert {k: v for k, v in found.items() if k != "summary"} == recorded
    assert found["summary"] == {"added": 3, "removed": 4, "captions_changed": 1, "removed_by_cause": {
        "withdrawn": 1, "rejected": 1, "replaced": 1, "other": 1}}
    current = invoke("diff", "1.1", "current", data)
    assert current.exit_code == 0, current.output
    assert "1.1 -> current: 5 -> 6 images; 1 added, 0 removed, 0 captions changed" in current.output
    assert "c5" in current.output and "per culture and category" in current.output
    machine = json.loads(invoke("diff", "1.1", "current", data, "--json").output)
    newest = [r["source_sha256"] for r in read_jsonl(data / "clean/korea/train/metadata.jsonl")
              if r["contributor"] == "c5"]
    assert (machine["old"], machine["new"], machine["added"]) == ("1.1", "current", newest)
    for args, message in ((("diff", "1.0", "9.9", data), "no release 9.9"),
                          (("diff", "current", "1.0", data), "must be a release"),
                          (("diff", "1.0", "x!", data), "not a release version")):
        refused = invoke(*args)
        assert refused.exit_code == 2 and message in refused.output, refused.output


def test_an_existing_an_older_or_a_malformed_version_is_refused(released):
    data = released["data"]
    for version, message in (("1.1", "release 1.1 exists, and a release is never rewritten"),
                             ("1.1.0", "is release 1.1 (the same version)"),
                             ("1.0.5", "release 1.1 is newer than 1.0.5"),
                             ("v2", "not a release version"), ("../x", "not a release version"),
                             ("1", "not a release version")):
        refused = invoke("release", version, data)
        assert refused.exit_code == 2 and message in refused.output, (version, refused.output)
    assert sorted(p.name for p in (data / "releases").iterdir()) == ["1.0", "1.1"]
    assert version_key("1.0") < version_key("1.0.1-rc.1") < version_key("1.0.1") < version_key("1.10")


def test_nothing_to_release_is_refused(tmp_path):
    refused = invoke("release", "1.0", tmp_path / "data")
    assert refused.exit_code == 2 and "no clean set to release" in refused.output


def _hostile(released, tmp_path, **changes) -> Path:
    folder = tmp_path / "data" / "releases" / "2.0"
    folder.mkdir(parents=True)
    source = released["data"] / "releases" / "1.1" / RELEASE_FILE
    data = json.loads(source.read_text()) | {"version": "2.0"}
    data["changelog"]["new"] = "2.0"
    for key, value in changes.items():
        if key.startswith("changelog_"):
            data["changelog"][key.removeprefix("changelog_")] = value
        else:
            data[key] = value
    (folder / RELEASE_FILE).write_text(json.dumps(data))
    return tmp_path / "data"


@pytest.mark.parametrize(("changes", "message"), [
    ({"version": "2.0; rm -rf /"}, "is not a release version"),
    ({"version": "3.0", "changelog_new": "3.0"}, "version '3.0', but the folder is '2.0'"),
    ({"images": "five"}, "images = 'five' (str); expected an integer"),
    ({"digest": "abc"}, "digest 'abc' is not a SHA-256"),
    ({"counts": {"korea": {"FOOD": -1}}}, "counts must not be negative"),
    ({"changelog": ["not", "an", "object"]}, "changelog = ['not', 'an', 'object'] (list)"),
    ({"changelog_removed": {"stolen": []}}, "unknown cause(s) stolen"),
    ({"changelog_cells": [{"culture": 1}]}, "cells: a row is not"),
    ({"schema_version": 9}, "ccub.release version 9, but this ccub reads version 1"),
    ({"surprise": True}, "unknown key(s) surprise"),
])
def test_a_hostile_release_record_is_refused_with_a_clear_message(released, tmp_path, changes, message):
    data = _hostile(released, tmp_path, **changes)
    with pytest.raises(ReleaseError) as caught:
        read_release(data, "2.0")
    assert message in str(caught.value) and RELEASE_FILE in str(caught.value)
    refused = invoke("diff", "2.0", "current", data)
    assert refused.exit_code == 2 and message in refused.output.replace("\n", "")


def test_a_release_record_reads_back_as_written(released):
    path = released["data"] / "releases" / "1.1" / RELEASE_FILE
    assert ReleaseRecord.read(path).version == "1.1"
    with pytest.raises(RecordError, match="not found"):
        ReleaseRecord.read(path.parent / "nothing.json")


# ---------------------------------------------------------------------------- lineage


@pytest.fixture(autouse=True)
def shared_tiny_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))


def test_a_run_on_a_release_records_it_and_lineage_prints_the_chain(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from finetune.config import load_scoft_config
    from finetune.run_record import RunRecord
    from finetune.train import RunOptions, train

    root, data = tmp_path / "submissions", tmp_path / "data"
    submission(root, [row("a.jpg", 0, category="FOOD", blip_text="a bowl of stew"),
                      row("b.jpg", 1, category="FOOD", blip_text="a bowl of soup")])
    run(root, data, reports=True)
    assert invoke("release", "1.0", data).exit_code == 0
    release = data / "releases" / "1.0"
    dataset = release / "clean" / "korea"
    # Unprepared (no negatives): finetune would write into the frozen release, and refuses.
    refused = invoke("finetune", "--dataset", dataset, "--base", "tiny", "--output", tmp_path / "x")
    assert refused.exit_code == 2 and "is in release 1.0" in refused.output and "frozen" in refused.output
    assert not (tmp_path / "x").exists()
    # The SCoFT-free variant needs no negatives: train it on the release directly.
    cfg = load_scoft_config(None, base="tiny", variant="lora", resolution=32, max_train_steps=1,
                            checkpointing_steps=10, validation_steps=0, validation_inference_steps=1,
                            sampler_steps=2, rank=2, tensorboard=False)
    out = tmp_path / "runs" / "korea-lora"
    train(cfg, RunOptions(dataset=dataset, output=out, culture="korea"))
    record = RunRecord.read_from(out)
    digest = read_release(data, "1.0")[1].digest
    assert (record.release, record.release_digest) == ("1.0", digest)
    from benchmark.runs import load_run, models_for

    base, mine = models_for([load_run(out)])  # what benchmark.json's models carry on
    assert (mine.release, mine.release_digest, base.release) == ("1.0", digest, None)

    # A study folder naming the run's benchmark (a benchmark and a study, written as the stages do).
    from benchmark.record import BenchmarkRecord
    from benchmark.study.bundle import StudyKey

    bench = out / "benchmark" / "benchmark.json"
    bench.parent.mkdir()
    model = {"name": "korea-lora", "key": "k1", "base": "tiny", "lora": str(out / "x"), "random_weights": True,
             "release": record.release, "release_digest": record.release_digest}
    BenchmarkRecord(culture="korea", clip="tiny", clip_random_weights=True, smoke_run=True, suite="built-in",
                    settings={}, seeds=[1], models=[model], prompts=[], images=[]).write(bench)
    study = tmp_path / "study"
    study.mkdir()
    StudyKey(study_id="s-1", culture="korea", culture_name="South Korea", seed=0, smoke_run=True, questions=[],
             per_participant=1, clip="tiny", settings={}, models=[model | {"source": str(bench)}],
             items=[]).write(study / "study.json")
    (tmp_path / "study-other").mkdir()
    monkeypatch.chdir(tmp_path)
    shown = invoke("lineage", out)
    assert shown.exit_code == 0, shown.output
    text = shown.output.replace("\n", " ")
    for part in (str(root), "release", "1.0", digest[:20], "base tiny, variant lora, 1 steps", "benchmark",
                 "study", "s-1"):
        assert part in text or part in shown.output, part
    chain = json.loads(invoke("lineage", out, "--json").output)
    assert [s["stage"] for s in chain["chain"]] == ["submissions", "release", "run", "benchmark", "study"]
    assert chain["chain"][1]["facts"]["matches"] is True and chain["notes"] == []

    # Training on the current clean set records "current" and the same digest (the same files).
    from ccub.steward.releases import dataset_lineage

    assert dataset_lineage(data / "clean" / "korea") == ("current", digest)
    assert dataset_lineage(tmp_path / "submissions") == (None, None)


def test_a_run_json_of_version_1_still_reads_without_a_release(tmp_path):
    from finetune.run_record import RUN_FILE, RunRecord

    fields = dict(output="runs/x", base_model="tiny", base_path="/t", culture="korea", dataset="/d", data_card=None,
                  images=4, variant="MPC", loss_weights={}, backbones={}, steps=2, resumed_from=0, skipped_steps=0,
                  seconds=1.0, hardware={}, versions={}, smoke_run=True, config={"resolution": 32})
    (tmp_path / RUN_FILE).write_text(json.dumps({"schema": "ccub.run", "schema_version": 1, **fields}))
    record = RunRecord.read_from(tmp_path)
    assert (record.release, record.release_digest) == (None, None)
    shown = invoke("lineage", tmp_path)
    assert shown.exit_code == 0 and "records no release" in shown.output.replace("\n", " ")
