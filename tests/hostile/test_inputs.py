"""Hostile and broken inputs, untouched inputs, and all-or-nothing outputs."""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import time
import zlib
from pathlib import Path

import pytest
from helpers import (
    by_image,
    checks_for,
    imagefolder,
    read_jsonl,
    row,
    run,
    snapshot,
    tree_bytes,
    write_csv,
    write_image,
    write_jsonl,
)
from typer.testing import CliRunner

from ccub.cli import app
from ccub.outdir import TMP_PREFIX

CAPTION = "a bowl of bibimbap with seasoned vegetables"


def temp_dirs(out: Path) -> list[str]:
    return [p.name for p in out.glob(TMP_PREFIX + "*")]


def findings(result, check: str):
    return [i.finding for i in result.issues if i.finding.check == check]


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that declares width x height but carries a few bytes of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


# --- inputs are never modified ------------------------------------------------------------


def test_input_tree_is_untouched(tmp_path):
    root = tmp_path / "sub"
    imagefolder(root / "korea" / "train", [("FOOD_1.jpg", CAPTION)])
    write_image(root / "india" / "FOOD" / "dosa.jpg", 5)
    (root / "india" / "FOOD" / "dosa.jpg.txt").write_text("a crisp masala dosa", "utf-8")
    (root / "india" / "submission.toml").write_text('license = "CC0-1.0"\n', "utf-8")
    write_csv(root / "manifest.csv", [{"country_code": "NGA", "caption": "jollof rice in a pot",
                                       "url": "https://example.org/a.jpg"}])
    (root / "korea" / "train" / "page.jpg").write_bytes(b"<html><body>404</body></html>")
    outside = write_image(tmp_path / "elsewhere" / "x.jpg", 7)
    (root / "korea" / "link.jpg").symlink_to(outside)
    os.chmod(root / "korea" / "train" / "FOOD_1.jpg", 0o444)
    before = snapshot(root)
    outside_before = snapshot(tmp_path / "elsewhere")

    assert run(root, tmp_path / "out", reports=True).exit_code == 1
    result = CliRunner().invoke(app, ["validate", str(root), "--out", str(tmp_path / "out"),
                                      "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert snapshot(root) == before  # same files, bytes, mtimes and modes
    assert snapshot(tmp_path / "elsewhere") == outside_before
    assert sorted(before) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


# --- paths and links ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\..\\x.jpg",
                                  "C:\\Windows\\x.jpg", "images/../../../x.jpg"])
