"""Steward at scale: 100,000 published rows, 10,000 review decisions, one contributor withdrawn.

Times, on a synthetic output folder (rows only, empty image files):
  - `Steward.load` of the decisions and withdrawals;
  - the look-ups validate makes per record (`is_withdrawn`, then `decision_for`, as
    ccub/checks/steward.py and ccub/pipeline.py `_apply_reviews` do);
  - the withdraw rebuild (`ccub.steward.withdraw.rebuild`: plan, hard-linked tree, publish);
and, as the reference measured in the same run, a plain JSON-lines parse of the same rows.

    python bench/steward_scale.py [--rows 100000] [--decisions 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccub.config import load_config  # noqa: E402
from ccub.outdir import exclusive  # noqa: E402
from ccub.steward import Steward, caption_digest  # noqa: E402
from ccub.steward.withdraw import rebuild  # noqa: E402


def digest(i: int, kind: str = "img") -> str:
    return hashlib.sha256(f"{kind}-{i}".encode()).hexdigest()


def build(data: Path, rows: int, decisions: int, contributors: int, withdrawn: str) -> None:
    split = data / "clean" / "korea" / "train"
    (split / "images").mkdir(parents=True)
    lines = []
    for i in range(rows):
        name = f"images/IMG_{i:06d}.jpg"
        (split / name).touch()
        lines.append(json.dumps({"file_name": name, "text": f"a bowl of kimchi stew number {i}", "culture": "korea",
                                 "category": "FOOD", "license": "CC-BY-4.0", "creator": "x",
                                 "contributor": f"c{i % contributors}", "consent": "n/a",
                                 "source_file": f"korea/IMG_{i:06d}.jpg", "source_sha256": digest(i),
                                 "export": "lossless"}) + "\n")
    (split / "metadata.jsonl").write_text("".join(lines), "utf-8")
    steward = data / "steward"
    steward.mkdir()
    (steward / "decisions.jsonl").write_text("".join(json.dumps({
        "image_sha256": digest(i * (rows // decisions)), "caption_sha256": caption_digest(f"caption {i}"),
        "decision": "accept" if i % 3 else "reject", "reviewer": "steward-1", "at": "2026-12-01T10:00:00+00:00",
        "reason": "ok", "record": f"korea/IMG_{i:06d}.jpg"}, sort_keys=True) + "\n" for i in range(decisions)), "utf-8")
    (steward / "withdrawals.jsonl").write_text(json.dumps({
        "kind": "contributor", "value": withdrawn, "at": "2026-12-07T10:00:00+00:00", "reason": "private",
        "items": []}) + "\n", "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--contributors", type=int, default=500)
    args = parser.parse_args()
    cfg = load_config(cwd=Path(__file__).parent)
    tmp = Path(tempfile.mkdtemp(prefix="ccub-steward-bench-"))
    try:
        data = tmp / "data"
        t = time.perf_counter()
        build(data, args.rows, args.decisions, args.contributors, "c7")
        print(f"built {args.rows} rows, {args.decisions} decisions in {time.perf_counter() - t:.1f} s")
        meta = data / "clean" / "korea" / "train" / "metadata.jsonl"

        t = time.perf_counter()
        with meta.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        reference = time.perf_counter() - t

        t = time.perf_counter()
        steward = Steward.load(data, cfg.limits)
        load = time.perf_counter() - t

        t = time.perf_counter()
        withdrawn = decided = 0
        for r in rows:
            if steward.is_withdrawn(r["source_sha256"], r["contributor"]):
                withdrawn += 1
                continue
            content = (r["source_sha256"], caption_digest(r["text"]))
            decided += steward.decision_for(*content) is not None or steward.earlier_decision(r["source_file"]) \
                is not None
        lookups = time.perf_counter() - t

        t = time.perf_counter()
        with exclusive(data, command="bench"):
            rebuilt = rebuild(data, steward)
        rebuild_s = time.perf_counter() - t
        left = sum(1 for _ in meta.open(encoding="utf-8"))
        assert rebuilt.rows == withdrawn and left == args.rows - withdrawn, (rebuilt.rows, withdrawn, left)

        print(f"reference: JSON-lines parse of {args.rows} rows     {reference:8.3f} s")
        for name, seconds in (("Steward.load", load), (f"look-ups for {args.rows} records ({withdrawn} withdrawn, "
                                                       f"{decided} decided)", lookups),
                              (f"withdraw rebuild ({rebuilt.rows} rows, {rebuilt.files} files removed)", rebuild_s)):
            print(f"{name:60} {seconds:8.3f} s   {seconds / reference:6.2f} x reference")
        total = load + lookups
        print(f"{'load + look-ups (what validate adds)':60} {total:8.3f} s   {total / reference:6.2f} x reference")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
