"""Review decisions that stick: review.html in headless Chromium, `ccub review` in a terminal, and
what the next `ccub validate` makes of the decisions either saves."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

from browser import blocked_requests, wait_for, wait_for_download
from helpers import checks_for, make_image, outcome, photo, read_jsonl, row, run, submission
from typer.testing import CliRunner

from ccub.cli import app
from ccub.report.record import ValidationReport
from ccub.steward import Decision, caption_digest
from ccub.steward.queue import short_id

K = "korea/"
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")
COLUMNS = list(Decision.__dataclass_fields__)
HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2"> \u2028<!--'
# Held for review whatever else it holds: a caption with an e-mail address (privacy.caption_email).
HELD = "write to kim@example.org"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def held_pair(root: Path, out: Path, **first: str) -> None:
    """Two records held for review (two-word captions: caption.too_short), reports written."""
    submission(root, [row("FOOD_1.jpg", 1, text="kimchi stew", **first), row("FOOD_2.jpg", 2, text="bibimbap bowl")])
    result = run(root, out, reports=True)
    assert {outcome(result, K + n).status for n in ("FOOD_1.jpg", "FOOD_2.jpg")} == {"review"}


def embedded(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def card(driver, key: str):
    return driver.find_element("css selector", f'article.card[data-key="{key}"]')


def decide_in_page(driver, key: str, action: str, reason: str = "") -> None:
    box = card(driver, key)
    if reason:
        box.find_element("css selector", "input.reason").send_keys(reason)
    box.find_element("css selector", f'button[data-action="{action}"]').click()
    wait_for(driver, lambda d: card(d, key).get_attribute("data-decision") == action)


# ---- report.json ---------------------------------------------------------------------------------


def test_report_json_gives_held_records_their_decision_keys(root, tmp_path):
    out = tmp_path / "out"
    submission(root, [row("FOOD_1.jpg", 1, text="kimchi stew"), row("FOOD_2.jpg", 2)])
    run(root, out, reports=True)
    report = ValidationReport.read(out / "reports" / "report.json").as_dict()
    assert report["schema_version"] == 3
    records = {r["key"]: r for r in report["records"]}
    assert (records[K + "FOOD_1.jpg"]["image_sha256"], records[K + "FOOD_1.jpg"]["caption_sha256"]) == (
        sha(root / "korea" / "FOOD_1.jpg"), caption_digest("kimchi stew"))
    assert records[K + "FOOD_2.jpg"]["status"] == "accepted"
    assert records[K + "FOOD_2.jpg"]["image_sha256"] is None is records[K + "FOOD_2.jpg"]["caption_sha256"]


def test_a_version_2_report_is_still_listed_but_not_decided(root, tmp_path):
    out = tmp_path / "out"
    held_pair(root, out)
    path = out / "reports" / "report.json"
    data = json.loads(path.read_text("utf-8"))
    data["schema_version"] = 2
    for record in data["records"]:
        del record["image_sha256"], record["caption_sha256"]
    path.write_text(json.dumps(data), encoding="utf-8")
    listed = cli("review", out)
    assert listed.exit_code == 0 and "korea/FOOD_1.jpg" in listed.output
    refused = cli("review", out, "--accept", K + "FOOD_1.jpg", "--reviewer", "r")
    assert refused.exit_code == 2 and "rerun `ccub validate`" in refused.output
    data["schema_version"] = 1
    path.write_text(json.dumps(data), encoding="utf-8")
    old = cli("review", out)
    assert old.exit_code == 2 and "rerun `ccub validate` on the submissions" in old.output


# ---- review.html, rendered -----------------------------------------------------------------------


def test_the_page_loads_nothing_and_carries_hostile_text_only_as_data(root, tmp_path):
    out = tmp_path / "out"
    held_pair(root, out, contributor=f"c1{HOSTILE}")
    submission(root, [row("FOOD_1.jpg", 1, text=f"kimchi {HOSTILE} {HELD}", contributor=f"c1{HOSTILE}"),
                      row("FOOD_2.jpg", 2, text=f"bibimbap bowl https://example.org/x.jpg {HELD}")], images=False)
    run(root, out, reports=True)
    html = (out / "reports" / "review.html").read_text("utf-8")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    assert "window.pwned" not in html.split('id="review-data">')[0]
    assert "<img src=x" not in html and "</script><script>" not in html and "\u2028" not in html
    assert html.count("</script>") == 2 and html.count("<script") == 2
    assert "http://" not in html.lower() and "https://" not in html.lower() and "url(" not in html
    data = embedded(html)
    items = {i["key"]: i for i in data["items"]}
    assert items[K + "FOOD_1.jpg"]["contributor"] == f"c1{HOSTILE}"
    assert HOSTILE in items[K + "FOOD_1.jpg"]["caption"]
    assert items[K + "FOOD_2.jpg"]["caption"] == f"bibimbap bowl https://example.org/x.jpg {HELD}"
    assert all(uri.startswith("data:image/jpeg;base64,") for uri in data["images"].values())
    assert items[K + "FOOD_1.jpg"]["id"] == short_id(K + "FOOD_1.jpg")


# ---- review.html in headless Chromium ----------------------------------------------------------


def test_decisions_made_in_the_page_are_applied_by_the_next_validate(root, tmp_path, driver, downloads):
    out = tmp_path / "out"
    held_pair(root, out)
    driver.get((out / "reports" / "review.html").resolve().as_uri())
    wait_for(driver, lambda d: len(d.find_elements("css selector", "article.card")) == 2)
    assert [f.get_attribute("data-check") for f in card(driver, K + "FOOD_1.jpg").find_elements(
        "css selector", "ul.findings li")][:1] == ["caption.too_short"]
    assert card(driver, K + "FOOD_1.jpg").find_element("css selector", ".thumb img").get_attribute(
        "src").startswith("data:image/jpeg;base64,")

    decide_in_page(driver, K + "FOOD_1.jpg", "accept")
    decide_in_page(driver, K + "FOOD_2.jpg", "reject", reason="Not Korean, \"bibimbap\" is mislabelled")
    driver.find_element("id", "save-jsonl").click()
    assert "name" in driver.find_element("id", "message").text  # no reviewer yet: nothing saved
    driver.find_element("id", "reviewer").send_keys("Steward Kim")
    driver.find_element("id", "save-jsonl").click()
    saved = wait_for_download(downloads, ".jsonl")
    assert saved.name == "decisions.jsonl"
    driver.find_element("id", "save-csv").click()
    saved_csv = wait_for_download(downloads, ".csv")

    rows = [json.loads(line) for line in saved.read_text("utf-8").splitlines()]
    assert [list(r) for r in rows] == [COLUMNS, COLUMNS]
    by_record = {r["record"]: r for r in rows}
    first, second = by_record[K + "FOOD_1.jpg"], by_record[K + "FOOD_2.jpg"]
    assert (first["decision"], first["reviewer"], first["reason"]) == ("accept", "Steward Kim", "")
    assert (first["image_sha256"], first["caption_sha256"]) == (sha(root / "korea" / "FOOD_1.jpg"),
                                                                caption_digest("kimchi stew"))
    assert (second["decision"], second["reason"]) == ("reject", "Not Korean, \"bibimbap\" is mislabelled")
    assert datetime.fromisoformat(first["at"]).tzinfo is not None
    with saved_csv.open(encoding="utf-8", newline="") as handle:
        assert list(csv.DictReader(handle)) == rows

    result = run(root, out, reports=True, decisions=saved)
    assert outcome(result, K + "FOOD_1.jpg").status == "accepted"
    [exported] = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    assert (exported["reviewed_by"], exported["reviewed_at"]) == ("Steward Kim", first["at"])
    assert outcome(result, K + "FOOD_2.jpg").status == "rejected"
    [rejected] = [i for i in result.issues if i.finding.check == "review.rejected"]
    assert "Not Korean" in rejected.finding.message
    assert embedded((out / "reports" / "review.html").read_text("utf-8"))["items"] == []
    # The CSV says the same: importing it adds nothing new.
    imported = cli("review", out, "--import", saved_csv)
    assert imported.exit_code == 0 and "0 decision(s) added" in imported.output and "2 already there" in \
        imported.output


def test_the_duplicate_group_is_shown_side_by_side(root, tmp_path, driver):
    original = photo(5, (900, 700))
    make_image(root / "korea" / "FOOD_1.jpg", image=original)
    make_image(root / "korea" / "FOOD_2.jpg", image=original.crop((45, 0, 900, 700)))
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out", reports=True)
    assert "duplicate.near_review" in checks_for(result, K + "FOOD_2.jpg")
    driver.get((tmp_path / "out" / "reports" / "review.html").resolve().as_uri())
    wait_for(driver, lambda d: d.find_elements("css selector", "article.card"))
    figures = card(driver, K + "FOOD_2.jpg").find_elements("css selector", ".group figure")
    assert [f.get_attribute("data-key") for f in figures] == [K + "FOOD_2.jpg", K + "FOOD_1.jpg"]
    assert all(f.find_element("css selector", "img").get_attribute("src").startswith("data:image/jpeg")
               for f in figures)
    assert "pHash distance" in card(driver, K + "FOOD_2.jpg").find_element("css selector", ".group").text


def test_hostile_text_is_shown_as_text_and_the_policy_blocks_requests(root, tmp_path, driver):
    out = tmp_path / "out"
    submission(root, [row("FOOD_1.jpg", 1, text=f"kimchi {HOSTILE} {HELD}", contributor=f"<b>c1</b>{HOSTILE}")])
    run(root, out, reports=True)
    driver.get((out / "reports" / "review.html").resolve().as_uri())
    wait_for(driver, lambda d: d.find_elements("css selector", "article.card"))
    box = card(driver, K + "FOOD_1.jpg")
    caption = driver.execute_script("return arguments[0].querySelector('.caption').textContent", box)
    assert caption == f"kimchi {HOSTILE} {HELD}"
    assert "<b>c1</b>" in box.find_element("css selector", ".meta").text
    assert driver.find_elements("css selector", "#cards b, #cards script, img[src='x']") == []
    assert driver.execute_script("return typeof window.pwned") == "undefined"
    assert blocked_requests(driver) == ["connect-src", "img-src"]
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert [name for name in loaded if not name.startswith(("data:", "http://127.0.0.1:9/"))] == []


# ---- ccub review in a terminal -------------------------------------------------------------------


def test_the_queue_lists_held_records_and_terminal_decisions_apply_at_the_next_validate(root, tmp_path):
    out = tmp_path / "out"
    held_pair(root, out)
    listed = cli("review", out)
    assert listed.exit_code == 0, listed.output
    for key in (K + "FOOD_1.jpg", K + "FOOD_2.jpg"):
        assert key in listed.output and short_id(key) in listed.output
    assert "caption.too_short" in listed.output and "c1" in listed.output

    assert cli("review", out, "--accept", short_id(K + "FOOD_1.jpg")).exit_code == 2  # no --reviewer
    unknown = cli("review", out, "--accept", K + "FOOD_9.jpg", "--reviewer", "r")
    assert unknown.exit_code == 2 and "not a record held for review" in unknown.output
    both = cli("review", out, "--accept", K + "FOOD_1.jpg", "--reject", short_id(K + "FOOD_1.jpg"),
               "--reviewer", "r")
    assert both.exit_code == 2 and "both accepted and rejected" in both.output
    assert not (out / "steward" / "decisions.jsonl").exists()

    done = cli("review", out, "--accept", short_id(K + "FOOD_1.jpg"), "--reject", K + "FOOD_2.jpg",
               "--reviewer", "Steward Kim", "--reason", "checked with the contributor")
    assert done.exit_code == 0, done.output
    assert "2 decision(s) recorded" in done.output and "next `ccub validate" in done.output
    again = cli("review", out)
    assert "accept by" in again.output and "decided since the last run" in again.output

    result = run(root, out, reports=True)
    assert outcome(result, K + "FOOD_1.jpg").status == "accepted"
    assert outcome(result, K + "FOOD_2.jpg").status == "rejected"
    [exported] = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    assert (exported["reviewed_by"], exported["review_reason"]) == ("Steward Kim", "checked with the contributor")
    assert "nothing held for review" in cli("review", out).output


def test_review_without_a_report_says_to_validate_first(tmp_path):
    result = cli("review", tmp_path / "nothing")
    assert result.exit_code == 2 and "run `ccub validate" in result.output


def test_an_import_keeps_good_rows_refuses_bad_ones_and_forged_digests_decide_nothing(root, tmp_path):
    out = tmp_path / "out"
    held_pair(root, out)
    good = {"image_sha256": sha(root / "korea" / "FOOD_2.jpg"), "caption_sha256": caption_digest("bibimbap bowl"),
            "decision": "reject", "reviewer": "<b>r</b>", "at": "2026-12-01T10:00:00+09:00",
            "reason": HOSTILE, "record": K + "FOOD_2.jpg"}
    forged = good | {"image_sha256": "0" * 64, "decision": "accept", "record": K + "FOOD_1.jpg", "reason": ""}
    lines = [json.dumps(good), json.dumps(forged), json.dumps(good | {"image_sha256": "abc"}), "{not json",
             json.dumps(good | {"decision": "accept", "admin": True})]
    path = tmp_path / "decisions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = cli("review", out, "--import", path)
    assert imported.exit_code == 2
    assert "2 decision(s) added" in imported.output and "3 row(s) refused" in imported.output
    assert f"{path}:3:" in imported.output and f"{path}:4:" in imported.output and "admin" in imported.output
    assert "1 added decision(s) match no record held" in imported.output

    result = run(root, out, reports=True)
    assert outcome(result, K + "FOOD_1.jpg").status == "review"  # the forged digest decides nothing
    assert outcome(result, K + "FOOD_2.jpg").status == "rejected"
    report_html = (out / "reports" / "report.html").read_text("utf-8")
    assert HOSTILE not in report_html and "<b>r</b>" not in report_html and "&lt;/script&gt;" in report_html

    # Its caption changed: back in review, where the earlier (hostile) reviewer is named, as text.
    submission(root, [row("FOOD_1.jpg", 1, text="kimchi stew"), row("FOOD_2.jpg", 2, text="bibimbap dish")],
               images=False)
    result = run(root, out, reports=True)
    assert "review.changed" in checks_for(result, K + "FOOD_2.jpg")
    review_html = (out / "reports" / "review.html").read_text("utf-8")
    assert "<b>r</b>" not in review_html and "\\u003cb\\u003er\\u003c/b\\u003e" in review_html
    [changed] = [i for i in embedded(review_html)["items"] if i["key"] == K + "FOOD_2.jpg"]
    assert any("<b>r</b>" in f["message"] for f in changed["findings"])


def test_a_huge_or_unreadable_import_is_refused(root, tmp_path):
    out = tmp_path / "out"
    held_pair(root, out)
    (tmp_path / "ccub.toml").write_text("[limits]\nmax_metadata_mb = 0.001\n", encoding="utf-8")
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({"reason": "x" * 1900}) + "\n", encoding="utf-8")
    refused = cli("review", out, "--import", huge, "--config", tmp_path / "ccub.toml")
    assert refused.exit_code == 2 and "max_metadata_mb" in refused.output
    missing = cli("review", out, "--import", tmp_path / "missing.jsonl")
    assert missing.exit_code == 2 and "cannot be opened" in missing.output
    assert not (out / "steward" / "decisions.jsonl").exists()


def test_decisions_wait_for_a_validate_run_holding_the_folder(root, tmp_path):
    from ccub.outdir import exclusive

    out = tmp_path / "out"
    held_pair(root, out)
    with exclusive(out, command="ccub validate"):
        busy = cli("review", out, "--accept", K + "FOOD_1.jpg", "--reviewer", "r")
    assert busy.exit_code == 2 and "being written by another ccub run" in busy.output
    assert not (out / "steward" / "decisions.jsonl").exists()
    assert cli("review", out, "--accept", K + "FOOD_1.jpg", "--reviewer", "r").exit_code == 0
