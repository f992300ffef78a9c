"""One bad row is a finding on that row, never the end of the run.

Metadata files, manifests, caption files and submission.toml come from strangers: wrong
types, absurd sizes and nesting are findings that name the file, the line and the field,
and every other row is still read and published.
"""

from __future__ import annotations

import csv
import io
import json
import string
from pathlib import Path

import pytest
from helpers import GOOD, by_image, imagefolder, read_jsonl, row, run, write_image, write_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CAPTION = "a bowl of bibimbap with seasoned vegetables"


def findings(result, check: str):
    return [i.finding for i in result.issues if i.finding.check == check]


@pytest.mark.parametrize("caption", [42, 3.5, True, None, {"en": CAPTION}, [CAPTION]],
                         ids=["number", "float", "boolean", "null", "object", "list"])
def test_caption_of_the_wrong_type_is_a_finding_on_its_row(tmp_path, caption):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION), ("b.jpg", "a plate of kimchi and rice")])
    write_jsonl(root / "korea" / "metadata.jsonl", [row("a.jpg", text=caption),
                                                    row("b.jpg", text="a plate of kimchi and rice")])
    result = run(root, out, reports=True)
    assert result.exit_code == 1
    status = {k: o.status for k, o in by_image(result).items()}
    assert status == {"korea/a.jpg": "rejected", "korea/b.jpg": "accepted"}
    if caption is not None:  # null is simply no caption
        [found] = findings(result, "metadata.field_type")
        assert (found.file, found.line, found.field) == ("korea/metadata.jsonl", 1, "text")
    assert read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")[0]["file_name"] \
        == "images/b.jpg"


def test_nul_in_a_file_name_or_a_negative_path_is_a_finding_on_its_row(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION), ("b.jpg", "a plate of kimchi and rice")])
    write_jsonl(root / "korea" / "metadata.jsonl", [
        row("a.jpg", text=CAPTION, negative_imgpath=["neg\x00.jpg"]),
        row("b\x00.jpg", text="a plate of kimchi and rice")])
    result = run(root, out, reports=True)
    negatives = [i.finding for i in result.issues if i.finding.check == "negatives.invalid"]
    assert len(negatives) == 1 and "NUL character" in negatives[0].message
    named = [i for i in result.issues if i.finding.record == "korea/metadata.jsonl:2" and i.severity == "error"]
    assert named and "NUL character" in named[0].finding.message
    assert by_image(result)["korea/a.jpg"].status == "accepted"


def test_extra_column_nested_50000_deep_is_a_finding_on_its_row(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION), ("b.jpg", "a plate of kimchi and rice")])
    deep = json.dumps(row("a.jpg", text=CAPTION))[:-1] + ', "extra": ' + "[" * 50_000 + "]" * 50_000 \
        + "}"
    (root / "korea" / "metadata.jsonl").write_text(
        deep + "\n" + json.dumps(row("b.jpg", text="a plate of kimchi and rice")) + "\n", "utf-8")
    result = run(root, out, reports=True)
    [found] = findings(result, "metadata.limit")
    assert (found.file, found.line) == ("korea/metadata.jsonl", 1)
    assert "limits.max_json_depth (32)" in found.message
    assert by_image(result)["korea/b.jpg"].status == "accepted"


def test_50_megabyte_line_is_a_finding_and_the_next_rows_are_read(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION), ("b.jpg", "a plate of kimchi and rice")])
    with (root / "korea" / "metadata.jsonl").open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(row("a.jpg", text="x" * 50_000_000)) + "\n")
        fh.write(json.dumps(row("b.jpg", text="a plate of kimchi and rice")) + "\n")
    result = run(root, out, reports=True)
    [found] = findings(result, "metadata.limit")
    assert (found.file, found.line) == ("korea/metadata.jsonl", 1)
    assert "limits.max_line_bytes (1,048,576 bytes)" in found.message
    assert by_image(result)["korea/b.jpg"].status == "accepted"
    assert (out / "reports" / "report.json").stat().st_size < 200_000


