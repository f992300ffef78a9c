"""Reads stay inside the submissions folder, decided on the file actually opened.

A contributor controls the whole tree: links out of it, files swapped during the run,
FIFOs, sockets and devices where files are expected. Nothing outside may be read into the
clean set or the reports, and nothing may block or crash the run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    by_image,
    checks_for,
    imagefolder,
    read_jsonl,
    row,
    run,
    write_image,
    write_jsonl,
)
from PIL import Image

import ccub.pipeline

SECRET = "SECRET-home-address-42-Elm-Street"
CAPTION = "a bowl of bibimbap with seasoned vegetables"


def outside_secret(tmp_path: Path) -> Path:
    """A private text file next to (not inside) the submissions folder."""
    path = tmp_path / "private" / "notes.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{SECRET} and more personal data", "utf-8")
    return path


def outputs_text(out: Path) -> str:
    """Every byte ccub wrote, as text (binary files decoded leniently)."""
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(out.rglob("*"))
                   if p.is_file())


def test_sidecar_caption_symlinked_to_private_file_is_not_read(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    write_image(root / "india" / "FOOD" / "dosa.jpg", 1)
    (root / "india" / "FOOD" / "dosa.jpg.txt").symlink_to(outside_secret(tmp_path))
    write_image(root / "india" / "FOOD" / "idli.jpg", 2)
    (root / "india" / "FOOD" / "idli.txt").write_text("steamed idli with coconut chutney", "utf-8")
    result = run(root, out, flags={"license": "CC0-1.0", "consent": "n/a"}, reports=True)
    assert SECRET not in outputs_text(out)
    assert "file.outside_root" in checks_for(result, "india/FOOD/dosa.jpg")
    assert by_image(result)["india/FOOD/dosa.jpg"].record.caption is None
    assert by_image(result)["india/FOOD/idli.jpg"].status == "accepted"


@pytest.mark.parametrize("name", ["metadata.jsonl", "metadata.csv", "captions.csv",
                                  "submission.toml", "manifest.csv"])
def test_metadata_file_symlinked_outside_is_not_read(tmp_path, name):
    root, out = tmp_path / "sub", tmp_path / "out"
    private = tmp_path / "private" / name
    private.parent.mkdir(parents=True)
    if name == "submission.toml":
        private.write_text(f'creator = "{SECRET}"\n', "utf-8")
    elif name.endswith(".jsonl"):
        write_jsonl(private, [row("a.jpg", text=SECRET)])
    else:
        private.write_text(f"file_name,text,url,country_code\na.jpg,{SECRET},,KOR\n", "utf-8")
    imagefolder(root / "korea", [("b.jpg", CAPTION)], seed=3)
    write_image(root / "india" / "FOOD" / "a.jpg", 1)
    (root / "india" / "FOOD" / "a.jpg.txt").write_text("a crisp masala dosa on a plate", "utf-8")
    (root / "india" / "FOOD" / name).symlink_to(private)
    result = run(root, out, flags={"license": "CC0-1.0", "consent": "n/a", "creator": "R"}, reports=True)
    assert SECRET not in outputs_text(out)
    assert by_image(result)["korea/b.jpg"].status == "accepted"
    assert result.exit_code in (0, 1)


@pytest.mark.attacker_changes_input
def test_image_swapped_for_outside_symlink_after_the_walk_is_not_read(tmp_path, monkeypatch):
    """Between reading the metadata and decoding the image, the image becomes a link to a
    private photo: the link is refused when opened, the private photo never decoded."""
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION), ("b.jpg", "a plate of kimchi and rice")])
    private = write_image(tmp_path / "private" / "family.jpg", 99)
    real_read = ccub.pipeline.read_submissions

    def read_then_swap(*args, **kwargs):
        result = real_read(*args, **kwargs)
        (root / "korea" / "b.jpg").unlink()
        (root / "korea" / "b.jpg").symlink_to(private)
        return result

    monkeypatch.setattr(ccub.pipeline, "read_submissions", read_then_swap)
    result = run(root, out, reports=True)
    assert "file.outside_root" in checks_for(result, "korea/b.jpg")
    assert by_image(result)["korea/b.jpg"].status == "rejected"
    assert not list((out / "clean").rglob("b*.jpg"))
    assert result.facts["korea/b.jpg"].sha256 is None  # its bytes were never read


@pytest.mark.attacker_changes_input
def test_image_swapped_after_analysis_exports_only_the_analysed_bytes(tmp_path, monkeypatch):
    """Swapped for a link to a private photo between analysis and export: what is exported
    is the analysed (and stripped) picture, never the private one."""
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION)])
    original = np.asarray(Image.open(root / "korea" / "a.jpg").convert("RGB"), dtype=np.int16)
    private = write_image(tmp_path / "private" / "family.jpg", 99)
    real_export = ccub.pipeline._export

    def swap_then_export(*args, **kwargs):
        (root / "korea" / "a.jpg").unlink()
        (root / "korea" / "a.jpg").symlink_to(private)
        return real_export(*args, **kwargs)

    monkeypatch.setattr(ccub.pipeline, "_export", swap_then_export)
    result = run(root, out, reports=True)
    exported = out / "clean" / "korea" / "train" / "images" / "a.jpg"
    assert by_image(result)["korea/a.jpg"].status == "accepted"
    pixels = np.asarray(Image.open(exported).convert("RGB"), dtype=np.int16)
    assert np.abs(pixels - original).mean() < 1  # the analysed photo, losslessly stripped
    assert exported.read_bytes() != private.read_bytes()


def test_symlink_loop_is_a_finding(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    imagefolder(root / "korea", [("a.jpg", CAPTION)])
    (root / "india" / "FOOD").mkdir(parents=True)
    (root / "india" / "FOOD" / "loop1.jpg").symlink_to(root / "india" / "FOOD" / "loop2.jpg")
    (root / "india" / "FOOD" / "loop2.jpg").symlink_to(root / "india" / "FOOD" / "loop1.jpg")
    result = run(root, out, reports=True)
    assert "file.outside_root" in checks_for(result, "india/FOOD/loop1.jpg")
    assert by_image(result)["korea/a.jpg"].status == "accepted"


def test_symlink_inside_the_root_is_followed(tmp_path):
    """Links that stay inside the folder are fine: the target is read like any file."""
    root, out = tmp_path / "sub", tmp_path / "out"
    write_image(root / ".shared" / "real.jpg", 4)  # hidden: not a submission of its own
    (root / "korea").mkdir(parents=True)
    (root / "korea" / "a.jpg").symlink_to(root / ".shared" / "real.jpg")
    write_jsonl(root / "korea" / "metadata.jsonl", [row("a.jpg", text=CAPTION)])
    result = run(root, out, reports=True)
    assert by_image(result)["korea/a.jpg"].status == "accepted"


def _special_files(root: Path) -> list[str]:
    """FIFOs named like every file ccub reads, a socket and (as root) a device."""
    names = ["korea/metadata.jsonl", "india/notes.csv", "india/FOOD/x.jpg",
             "india/FOOD/y.jpg.txt", "india/submission.toml", "nigeria/captions.csv"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / name)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "india" / "FOOD" / "z.jpg"))
    sock.close()
    names.append("india/FOOD/z.jpg")
    try:
        os.mknod(root / "india" / "FOOD" / "null.jpg", 0o600 | 0o020000, os.makedev(1, 3))
        names.append("india/FOOD/null.jpg")
    except PermissionError:
        pass  # not root: character devices cannot be made
    return names


def test_fifos_sockets_and_devices_are_findings_not_hangs(tmp_path, guard):
    root, out = tmp_path / "sub", tmp_path / "out"
    write_image(root / "india" / "FOOD" / "y.jpg", 5)
    imagefolder(root / "nigeria", [("a.jpg", "a pot of smoky party jollof rice")], seed=6)
    specials = _special_files(root)
    guard.watch(root)
    # A subprocess, so a blocking open fails the test by timeout instead of hanging it.
    done = subprocess.run([sys.executable, "-m", "ccub", "validate", str(root), "--out", str(out),
                           "--workers", "2"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    flagged = {i["file"] for i in report["issues"] if i["check"] == "file.not_regular"}
    assert set(specials) <= flagged
    rows = read_jsonl(out / "clean" / "nigeria" / "train" / "metadata.jsonl")
    assert [r["text"] for r in rows] == ["a pot of smoky party jollof rice"]


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_decode_workers_stop_when_the_run_is_killed(tmp_path):
    """A killed run leaves no decode worker running on through the rest of its queue."""
    root, out = tmp_path / "sub", tmp_path / "out"
    (root / "korea").mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), np.uint8)
    Image.fromarray(noise).save(root / "korea" / "0.png", compress_level=1)
    for i in range(1, 64):  # hard links: many slow decodes, one file to write
        os.link(root / "korea" / "0.png", root / "korea" / f"{i}.png")
    parent = subprocess.Popen([sys.executable, "-m", "ccub", "validate", str(root), "--out",
                               str(out), "--workers", "2", "--culture", "korea"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(workers := _children(parent.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) >= 2, "the run did not start its workers"
    time.sleep(0.5)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 3
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _running(w)], "workers outlived the killed run"
