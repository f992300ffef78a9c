"""Files passed between stages: one typed reader each, versions checked, bad files named."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccub.recordfile import RecordError
from finetune.prepare import PrepareManifest
from finetune.run_record import RUN_FILE, RunRecord


def run_record(**changes) -> RunRecord:
    fields = dict(output="runs/x", base_model="tiny", base_path="/cache/tiny", culture="korea", dataset="/d",
                  data_card=None, images=4, variant="MPC", loss_weights={"ldm": 0.7}, backbones={}, steps=2,
                  resumed_from=0, skipped_steps=0, seconds=1.5, hardware={"device": "cpu", "processes": 1},
                  versions={"ccub": "0"}, smoke_run=True, config={"resolution": 32})
    return RunRecord(**(fields | changes))


def test_a_record_reads_back_as_written_with_its_schema(tmp_path):
    record = run_record()
    path = record.write_to(tmp_path)
    assert path == tmp_path / RUN_FILE
    data = json.loads(path.read_text())
    assert (data["schema"], data["schema_version"]) == ("ccub.run", 2)
    assert RunRecord.read_from(tmp_path) == record


def test_a_version_1_file_reads_with_the_fields_added_since_at_their_defaults(tmp_path):
    data = json.loads(run_record().write_to(tmp_path).read_text()) | {"schema_version": 1}
    del data["release"], data["release_digest"]
    (tmp_path / RUN_FILE).write_text(json.dumps(data))
    assert RunRecord.read_from(tmp_path) == run_record()


def test_a_file_from_before_records_had_versions_reads_as_version_1(tmp_path):
    data = json.loads(run_record().write_to(tmp_path).read_text())
    del data["schema"], data["schema_version"]
    (tmp_path / RUN_FILE).write_text(json.dumps(data))
    assert RunRecord.read_from(tmp_path) == run_record()


@pytest.mark.parametrize(("change", "message"), [
    ({"schema_version": 3}, "ccub.run version 3, but this ccub reads versions 1 to 2; use the ccub that wrote it, or "
                            "rerun `ccub finetune`"),
    ({"schema": "ccub.prepare"}, "not a ccub.run record; rerun `ccub finetune`"),
    ({"images": "four"}, "images = 'four' (str); expected an integer; rerun `ccub finetune`"),
    ({"smoke_run": "no"}, "smoke_run = 'no' (str); expected true or false"),
    ({"surprise": 1}, "unknown key(s) surprise"),
])
def test_a_record_that_cannot_be_used_is_refused_naming_the_file_and_the_fix(tmp_path, change, message):
    data = json.loads(run_record().write_to(tmp_path).read_text()) | change
    (tmp_path / RUN_FILE).write_text(json.dumps(data))
    with pytest.raises(RecordError, match=re.escape(str(tmp_path / RUN_FILE))) as caught:
        RunRecord.read_from(tmp_path)
    assert message in str(caught.value)


def test_a_deeply_nested_or_broken_file_is_refused_not_a_crash(tmp_path):
    for text in ("[" * 100_000 + "]" * 100_000, "{not json", "\x00\xff"):
        (tmp_path / RUN_FILE).write_text(text, encoding="utf-8", errors="surrogateescape")
        with pytest.raises(RecordError, match="unreadable"):
            RunRecord.read_from(tmp_path)


def test_a_version_1_run_reads_with_empty_lineage_and_a_benchmark_too(tmp_path):
    data = json.loads(run_record(data_sources=["a" * 64], data_contributors=["c1"]).write_to(tmp_path).read_text())
    del data["data_sources"], data["data_contributors"]
    (tmp_path / RUN_FILE).write_text(json.dumps(data | {"schema_version": 1}))
    old = RunRecord.read_from(tmp_path)
    assert (old.data_sources, old.data_contributors) == ([], []) and old.images == 4
    from benchmark.record import BenchmarkRecord

    bench = BenchmarkRecord(culture="korea", clip="tiny", clip_random_weights=True, smoke_run=True, suite="built-in",
                            settings={}, seeds=[0], models=[], prompts=[], images=[], reference_sources=["b" * 64])
    data = json.loads(bench.write(tmp_path / "benchmark.json").read_text())
    del data["reference_sources"], data["training_sources"]
    (tmp_path / "benchmark.json").write_text(json.dumps(data | {"schema_version": 1}))
    assert BenchmarkRecord.read(tmp_path / "benchmark.json").reference_sources == []


def test_a_missing_field_and_a_missing_file_are_refused(tmp_path):
    data = json.loads(run_record().write_to(tmp_path).read_text())
    del data["variant"]
    (tmp_path / RUN_FILE).write_text(json.dumps(data))
    with pytest.raises(RecordError, match="variant"):
        RunRecord.read_from(tmp_path)
    with pytest.raises(RecordError, match="not found; rerun `ccub finetune`"):
        RunRecord.read_from(tmp_path / "elsewhere")


def test_the_prepare_manifest_says_whether_anything_was_made_with_random_weights(tmp_path):
    manifest = PrepareManifest(captions={"a.jpg": {"random_weights": False}})
    assert not manifest.made_with_random_weights()
    manifest.negatives["a.jpg"] = {"random_weights": True}
    assert manifest.made_with_random_weights()
    assert PrepareManifest.read(manifest.write(tmp_path / "prepare.json")) == manifest


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(list(json.loads(json.dumps({"schema": 0, "schema_version": 0, **vars(run_record())})))),
       value=JSON)
def test_any_value_in_any_field_reads_or_is_refused_with_a_record_error(tmp_path_factory, key, value):
    folder = tmp_path_factory.mktemp("run")
    data = json.loads(run_record().write_to(folder).read_text()) | {key: value}
    (folder / RUN_FILE).write_text(json.dumps(data))
    try:
        record = RunRecord.read_from(folder)
    except RecordError:
        return
    assert getattr(record, key, value) == value or key in ("schema", "schema_version")


def test_a_benchmark_record_from_before_records_had_versions_asks_for_a_rerun(tmp_path):
    from benchmark.record import BenchmarkRecord

    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps({"format": "ccub-benchmark", "version": 1, "culture": "korea"}))
    with pytest.raises(RecordError, match=re.escape(f"{path}: not a ccub.benchmark record; rerun `ccub benchmark "
                                                    "--model runs/<name>` (it reuses the cached images)")):
        BenchmarkRecord.read(path)


def test_card_refuses_a_report_of_an_older_version_naming_the_rerun(tmp_path):
    from ccub.outdir import exclusive
    from data_cards import refresh_cards
    from data_cards.facts import CardError

    reports = tmp_path / "data" / "reports"
    reports.mkdir(parents=True)
    (reports / "report.json").write_text(json.dumps({"schema": "ccub.validate.report", "schema_version": 1,
                                                     "notes": ["a note as version 1 wrote it"]}))
    with exclusive(tmp_path / "data", command="test"), pytest.raises(CardError) as caught:
        refresh_cards(tmp_path / "data")
    assert "ccub.validate.report version 1, but this ccub reads versions 2 to 3" in str(caught.value)
    assert "rerun `ccub validate` on the submissions" in str(caught.value)