def test_path_traversal_in_file_name(tmp_path, name):
    root = tmp_path / "sub"
    write_image(tmp_path / "x.jpg", 1)  # a real image just outside the root
    imagefolder(root / "korea", [("ok.jpg", CAPTION)], seed=2)
    with (root / "korea" / "metadata.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row(name, text="a caption pointing somewhere else")) + "\n")
    result = run(root, tmp_path / "out", reports=True)
    bad = findings(result, "file.outside_root")
    assert len(bad) == 1 and bad[0].line == 2 and bad[0].field == "file_name"
    outcome = next(o for o in result.outcomes if o.record.key == "korea/metadata.jsonl:2")
    assert outcome.status == "rejected" and outcome.output is None
    assert outcome.record.image is None
    assert set(result.facts) == {"korea/ok.jpg"}  # nothing outside was opened
    assert [r["file_name"] for r in read_jsonl(
        tmp_path / "out" / "clean" / "korea" / "train" / "metadata.jsonl")] == ["images/ok.jpg"]


def test_symlinks_do_not_leave_the_root(tmp_path):
    root = tmp_path / "sub"
    outside = tmp_path / "outside"
    write_image(outside / "secret.jpg", 1)
    write_image(outside / "dir" / "inner.jpg", 2)
    imagefolder(root / "korea", [("ok.jpg", CAPTION)], seed=3)
    (root / "korea" / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "korea" / "linkdir").symlink_to(outside / "dir", target_is_directory=True)
    (root / "india" / "FOOD").mkdir(parents=True)
    (root / "india" / "FOOD" / "tree_link.jpg").symlink_to(outside / "secret.jpg")
    (root / "india" / "FOOD" / "tree_link.jpg.txt").write_text("a plate of curry", "utf-8")
    with (root / "korea" / "metadata.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row("link.jpg", text="a symlinked picture of a palace")) + "\n")
        fh.write(json.dumps(row("linkdir/inner.jpg", text="a picture behind a linked folder")) + "\n")

    result = run(root, tmp_path / "out", reports=True)
    bad = findings(result, "file.outside_root")
    assert sorted(f.line or 0 for f in bad) == [0, 2, 3]
    assert all("symlink" in f.message for f in bad)
    # Listed in the metadata: not also reported as an image without a row.
    assert findings(result, "file.no_metadata") == []
    statuses = {o.record.key: o.status for o in result.outcomes}
    assert statuses == {"korea/ok.jpg": "accepted", "korea/metadata.jsonl:2": "rejected",
                        "korea/metadata.jsonl:3": "rejected", "india/FOOD/tree_link.jpg": "rejected"}
    # The linked folder is not walked, and nothing outside the root was decoded.
    assert set(result.facts) == {"korea/ok.jpg"}
    exported = tree_bytes(tmp_path / "out" / "clean")
    assert sorted(exported) == ["korea/train/images/ok.jpg", "korea/train/metadata.jsonl"]


# --- hostile files ------------------------------------------------------------------------


def test_decompression_bombs_rejected_quickly(tmp_path):
    root = tmp_path / "sub"
    base = root / "korea"
    (base).mkdir(parents=True)
    (base / "bomb.png").write_bytes(png_header(100_000, 100_000))  # 10 gigapixels, ~100 bytes
    (base / "big.png").write_bytes(png_header(12_000, 6_000))  # 72 MP: under Pillow's limit, over ccub's 50 MP
    write_jsonl(base / "metadata.jsonl", [row("bomb.png", text="a bomb of a picture, do not open"),
                                          row("big.png", text="a very large panorama of a city")])
    assert (base / "bomb.png").stat().st_size < 1000
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = run(root, tmp_path / "out", reports=True)
    assert time.perf_counter() - start < 5
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    assert grown_mb < 300
    for key in ("korea/bomb.png", "korea/big.png"):
        assert checks_for(result, key) >= {"file.too_many_pixels"}
        assert by_image(result)[key].status == "rejected"
    big = next(f for f in findings(result, "file.too_many_pixels") if f.record == "korea/big.png")
    assert "12000x6000" in big.message and "50 MP" in big.message


def test_html_page_named_jpg(tmp_path):
    root = tmp_path / "sub"
    (root / "korea").mkdir(parents=True)
    (root / "korea" / "photo.jpg").write_bytes(
        b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>" + b"x" * 5000
        + b"</body></html>")
    write_jsonl(root / "korea" / "metadata.jsonl", [row("photo.jpg", text=CAPTION)])
    result = run(root, tmp_path / "out", reports=True)
    [found] = findings(result, "file.format")
    assert "HTML" in found.message and found.record == "korea/photo.jpg"
    assert by_image(result)["korea/photo.jpg"].status == "rejected"


def test_invalid_utf8_in_metadata_and_sidecar(tmp_path):
    root = tmp_path / "sub"
    base = root / "korea"
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        write_image(base / name, i)
    lines = [json.dumps(row("a.jpg", text=CAPTION)).encode(),
             json.dumps(row("b.jpg", text="caption XX here")).encode().replace(b"XX", b"\xff\xfe"),
             json.dumps(row("c.jpg", text="a plate of kimchi beside steamed rice")).encode()]
    (base / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    write_image(root / "india" / "FOOD" / "x.jpg", 7)
    (root / "india" / "FOOD" / "x.jpg.txt").write_bytes(b"a plate of curry caf\xe9 style")

    result = run(root, tmp_path / "out", reports=True)
    encoding = findings(result, "metadata.encoding")
    assert {(f.file, f.line) for f in encoding} == {("korea/metadata.jsonl", 2),
                                                    ("india/FOOD/x.jpg.txt", None)}
    assert all("UTF-8" in f.message for f in encoding)
    statuses = {o.record.key: o.status for o in result.outcomes}
    assert statuses["korea/a.jpg"] == statuses["korea/c.jpg"] == "accepted"  # rest still read
    assert statuses["india/FOOD/x.jpg"] == "rejected"
    assert "caption.missing" in checks_for(result, "india/FOOD/x.jpg")


def test_script_in_caption_is_escaped_in_reports(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    caption = "<script>alert(1)</script> a bowl of bibimbap with vegetables"
    imagefolder(root / "korea", [("a.jpg", caption), ("b.jpg", "<b onmouseover=x>hi</b>")])
    run(root, out, reports=True)
    # Data stays data in the dataset.
    rows = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    assert rows[0]["text"] == caption
    html = (out / "reports" / "report.html").read_text("utf-8")
    md = (out / "reports" / "report.md").read_text("utf-8")
    assert "<script>alert" not in html and "<b onmouseover" not in html
    assert "&lt;script&gt;alert(1)" in html
    # Markdown escapes with backslashes; no unescaped tag is left for a renderer to run.
    assert re.search(r"(?<!\\)<(script|b )", md) is None
    assert "\\<b onmouseover=x\\>" in md  # the short caption is quoted in a finding


def test_megabyte_caption_is_a_finding_on_its_row_and_reports_stay_small(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", "word " * 200_000), ("b.jpg", CAPTION)])
    result = run(root, out, reports=True)
    [found] = findings(result, "metadata.limit")
    assert (found.file, found.line) == ("korea/metadata.jsonl", 1)
    assert "has a text of 1,000,000 characters at text, over limits.max_field_chars (65,536)" \
        in found.message
    assert by_image(result)["korea/b.jpg"].status == "accepted"
    for name in ("report.md", "issues.csv", "report.html", "report.json"):
        assert (out / "reports" / name).stat().st_size < 300_000, name


def test_csv_fields_with_newlines_and_quotes(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    base = root / "korea"
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        write_image(base / name, i)
    write_csv(base / "metadata.csv", [
        row("a.jpg", text='a "quoted" caption,\nover two lines, of rice cakes'),
        row("b.jpg", text="plain caption of spicy rice cakes", creator='Kim "Jay", Seoul'),
        row("c.jpg", text="a third caption about cold noodles"),
    ])
    result = run(root, out, reports=True)
    assert result.exit_code == 0, [(i.finding.check, i.finding.message) for i in result.issues]
    rows = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    assert [r["text"] for r in rows] == ['a "quoted" caption, over two lines, of rice cakes',
                                         "plain caption of spicy rice cakes",
                                         "a third caption about cold noodles"]
    assert rows[1]["creator"] == 'Kim "Jay", Seoul'
    origins = [o.record.origin for o in result.outcomes]
    # A row is named by the line it starts on, where its author looks for it.
    assert origins == ["korea/metadata.csv:2", "korea/metadata.csv:4", "korea/metadata.csv:5"]


def test_zero_byte_metadata_jsonl(tmp_path):
    root = tmp_path / "sub"
    write_image(root / "korea" / "a.jpg", 1)
    (root / "korea" / "metadata.jsonl").write_bytes(b"")
    imagefolder(root / "india", [("b.jpg", "a plate of vegetable biryani")], seed=4)
    result = run(root, tmp_path / "out", reports=True)
    assert result.exit_code == 1
    [orphan] = findings(result, "file.no_metadata")
    assert orphan.file == "korea/a.jpg" and "korea/metadata.jsonl" in orphan.message
    assert {o.record.key: o.status for o in result.outcomes} == {"india/b.jpg": "accepted"}


def test_submissions_without_anything_to_check_exit_2(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "readme.txt").write_text("photos follow next week", "utf-8")
    result = CliRunner().invoke(app, ["validate", str(root), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert "no submissions found" in result.output and str(root) in result.output
    assert not (out / "clean").exists() and temp_dirs(out) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["validate", str(empty), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 2 and "no submissions found" in result.output