def test_csv_cell_over_the_field_limit_names_its_first_line(tmp_path):
    """Rows spanning several lines come first, so the line is counted, not guessed."""
    root, out = tmp_path / "sub", tmp_path / "out"
    base = root / "korea"
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        write_image(base / name, i)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row("a.jpg", text="")), lineterminator="\n")
    writer.writeheader()
    writer.writerow(row("a.jpg", text="a caption\nover three\nlines of rice cakes"))  # lines 2-4
    writer.writerow(row("b.jpg", text="y" * 200_000))  # line 5: over csv's 131,072 and ccub's limit
    writer.writerow(row("c.jpg", text="a third caption about cold noodles"))  # line 6
    (base / "metadata.csv").write_text(text.getvalue(), "utf-8")
    result = run(root, out, reports=True)
    [found] = findings(result, "metadata.limit")
    assert (found.file, found.line) == ("korea/metadata.csv", 5)
    assert "limits.max_field_chars" in found.message
    status = {k: o.status for k, o in by_image(result).items()}
    assert status["korea/a.jpg"] == status["korea/c.jpg"] == "accepted"
    assert by_image(result)["korea/c.jpg"].record.origin == "korea/metadata.csv:6"


def test_submission_toml_nested_deeply_or_of_the_wrong_type(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION)])
    (root / "korea" / "submission.toml").write_text("creator = " + "[" * 20_000 + "]" * 20_000
                                                    + "\n", "utf-8")
    imagefolder(root / "india", [("b.jpg", "a plate of vegetable biryani")], seed=3)
    (root / "india" / "submission.toml").write_text('creator = ["a", "b"]\nconsent = true\n',
                                                    "utf-8")
    result = run(root, out, reports=True)
    malformed = findings(result, "metadata.malformed")
    assert [f.file for f in malformed] == ["korea/submission.toml"]
    typed = sorted((f.file, f.field) for f in findings(result, "metadata.field_type"))
    assert typed == [("india/submission.toml", "consent"), ("india/submission.toml", "creator")]
    assert by_image(result)["korea/a.jpg"].status == "accepted"


