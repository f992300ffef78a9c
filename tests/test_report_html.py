"""report.html: self-contained, escaped, bounded in size, one section per contributor."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccub.config import load_config
from ccub.pipeline import Options, validate
from ccub.report import build_report, plots, write_reports
from ccub.report.html import render_html

SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_CONTRIBUTOR = '<b onmouseover="x()">raj</b>'
DATA_URI = re.compile(r'data:(image/(?:png|jpeg));base64,([A-Za-z0-9+/=]+)')


def _image(path: Path, size: tuple[int, int] = (800, 600), seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([80 + 120 * x / w, 200 - 100 * y / h, 60 + 80 * (x + y) / (w + h)], axis=-1)
    img += rng.normal(0, 12, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(path, "JPEG", quality=90)


def _jsonl(path: Path, rows: list) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _submissions(root: Path) -> None:
    # Folder tree with sidecar captions, contributor from submission.toml.
    korea = root / "korea"
    _image(korea / "FOOD" / "kimchi.jpg", seed=1)
    (korea / "FOOD" / "kimchi.jpg.txt").write_text(f"A bowl of kimchi {SCRIPT} on a table",
                                                  encoding="utf-8")
    _image(korea / "FOOD" / "bibimbap.jpg", seed=2)
    (korea / "FOOD" / "bibimbap.txt").write_text("Bibimbap with a fried egg in a hot stone bowl",
                                                encoding="utf-8")
    _image(korea / "ARCH" / "palace.jpg", size=(300, 200), seed=3)  # no caption, too small
    (korea / "submission.toml").write_text('contributor = "minji"\nlicense = "CC-BY-4.0"\n'
                                           'creator = "Kim Minji"\nconsent = "n/a"\n',
                                           encoding="utf-8")
    # An imagefolder with a hostile contributor, a megabyte caption, an image without a row
    # and a malformed line.
    india = root / "india"
    common = {"license": "CC-BY-4.0", "creator": "Raj", "contributor": HOSTILE_CONTRIBUTOR,
              "consent": "n/a", "culture": "india", "category": "FOOD"}
    _image(india / "dosa.jpg", seed=4)
    _image(india / "idli.jpg", seed=5)
    _image(india / "orphan.jpg", seed=6)
    _jsonl(india / "metadata.jsonl", [
        {"file_name": "dosa.jpg", "text": "y" * 60_000, **common},
        {"file_name": "idli.jpg", "text": "Steamed idli with coconut chutney on a banana leaf",
         **common},
        {"text": "a row without a file name", **common},
    ])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("html")
    root, out = base / "subs", base / "out"
    _submissions(root)
    result = validate(Options(root, out, workers=1), load_config(cwd=base), None, write_reports)
    html = (out / "reports" / "report.html").read_text("utf-8")
    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    return result, report, html


def _decoded(html: str, mime: str) -> list[Image.Image]:
    images = []
    for found_mime, payload in DATA_URI.findall(html):
        if found_mime == mime:
            im = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
            im.load()
            images.append(im)
    return images


def test_captions_and_names_are_escaped(run):
    _, report, html = run
    assert any(SCRIPT in (r["caption"] or "") for r in report["records"])
    assert SCRIPT not in html
    assert ESCAPED_SCRIPT in html
    assert "<script" not in html.lower()  # the page runs no scripts at all
    assert HOSTILE_CONTRIBUTOR not in html
    assert "&lt;b onmouseover=&#34;x()&#34;&gt;raj&lt;/b&gt;" in html


def test_page_is_self_contained(run):
    _, _, html = run
    assert html.lstrip().lower().startswith("<!doctype html>")
    attributes = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', html, re.IGNORECASE)
    assert attributes
    for value in attributes:
        assert value.startswith(("#", "data:image/")), value
    assert not re.search(r'\b(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', html, re.IGNORECASE)
    assert "@import" not in html and "url(" not in html


def test_thumbnails_only_for_records_with_findings(run):
    _, report, html = run
    thumbs = _decoded(html, "image/jpeg")
    assert thumbs and all(im.format == "JPEG" for im in thumbs)
    flagged = [r for r in report["records"] if r["issues"] and r["width"]]
    assert len(thumbs) == len(flagged)
    assert any(not r["issues"] for r in report["records"]), "fixture needs a clean record"


def test_plots_are_embedded_pngs(run):
    _, _, html = run
    charts = _decoded(html, "image/png")
    assert len(charts) == 4  # categories, image size, caption length, findings
    for im in charts:
        assert im.format == "PNG"
        assert 200 < im.width < 1600 and 100 < im.height < 1400


def test_each_contributor_has_a_section(run):
    _, report, html = run
    names = {r["contributor"] for r in report["records"]}
    assert names == {"minji", HOSTILE_CONTRIBUTOR}
    anchors = re.findall(r'<a href="#(contributor-\d+)">', html)
    assert len(anchors) == len(set(anchors)) >= len(names)
    for anchor in anchors:
        assert f'<section class="contributor" id="{anchor}">' in html
    assert "<h3>minji</h3>" in html
    # Every file with findings is listed, including those without a record.
    for issue in report["issues"]:
        if issue["file"]:
            assert issue["file"] in html
    assert "india/orphan.jpg" in html  # image without a metadata row
    assert "Dataset-level notes" in html or all(i["file"] or i["record"] for i in report["issues"])


def test_header_summary_and_config(run):
    result, report, html = run
    assert f"ccub {report['ccub_version']}" in html
    assert report["created_at"] in html
    assert "folder tree" in html and "imagefolder" in html
    assert result.exit_code == 1
    assert 'class="banner bad"' in html and "rejected" in html
    for check in report["summary"]["checks"]:
        assert f'<code class="check-id">{check}</code>' in html and f"<code>{check}</code>" not in html
    # Check ids never break mid-word: every one is in the nowrap element, none in a bare <code>.
    css = re.search(r"\.check-id \{([^}]*)\}", html)
    assert css and "white-space: nowrap" in css.group(1)
    assert report["summary"]["checks"], "the fixture has findings"
    assert "min_short_side_error = 256" in html  # the effective configuration, as TOML


def test_size_stays_bounded(run):
    _, report, html = run
    assert any(r["caption_chars"] >= 60_000 and len(r["caption"]) <= 1001
               for r in report["records"])
    assert "y" * 400 not in html
    assert "60,000 characters in all" in html
    assert len(html.encode("utf-8")) < 1_000_000


def test_render_without_records(tmp_path):
    root, out = tmp_path / "subs", tmp_path / "out"
    root.mkdir()
    (root / "metadata.jsonl").write_text("{not json\n", "utf-8")  # one finding, no record
    result = validate(Options(root, out, workers=1), load_config(cwd=tmp_path))
    html = render_html(build_report(result), result.facts)
    assert "No records were read." in html
    assert "Nothing to plot." in html
    assert html.count("data:image/png") == 1  # findings by severity; no dataset plots


def test_plot_functions_handle_hostile_labels_and_empty_data():
    assert plots.accepted_by_category({}) is None
    assert plots.findings_by_severity({"x": {}}) is None
    assert plots.short_side_histogram([]) is None
    png = plots.accepted_by_category({"$\\frac{": {"$x^$": 3, "FOOD": 1}, "ok": {"FOOD": 2}})
    assert png is not None and Image.open(io.BytesIO(png)).format == "PNG"
    many = {f"culture-{i}": {"error": i + 1, "weird": 1} for i in range(60)}
    assert Image.open(io.BytesIO(plots.findings_by_severity(many))).format == "PNG"
    hist = plots.short_side_histogram([100, 300, 600, 2000], 256, 512)
    assert len(hist) < 100_000


def test_thumbnails_are_capped(run, tmp_path, monkeypatch):
    from ccub.imaging.analyze import ImageFacts
    from ccub.report import html as html_module

    _, report, _ = run
    thumb = tmp_path / "t.jpg"
    _image(thumb, size=(64, 48))
    facts = {r["image"]: ImageFacts(path=r["image"], thumbnail=str(thumb))
             for r in report["records"] if r["image"]}
    monkeypatch.setattr(html_module, "MAX_THUMBNAILS", 1)
    page = render_html(report, facts)
    assert len(_decoded(page, "image/jpeg")) == 1
    assert "more records with findings are listed without one" in page
    # The worst record gets the thumbnail.
    first = page.index("data:image/jpeg;base64,")
    assert page.rfind('<article class="record rejected">', 0, first) != -1


def test_one_long_caption_does_not_squash_the_caption_histogram():
    rng = np.random.default_rng(0)
    short = [int(n) for n in rng.integers(20, 90, 50)]
    binning = plots.robust_bins([*short, 2000])
    assert binning.beyond == 1 and sum(binning.counts) == 51
    assert binning.counts[-1] >= 1, "the outlier is counted in the last bin"
    assert max(short) <= binning.top < 100, "the range ends just above the short captions"
    assert sum(1 for c in binning.counts if c) >= 15, "the short captions spread over many bins"
    width = binning.edges[1] - binning.edges[0]
    assert width < 3
    # Without an outlier the range covers every value, and nothing is folded.
    plain = plots.robust_bins(short)
    assert plain.beyond == 0 and plain.top >= max(short)
    # A threshold line stays on the chart even beyond the data.
    assert plots.robust_bins(short, marks=[512, None]).top >= 512
    assert plots.robust_bins([]).counts == [0]
    png = plots.caption_histogram([*short, 2000])
    assert Image.open(io.BytesIO(png)).format == "PNG"
