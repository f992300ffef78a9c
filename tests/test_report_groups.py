"""Duplicate groups and run notes in report.json, report.html and report.md."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from pathlib import Path

import pytest
from helpers import make_image, photo, row, submission
from PIL import Image, ImageOps

from ccub.config import load_config
from ccub.imaging.analyze import ImageFacts
from ccub.pipeline import Options, validate
from ccub.report import groups as groups_module
from ccub.report import html as html_module
from ccub.report import write_reports
from ccub.report.html import render_html
from ccub.report.markdown import render_markdown

SIZE = (900, 700)
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_NAME = "FOOD_<script>3.jpg"  # a file name may hold "<" and ">" (not "/")
K = "korea/"


def _crop(im: Image.Image, fraction: float = 0.05) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * fraction), 0, w, h))


def _validate(root: Path, out: Path, **options) -> tuple[dict, str, str]:
    validate(Options(root, out, workers=1, **options), load_config(cwd=root.parent), None,
             write_reports)
    reports = out / "reports"
    return (json.loads((reports / "report.json").read_text("utf-8")),
            (reports / "report.html").read_text("utf-8"),
            (reports / "report.md").read_text("utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("groups")
    root = base / "subs"
    original = photo(5, SIZE)
    make_image(root / "korea" / "FOOD_1.jpg", image=original, quality=92)
    make_image(root / "korea" / "FOOD_2.jpg", image=original.resize((600, 466)), quality=70)
    make_image(root / "korea" / HOSTILE_NAME, image=ImageOps.mirror(original.resize((800, 622))))
    make_image(root / "korea" / "FOOD_4.jpg", image=_crop(original))
    # The same photo filed under two cultures: a label conflict.
    other = make_image(root / "korea" / "FOOD_5.jpg", image=photo(7, SIZE))
    (root / "nigeria").mkdir()
    (root / "nigeria" / "FOOD_1.jpg").write_bytes(other.read_bytes())
    make_image(root / "korea" / "FOOD_6.jpg", seed=11)  # related to nothing
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2), row(HOSTILE_NAME, 3),
                      row("FOOD_4.jpg", 4, text=f"a cropped bowl of kimchi {SCRIPT} stew"),
                      row("FOOD_5.jpg", 5), row("FOOD_6.jpg", 6)], images=False)
    submission(root, [row("FOOD_1.jpg", 7)], folder="nigeria", images=False)
    report, html, md = _validate(root, base / "out")
    return report, html, md


def _group_of(report: dict, image: str) -> dict:
    [group] = [g for g in report["duplicate_groups"]
               if image in {m["image"] for m in g["members"]}]
    return group


def _cards(html: str) -> list[str]:
    starts = [m.start() for m in re.finditer(r'<article class="group[^"]*" id="group-\d+">', html)]
    return [html[s:html.index("</article>", s)] for s in starts]


def test_report_json_has_the_groups_with_statuses(run):
    report, _, _ = run
    assert len(report["duplicate_groups"]) == 2
    near = _group_of(report, K + "FOOD_1.jpg")
    statuses = {m["image"]: m["status"] for m in near["members"]}
    assert statuses == {K + "FOOD_1.jpg": "kept", K + "FOOD_2.jpg": "dropped",
                        K + HOSTILE_NAME: "dropped", K + "FOOD_4.jpg": "kept"}
    assert {e["kind"] for e in near["edges"]} >= {"near", "near_review"}
    conflict = _group_of(report, "nigeria/FOOD_1.jpg")
    assert {m["culture"] for m in conflict["members"]} == {"korea", "nigeria"}
    assert "same_file" in {e["kind"] for e in conflict["edges"]}
    assert report["notes"] and report["notes"][0]["text"].startswith("semantic duplicates: not checked")


def test_html_has_a_card_per_group_with_thumbnails(run):
    report, html, _ = run
    assert '<h2 id="duplicate-groups">Duplicate groups</h2>' in html
    assert '<a href="#duplicate-groups">' in html  # linked from the top and the summary
    cards = _cards(html)
    assert len(cards) == len(report["duplicate_groups"]) == 2
    # Label conflicts first.
    assert "label conflict" in cards[0] and "nigeria/FOOD_1.jpg" in cards[0]
    assert "cultures korea, nigeria" in cards[0]
    assert "same bytes" in cards[0]
    near = cards[1]
    thumbs = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', near)
    assert len(thumbs) == 4
    for payload in thumbs:
        assert Image.open(io.BytesIO(base64.b64decode(payload, validate=True))).format == "JPEG"
    assert re.search(r"pHash distance \d+/256", near)
    assert "band-duplicate" in near and "band-review" in near
    for badge in ("kept", "dropped"):
        assert f'<span class="badge b-{badge}">{badge}</span>' in near
    # The crop is kept but held for review: its record outcome and the check are shown.
    assert '<span class="badge b-review">review</span>' in near
    assert "<code>duplicate.near_review</code>" in near
    # Flagged records link to their group.
    assert re.search(r'in <a href="#group-2">duplicate group 2</a>', html)


def test_html_group_values_are_escaped(run):
    _, html, _ = run
    assert SCRIPT not in html and "<script" not in html.lower()
    assert ESCAPED_SCRIPT in html  # the crop's caption, shown on its card
    assert "korea/FOOD_&lt;script&gt;3.jpg" in _cards(html)[1]


def test_html_shows_the_run_notes(run):
    _, html, _ = run
    head = html[:html.index("</header>")]
    assert "semantic duplicates: not checked" in head
    assert 'class="note-muted"' in head
    assert "RANDOM WEIGHTS" not in html


def test_markdown_lists_the_groups_and_notes(run):
    report, _, md = run
    assert "## Notes" in md and "semantic duplicates: not checked" in md
    assert "## Duplicate groups" in md
    assert md.count("### Group ") == len(report["duplicate_groups"])
    assert "### Group 1: 2 images, duplicate, LABEL CONFLICT" in md
    assert "same bytes" in md and re.search(r"pHash distance \d+/256", md)
    assert "| dropped |" in md and "| kept |" in md
    assert "\\<script\\>" in md and "<script>" not in md
    assert md.index("## Duplicate groups") < md.index("## Findings by contributor")


def test_random_weights_note_is_a_warning(run):
    report, _, _ = run
    report = copy.deepcopy(report)
    report["notes"] = [{"text": "semantic duplicates: CLIP tiny:random on 7 images (RANDOM WEIGHTS: "
                                "similarities are meaningless; for testing the pipeline only)", "kind": "danger"}]
    group = report["duplicate_groups"][0]
    group["members"].append({**group["members"][0], "key": "korea/lookalike.jpg",
                             "image": "korea/lookalike.jpg", "status": "kept"})
    group["edges"].append({"a": group["members"][0]["key"], "b": "korea/lookalike.jpg",
                           "kind": "semantic", "value": 0.96312})
    html = render_html(report, {})
    head = html[:html.index("</header>")]
    assert 'class="banner bad" role="alert"' in head and "not results" in head
    assert 'class="note-danger"' in head
    assert "CLIP cosine 0.963" in html and "band-semantic" in html
    assert "**WARNING, not results:**" in render_markdown(report)


def test_skipped_semantic_tier_is_highlighted(run):
    report, _, _ = run
    from ccub.pipeline import _semantic

    pytest.importorskip("open_clip")
    *_, note = _semantic("ViT-B-32:no-such-weights", {}, None)  # the pipeline's own note for a skipped tier
    assert note.kind == "warn" and note.text.startswith("semantic duplicates: SKIPPED")
    html = render_html({**report, "notes": [{"text": note.text, "kind": note.kind}]}, {})
    assert '<li class="note-warn">semantic duplicates: SKIPPED' in html


def test_groups_members_and_thumbnails_are_capped(run, monkeypatch):
    report, _, _ = run
    monkeypatch.setattr(html_module, "MAX_GROUP_CARDS", 2)
    monkeypatch.setattr(groups_module, "MAX_GROUP_EDGES", 1)
    big = copy.deepcopy(report)
    big["duplicate_groups"] = [_group_of(big, K + "FOOD_1.jpg")]  # 4 members, several edges
    html = render_html(big, {})
    [card] = _cards(html)
    assert card.count('<div class="member ') == 2
    assert '<table class="more">' in card and "FOOD_4.jpg" in card
    assert re.search(r"The 1 strongest of \d+ relations are shown", card)
    monkeypatch.setattr(html_module, "MAX_GROUPS", 1)
    monkeypatch.setattr(html_module, "MAX_GROUP_THUMBNAILS", 0)
    facts = {m["image"]: ImageFacts(path=m["image"]) for g in report["duplicate_groups"]
             for m in g["members"]}
    page = render_html(report, facts)
    [card] = _cards(page)
    assert "label conflict" in card
    assert "the other 1 are in report.json" in page
    assert "Thumbnails are embedded for the first 0 group members only; 2 more" in page


def test_groups_beyond_the_cap_are_counted(run):
    report, _, _ = run
    groups, counts = html_module.duplicate_groups(report, limit=1)
    assert len(groups) == 1 and counts["omitted"] == 1 and counts["total"] == 2
    assert counts["label_conflict"] == 1 and groups[0]["flags"]["label_conflict"]


def test_members_already_accepted_get_a_placeholder(tmp_path):
    original = photo(5, SIZE)
    first = tmp_path / "first"
    make_image(first / "korea" / "FOOD_1.jpg", image=original)
    submission(first, [row("FOOD_1.jpg", 1)], images=False)
    _validate(first, tmp_path / "data")

    root = tmp_path / "subs"
    make_image(root / "korea" / "FOOD_7.jpg", image=original.resize((450, 350)))
    submission(root, [row("FOOD_7.jpg", 7)], images=False)
    report, html, md = _validate(root, tmp_path / "batch2", against=tmp_path / "data")
    [group] = report["duplicate_groups"]
    assert {m["status"] for m in group["members"]} == {"already accepted", "dropped"}
    [card] = _cards(html)
    assert '<div class="none accepted-before"><strong>already accepted</strong>' in card
    assert card.count("data:image/jpeg;base64,") == 1  # only the new member has a thumbnail
    accepted = next(m for m in group["members"] if m["status"] == "already accepted")
    assert accepted["image"] in card
    assert any("checked against 1 accepted images" in n["text"] for n in report["notes"])
    assert "checked against 1 accepted images" in html[:html.index("</header>")]
    assert "| already accepted |" in md
