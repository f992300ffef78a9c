"""Review decisions and withdrawals in the steward folder, applied by `ccub validate`."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import checks_for, config, outcome, read_jsonl, row, run, submission

from ccub.pipeline import UsageError
from ccub.steward import Decision, Steward, Withdrawal, caption_digest
from ccub.steward.records import decision_from
from ccub.steward.store import decisions_csv, read_rows

K = "korea/"
SHORT = "kimchi stew"  # two words: held for review (caption.too_short)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decision(root, name: str, verdict: str, caption: str = SHORT, reason: str = "a fair description") -> dict:
    return {"image_sha256": sha(root / "korea" / name), "caption_sha256": caption_digest(caption),
            "decision": verdict, "reviewer": "steward-1", "at": "2026-12-01T10:00:00+00:00", "reason": reason,
            "record": K + name}


def write_decisions(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_an_accepted_held_record_is_exported_with_who_when_why_and_stays_accepted(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text=SHORT), row("FOOD_2.jpg", 2, text=SHORT)])
    out = tmp_path / "out"
    first = run(root, out)
    assert {outcome(first, K + n).status for n in ("FOOD_1.jpg", "FOOD_2.jpg")} == {"review"}
    decisions = write_decisions(tmp_path / "decisions.jsonl", [decision(root, "FOOD_1.jpg", "accept")])
    second = run(root, out, reports=True, decisions=decisions)
    assert outcome(second, K + "FOOD_1.jpg").status == "accepted"
    assert "review.accepted" in checks_for(second, K + "FOOD_1.jpg")
    assert outcome(second, K + "FOOD_2.jpg").status == "review"
    [exported] = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    assert (exported["reviewed_by"], exported["reviewed_at"], exported["review_reason"]) == (
        "steward-1", "2026-12-01T10:00:00+00:00", "a fair description")
    from data_cards.facts import compute_stats

    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    assert compute_stats(report, out).reviewed_rows == 1  # the card counts it
    # Remembered: the next run, without --decisions, decides the same.
    assert outcome(run(root, out), K + "FOOD_1.jpg").status == "accepted"
    assert len((out / "steward" / "decisions.jsonl").read_text().splitlines()) == 1


def test_a_rejection_reaches_the_contributor_with_the_reason(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text=SHORT)])
    decisions = write_decisions(tmp_path / "d.jsonl", [decision(root, "FOOD_1.jpg", "reject", reason="not Korean")])
    result = run(root, tmp_path / "out", decisions=decisions)
    assert outcome(result, K + "FOOD_1.jpg").status == "rejected"
    [issue] = [i for i in result.issues if i.finding.check == "review.rejected"]
    assert "not Korean" in issue.finding.message and issue.contributor == "c1"


def test_a_changed_caption_goes_back_to_review(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text=SHORT)])
    out = tmp_path / "out"
    run(root, out, decisions=write_decisions(tmp_path / "d.jsonl", [decision(root, "FOOD_1.jpg", "accept")]))
    submission(root, [row("FOOD_1.jpg", 1, text="kimchi soup")], images=False)
    result = run(root, out)
    assert outcome(result, K + "FOOD_1.jpg").status == "review"
    assert "review.changed" in checks_for(result, K + "FOOD_1.jpg")
    assert not (out / "clean" / "korea").exists() or not read_jsonl(out / "clean" / "korea" / "train" /
                                                                    "metadata.jsonl")


def test_an_accept_never_overrides_an_error(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text=SHORT, license="MIT")])
    result = run(root, tmp_path / "out", decisions=write_decisions(tmp_path / "d.jsonl",
                                                                    [decision(root, "FOOD_1.jpg", "accept")]))
    assert outcome(result, K + "FOOD_1.jpg").status == "rejected"


def test_a_submitted_review_column_cannot_forge_a_review(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, reviewed_by="me", review_reason="trust me")])
    run(root, tmp_path / "out")
    [exported] = read_jsonl(tmp_path / "out" / "clean" / "korea" / "train" / "metadata.jsonl")
    assert "reviewed_by" not in exported and "review_reason" not in exported


def test_withdrawn_contributors_and_images_are_excluded_also_when_submitted_again(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, contributor="c2"), row("FOOD_3.jpg", 3)])
    out = tmp_path / "out"
    run(root, out)
    steward = Steward.load(out, config().limits)
    steward.add_withdrawal(Withdrawal(kind="contributor", value="c2", at="2026-12-02T09:00:00+00:00",
                                      reason="private reason"))
    steward.add_withdrawal(Withdrawal(kind="image", value=sha(root / "korea" / "FOOD_3.jpg"),
                                      at="2026-12-02T09:05:00+00:00"))
    (root / "korea" / "FOOD_4.jpg").write_bytes((root / "korea" / "FOOD_3.jpg").read_bytes())  # sent again
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, contributor="c2"), row("FOOD_3.jpg", 3),
                      row("FOOD_4.jpg", 4, contributor="c9")], images=False)
    result = run(root, out, reports=True)
    statuses = {k: outcome(result, K + k).status for k in ("FOOD_1.jpg", "FOOD_2.jpg", "FOOD_3.jpg", "FOOD_4.jpg")}
    assert statuses == {"FOOD_1.jpg": "accepted", "FOOD_2.jpg": "rejected", "FOOD_3.jpg": "rejected",
                        "FOOD_4.jpg": "rejected"}
    assert "private reason" not in (out / "reports" / "report.json").read_text("utf-8")
    assert "private reason" not in (out / "reports" / "report.html").read_text("utf-8")


@pytest.mark.parametrize(("change", "problem"), [
    ({"image_sha256": "ab" * 31}, "not a SHA-256"),
    ({"decision": "maybe"}, "expected accept or reject"),
    ({"at": "yesterday"}, "not an ISO 8601 time"),
    ({"reviewer": ""}, "field reviewer: missing"),
    ({"reason": "x" * 5000}, "at most 2000"),
    ({"reason": "bell\x07"}, "control characters"),
    ({"extra": 1}, "unknown field(s) extra"),
])
def test_hostile_decision_rows_are_refused_each_naming_its_line(tmp_path, change, problem):
    good = {"image_sha256": "a" * 64, "caption_sha256": "b" * 64, "decision": "accept", "reviewer": "r",
            "at": "2026-12-01T10:00:00"}
    path = write_decisions(tmp_path / "d.jsonl", [good, good | change, [1, 2]])
    found, problems = read_rows(path, config().limits, decision_from)
    assert len(found) == 1
    assert problems[0].startswith(f"{path}:2: ") and problem in problems[0]
    assert problems[1].startswith(f"{path}:3: ")


def test_html_in_a_reason_is_escaped_in_the_report(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text=SHORT)])
    script = "<script>alert(1)</script>"
    run(root, tmp_path / "out", reports=True,
        decisions=write_decisions(tmp_path / "d.jsonl", [decision(root, "FOOD_1.jpg", "reject", reason=script)]))
    html = (tmp_path / "out" / "reports" / "report.html").read_text("utf-8")
    assert script not in html and "&lt;script&gt;" in html


def test_a_huge_or_irregular_decisions_file_stops_the_run_naming_it(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    cfg = config(limits={"max_metadata_mb": 0.001})
    huge = write_decisions(tmp_path / "d.jsonl", [{"reason": "x" * 2000}])
    with pytest.raises(UsageError, match="max_metadata_mb"):
        run(root, tmp_path / "out", cfg, decisions=huge)
    with pytest.raises(UsageError, match="regular file|cannot be opened"):
        run(root, tmp_path / "out", decisions=tmp_path)


def test_decisions_round_trip_through_csv(tmp_path):
    d = Decision(image_sha256="a" * 64, caption_sha256="b" * 64, decision="reject", reviewer="r, with comma",
                 at="2026-12-01T10:00:00", reason="multi\nline, \"quoted\"", record="korea/x.jpg")
    path = tmp_path / "d.csv"
    path.write_text(decisions_csv([d]), encoding="utf-8")
    assert read_rows(path, config().limits, decision_from) == ([d], [])


def test_a_changed_image_goes_back_to_review(root, tmp_path):
    from helpers import make_image

    submission(root, [row("FOOD_1.jpg", 1, text=SHORT)])
    out = tmp_path / "out"
    run(root, out, decisions=write_decisions(tmp_path / "d.jsonl", [decision(root, "FOOD_1.jpg", "accept")]))
    make_image(root / "korea" / "FOOD_1.jpg", seed=7)  # another photo under the same name
    result = run(root, out)
    assert outcome(result, K + "FOOD_1.jpg").status == "review"
    assert "review.changed" in checks_for(result, K + "FOOD_1.jpg")