def test_caption_file_larger_than_the_line_limit_is_not_read(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    write_image(root / "india" / "FOOD" / "a.jpg", 1)
    (root / "india" / "FOOD" / "a.jpg.txt").write_bytes(b"x" * 2_000_000)
    write_image(root / "india" / "FOOD" / "b.jpg", 2)
    (root / "india" / "FOOD" / "b.jpg.txt").write_text("a crisp masala dosa on a plate", "utf-8")
    result = run(root, out, flags={"license": "CC0-1.0", "consent": "n/a"}, reports=True)
    [found] = findings(result, "metadata.limit")
    assert found.file == "india/FOOD/a.jpg.txt" and found.record == "india/FOOD/a.jpg"
    assert by_image(result)["india/FOOD/b.jpg"].status == "accepted"


# --- property-based: rows of any shape ------------------------------------------------------

FIELDS = ["text", "culture", "category", "license", "creator", "contributor", "consent",
          "language", "created_at", "split", "negative_imgpath", "notes"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(string.printable + "éß한글\u202e\x00", max_size=40))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
rows = st.lists(st.fixed_dictionaries({}, optional={f: values for f in FIELDS}), min_size=1,
                max_size=4)


def checked(root: Path, out: Path):
    """validate without the report writers: the properties are about reading, and the
    plots would dominate the run time."""
    import ccub.pipeline
    from ccub.config import load_config

    return ccub.pipeline.validate(ccub.pipeline.Options(root=root, out=out, workers=1),
                                  load_config(cwd=root))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("images")
    return [write_image(folder / f"{i}.jpg", i).read_bytes() for i in range(4)]


def _wrong_type(field: str, value) -> bool:
    if field == "notes" or value in (None, "", []):
        return False  # unknown columns travel as they are; empty means absent
    if field == "negative_imgpath":
        return not (isinstance(value, str) or (isinstance(value, list)
                                                and all(isinstance(v, str) for v in value)))
    if field == "text":
        return not isinstance(value, str)
    return isinstance(value, bool | list | dict)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_rows_of_any_shape_are_findings_never_crashes(tmp_path_factory, images, rows):
    base = tmp_path_factory.mktemp("prop")
    root = base / "sub"
    (root / "korea").mkdir(parents=True)
    lines = []
    for i, values_ in enumerate(rows):
        (root / "korea" / f"{i}.jpg").write_bytes(images[i])
        lines.append({"file_name": f"{i}.jpg", **GOOD, **values_})
    write_jsonl(root / "korea" / "metadata.jsonl", lines)
    result = checked(root, base / "out")  # the input guard checks the tree is untouched
    assert result.exit_code in (0, 1)
    typed = {(f.line, f.field) for f in findings(result, "metadata.field_type")}
    skipped = {f.line for f in result.read.findings if f.check in ("metadata.malformed",
                                                                   "metadata.limit")}
    for line, values_ in enumerate(rows, start=1):
        for field, value in values_.items():
            if _wrong_type(field, value):  # reported on its field, or the whole row refused
                assert (line, field) in typed or line in skipped, (line, field, value)
    for outcome in result.outcomes:
        if outcome.status != "rejected":
            assert isinstance(outcome.record.caption, str)


cells = st.text(string.printable + "é\u2028\x85", max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.lists(st.lists(cells, min_size=1, max_size=7), min_size=1, max_size=6),
       raw=st.booleans())
def test_csv_manifests_of_any_shape_finish(tmp_path_factory, images, table, raw):
    base = tmp_path_factory.mktemp("csv")
    root = base / "sub"
    (root / "nigeria").mkdir(parents=True)
    (root / "nigeria" / "0.jpg").write_bytes(images[0])
    header = ["path", "caption", "country_code", "url", "license", "consent"]
    if raw:  # arbitrary text, quotes and all, not written by a CSV writer
        text = "\n".join([",".join(header)] + [",".join(r) for r in table])
    else:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *table])
        text = buffer.getvalue()
    (root / "nigeria" / "manifest.csv").write_text(text, "utf-8")
    result = checked(root, base / "out")
    assert result.exit_code in (0, 1)
    lines = {f.line for f in result.read.findings if f.file == "nigeria/manifest.csv"}
    assert all(isinstance(line, int) and line >= 1 for line in lines)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.dictionaries(st.sampled_from(["culture", "license", "creator", "consent",
                                              "colour", "language"]), values, max_size=4))
def test_submission_toml_of_any_shape_is_applied_or_reported(tmp_path_factory, images, table):
    import tomli_w

    base = tmp_path_factory.mktemp("toml")
    root = base / "sub"
    (root / "india" / "FOOD").mkdir(parents=True)
    (root / "india" / "FOOD" / "a.jpg").write_bytes(images[1])
    (root / "india" / "FOOD" / "a.jpg.txt").write_text("a crisp masala dosa on a plate", "utf-8")
    try:
        text = tomli_w.dumps(table)
    except (TypeError, ValueError):
        text = "culture = " + json.dumps(str(table))  # TOML has no null: write it as text
    (root / "india" / "submission.toml").write_text(text, "utf-8")
    result = checked(root, base / "out")
    assert result.exit_code in (0, 1)
    record = by_image(result)["india/FOOD/a.jpg"].record
    assert all(isinstance(getattr(record, f), str | None)
               for f in ("culture", "license", "creator", "consent", "language"))


def test_metadata_file_over_the_size_limit_is_not_read(tmp_path):
    from ccub.config import load_config

    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION)])
    cfg = load_config(cwd=tmp_path)
    cfg.limits.max_metadata_mb = 0.0001  # 100 bytes
    result = run(root, out, cfg=cfg, reports=True)
    [found] = findings(result, "metadata.limit")
    assert found.file == "korea/metadata.jsonl" and "was not read" in found.message
    assert Path(out / "reports" / "report.json").is_file()
