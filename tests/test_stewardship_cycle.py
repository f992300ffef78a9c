"""docs/stewardship.md's cycle on the bundled examples, through the command line: two batches,
a review decision, two releases, a tiny run, a withdrawal that reaches it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccub.cli import app

EXAMPLES = Path(__file__).parents[1] / "examples" / "submissions"


def ccub(*args: str | Path):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/submissions not generated")
def test_the_stewardship_cycle_on_the_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, "subs")
    shutil.move("subs/nigeria", "nigeria-later")
    assert ccub("validate", "subs").exit_code == 1  # the examples hold planted problems
    assert ccub("release", "1.0").exit_code == 0
    shutil.copytree("nigeria-later", "subs/nigeria")
    ccub("validate", "subs")
    queue = ccub("review")
    assert queue.exit_code == 0 and "held for review (5)" in queue.output
    [line] = [line for line in queue.output.splitlines() if "nigeria/CITIES/traffic.jpg" in line]
    review_id = line.split()[0]
    decided = ccub("review", "--accept", review_id, "--reviewer", "Adaeze O.", "--reason", "a fair caption")
    assert decided.exit_code == 0, decided.output
    ccub("validate", "subs")
    rows = [json.loads(line) for line in Path("data/clean/nigeria/train/metadata.jsonl").read_text().splitlines()]
    [accepted] = [r for r in rows if r["source_file"] == "nigeria/CITIES/traffic.jpg"]
    assert (accepted["reviewed_by"], accepted["review_reason"]) == ("Adaeze O.", "a fair caption")
    assert ccub("release", "1.1").exit_code == 0
    changes = json.loads(ccub("diff", "1.0", "1.1", "--json").stdout)
    # Nigeria's accepted records come in (the one accepted on review among them); one Korean
    # image leaves the set: a Nigerian copy of it makes the pair a cross-culture conflict.
    summary = changes["summary"]
    assert (summary["added"], summary["removed"]) == (39, 1)
    trained = ccub("finetune", "--culture", "korea", "--base", "tiny", "--steps", "1")
    assert trained.exit_code == 0, trained.output
    withdrawn = ccub("withdraw", "--contributor", "k-017", "--reason", "asked by email")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert "runs/korea-MPC" in withdrawn.output
    for path in Path("data").rglob("*"):
        if path.is_file() and "steward" not in path.parts and "releases" not in path.parts:
            text = path.read_bytes()
            assert b"asked by email" not in text, path
    refused = ccub("benchmark", "--model", "runs/korea-MPC", "--clip", "tiny")
    assert refused.exit_code == 2 and "--allow-withdrawn" in refused.output
    lineage = ccub("lineage", "runs/korea-MPC")
    assert lineage.exit_code == 0 and "release" in lineage.output and "run: runs/korea-MPC" in lineage.output
