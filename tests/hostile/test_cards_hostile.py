"""Data cards under faults: another writer holding the output, a validate killed half way through
its publish, contributors' column names and dates, a tampered record of the card facts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import imagefolder, read_jsonl, snapshot, tree_bytes
from typer.testing import CliRunner

import ccub.cli
from ccub.cli import app
from ccub.outdir import JOURNAL, TMP_PREFIX

CARD = '''
version = "{version}"
publication_date = 2024-06-01
citation = "@misc{{ccub, title = {{CCUB}}, year = {{2024}}}}"
creators = ["Jane Doe"]
'''
# Contributors name their own columns: slashes, markup, names that slug alike, nested values, a
# date column (`date` is read as created_at) holding free text beside ISO dates.
HOSTILE_COLUMNS = [
    {"a/b": "x", "a b": "y", "<b>x</b>": "z", "nested": {"k": [1]}, "date": "last summer",
     "taken_at": "2023-05-01T10:00:00+02:00"},
    {"a/b": "x2", "date": "2023-05-02", "taken_at": "2023-05-02T10:00:00Z"},
    {"date": "2023-05-03", "taken_at": "2023-05-03"},
]


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def validate(root: Path, out: Path, version: str) -> None:
    meta = root.parent / f"card-{version}.toml"
    meta.write_text(CARD.format(version=version), "utf-8")
    before = snapshot(root)
    result = invoke("validate", root, "--out", out, "--workers", 1, "--meta", meta)
    assert result.exit_code == 0, result.output
    assert snapshot(root) == before


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> tuple[Path, Path]:
    """Two validate outputs: `first` (korea, hostile columns, card 1.0.0) and `second` (india,
    card 2.0.0); tests work on copies."""
    base = tmp_path_factory.mktemp("cards")
    first = base / "first-sub"
    imagefolder(first / "korea", [(f"FOOD_{i}.jpg", f"a bowl of bibimbap number {i} with vegetables")
                                  for i in range(3)])
    rows = read_jsonl(first / "korea" / "metadata.jsonl")
    (first / "korea" / "metadata.jsonl").write_text(
        "".join(json.dumps({**r, **extra}) + "\n" for r, extra in zip(rows, HOSTILE_COLUMNS, strict=True)),
        "utf-8")
    second = base / "second-sub"
    imagefolder(second / "india", [(f"FOOD_{i}.jpg", f"a plate of vegetable biryani number {i}")
                                   for i in range(4)], seed=50)
    validate(first, base / "first", "1.0.0")
    validate(second, base / "second", "2.0.0")
    for meta in base.glob("card-*.toml"):
        meta.unlink()  # only the facts recorded with the cards are left
    return base / "first", base / "second"


@pytest.fixture
def data(outputs, tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no ./card.toml
    shutil.copytree(outputs[0], tmp_path / "data")
    return tmp_path / "data"


def croissant(data: Path) -> dict:
    return json.loads((data / "clean" / "croissant.json").read_text("utf-8"))


def header(data: Path) -> dict:
    return yaml.safe_load((data / "clean" / "README.md").read_text("utf-8")[4:].partition("\n---\n")[0])


def test_card_while_another_process_holds_the_output_exits_2_naming_it(data, monkeypatch):
    monkeypatch.setattr(ccub.commands.prepare, "model_stack", lambda: None)  # prepare locks before any model
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ccub.outdir import exclusive\n"
         "with exclusive(sys.argv[1], command='ccub validate'):\n"
         "    print('held', flush=True); sys.stdin.read()", str(data)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = tree_bytes(data / "clean")
        busy = [invoke("card", data),
                invoke("prepare", "--culture", "korea", "--data", data, "--base", "tiny")]
        assert tree_bytes(data / "clean") == before
    finally:
        holder.communicate("", timeout=30)
    for result in busy:
        text = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert f"being written by another ccub run (ccub validate, pid {holder.pid} on" in text


def test_card_after_validate_was_killed_between_its_renames_finishes_the_publish(data, outputs):
    # `second`'s publish into `data`, killed once clean/ was moved in: reports/ and index/ are
    # still the old ones, and the journal names the folder holding the rest.
    tmp = data / f"{TMP_PREFIX}killed"
    tmp.mkdir()
    for name in ("clean", "index", "reports"):
        shutil.copytree(outputs[1] / name, tmp / name)
    (tmp / ".previous").mkdir()
    os.rename(data / "clean", tmp / ".previous" / "clean")
    os.rename(tmp / "clean", data / "clean")
    (data / JOURNAL).write_text(json.dumps({"tmp": tmp.name, "names": ["clean", "index", "reports"]}),
                                "utf-8")
    result = invoke("card", data)
    assert result.exit_code == 0, result.output
    assert not (data / JOURNAL).exists() and not list(data.glob(TMP_PREFIX + "*"))
    assert tree_bytes(data / "reports")["report.json"] == tree_bytes(outputs[1] / "reports")["report.json"]
    # The cards are the new output's, from the facts its validate recorded.
    document = croissant(data)
    assert document["version"] == "2.0.0" and document["keywords"] == ["india"]
    assert header(data)["ccub_card_status"] == "complete"
    assert "4 images" in (data / "clean" / "README.md").read_text("utf-8")


def test_hostile_column_names_and_free_text_dates_keep_every_record_set_loadable(data):
    mlc = pytest.importorskip("mlcroissant")
    assert invoke("card", data).exit_code == 0
    rows = read_jsonl(data / "clean" / "korea" / "train" / "metadata.jsonl")
    record_set = next(rs for rs in croissant(data)["recordSet"] if rs["@id"] == "korea-train")
    by_column = {f["source"]["extract"]["column"]: f for f in record_set["field"]
                 if "extract" in f["source"]}
    assert list(by_column) == list(rows[0])  # every column, in file order
    names = [f["name"] for f in record_set["field"]]
    assert len(names) == len(set(names))
    assert by_column["created_at"]["dataType"] == "sc:Text"  # "last summer" is not a date
    assert by_column["taken_at"]["dataType"] == "sc:DateTime"
    dataset = mlc.Dataset(jsonld=str(data / "clean" / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors, dataset.metadata.ctx.issues.report()
    records = list(dataset.records(record_set="korea-train"))
    assert len(records) == len(rows) == 3
    field = {column: f"korea-train/{f['name']}" for column, f in by_column.items()}
    got = {r[field["file_name"]].decode(): r for r in records}
    for expected in rows:
        record = got[expected["file_name"]]
        for column in ("a/b", "<b>x</b>", "nested", "created_at"):
            value = record[field[column]]
            assert (value.decode() if value is not None else None) == (expected[column] or None)
        assert record[field["taken_at"]].date().isoformat() == expected["taken_at"][:10]


@pytest.mark.parametrize("record, complaint", [
    ("{half", "unreadable"),
    (json.dumps({"schema": "something else", "facts": {}}), "not a record of card facts"),
    (json.dumps({"schema": "ccub.card.facts", "source": None, "facts": {"contributor_min_images": "0"}}),
     "contributor_min_images must be a positive whole number"),
    (json.dumps({"schema": "ccub.card.facts", "facts": {"<script>": "x"}}), "unknown key(s) <script>"),
])
def test_tampered_record_of_card_facts_is_refused_naming_it(data, record, complaint):
    (data / "reports" / "card.json").write_text(record, "utf-8")
    before = tree_bytes(data / "clean")
    result = invoke("card", data)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "card.json" in text and complaint in text and "ccub card --meta" in text
    assert tree_bytes(data / "clean") == before
