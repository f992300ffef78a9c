"""One writer per output folder, and a publish that survives a kill at any instant.

After any interruption the output folder holds either the whole previous output or the
whole new one (the next command finishes an interrupted publish), never a mix, and never
half a file.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from helpers import imagefolder, run, tree_bytes
from typer.testing import CliRunner

import ccub.outdir
import ccub.pipeline
from ccub.cli import app
from ccub.config import load_config
from ccub.outdir import JOURNAL, TMP_PREFIX, OutputError, exclusive

OUTPUTS = ("clean", "index", "reports")


def state(out: Path) -> dict[str, dict[str, bytes]]:
    return {name: tree_bytes(out / name) for name in OUTPUTS if (out / name).is_dir()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two submissions, the output of the first (to start from), and of the second."""
    base = tmp_path_factory.mktemp("publish")
    first, second = base / "first", base / "second"
    imagefolder(first / "korea", [("FOOD_1.jpg", "a bowl of bibimbap with vegetables")])
    imagefolder(second / "india", [("FOOD_2.jpg", "a plate of vegetable biryani")], seed=5)
    run(first, base / "old", reports=True)
    run(second, base / "new", reports=True)
    return second, base / "old", state(base / "new")


@pytest.fixture
def two_outputs(built, tmp_path):
    """(second submission, `out` holding the first's output, old state, new state)."""
    second, template, new = built
    out = tmp_path / "out"
    shutil.copytree(template, out)
    return second, out, state(out), new


def comparable(snapshot: dict[str, dict[str, bytes]]) -> dict[str, bytes]:
    """What identifies an output whatever the time, the paths and the cards: the images,
    their metadata and the findings."""
    return {f"{name}/{path}": data for name, files in snapshot.items()
            for path, data in files.items()
            if "/images/" in path or path.endswith(("metadata.jsonl", "issues.csv"))}


def _killed_at_rename(second: Path, out: Path, kill_at: int) -> None:
    calls = iter(range(10**6))
    real = ccub.outdir._rename

    def rename(src, dst):
        if next(calls) == kill_at:
            os._exit(137)  # no handler, no cleanup: as a SIGKILL would leave it
        real(src, dst)

    ccub.outdir._rename = rename
    run(second, out, reports=True)
    os._exit(0)


@pytest.mark.parametrize("kill_at", range(6))  # 3 folders x (move old aside, move new in)
def test_kill_at_each_rename_then_next_command_finishes_the_publish(two_outputs, kill_at):
    second, out, old, new = two_outputs
    child = multiprocessing.get_context("fork").Process(target=_killed_at_rename,
                                                        args=(second, out, kill_at))
    child.start()
    child.join(120)
    assert child.exitcode == 137
    assert (out / JOURNAL).exists()  # the publish had begun: the journal says so
    # The next command that opens the folder (here `ccub card`) completes the publish.
    result = CliRunner().invoke(app, ["card", str(out)])
    assert result.exit_code == 0, result.output
    assert comparable(state(out)) == comparable(new)
    assert not (out / JOURNAL).exists() and not list(out.glob(TMP_PREFIX + "*"))


def _killed_before_publish(second: Path, out: Path) -> None:
    def report_writer(result, folder):
        (folder / "report.json").write_text("{half", "utf-8")
        os._exit(137)

    ccub.pipeline.validate(ccub.pipeline.Options(root=second, out=out, workers=1),
                           load_config(cwd=second), None, report_writer)


def test_kill_before_the_publish_leaves_the_old_output(two_outputs):
    second, out, old, new = two_outputs
    child = multiprocessing.get_context("fork").Process(target=_killed_before_publish,
                                                        args=(second, out))
    child.start()
    child.join(120)
    assert child.exitcode == 137
    assert state(out) == old  # untouched: the new output was still being built aside
    assert list(out.glob(TMP_PREFIX + "*"))  # ... and its leftovers are cleared next time
    result = CliRunner().invoke(app, ["card", str(out)])
    assert result.exit_code == 0, result.output
    assert comparable(state(out)) == comparable(old)
    assert not list(out.glob(TMP_PREFIX + "*"))


@pytest.mark.parametrize("fail_at", range(6))
def test_rename_failing_once_still_publishes_whole(two_outputs, monkeypatch, fail_at):
    second, out, old, new = two_outputs
    calls = iter(range(10**6))
    real = ccub.outdir._rename

    def rename(src, dst):
        if next(calls) == fail_at:
            raise OSError(errno.EIO, "I/O error")
        real(src, dst)

    monkeypatch.setattr(ccub.outdir, "_rename", rename)
    with pytest.raises(OutputError, match="I/O error"):
        run(second, out, reports=True)
    assert comparable(state(out)) == comparable(new)  # rolled forward right away
    assert not (out / JOURNAL).exists() and not list(out.glob(TMP_PREFIX + "*"))


def test_failing_report_writer_leaves_previous_output(two_outputs):
    second, out, old, _ = two_outputs

    def broken(result, folder):
        (folder / "report.json").write_text("{half", "utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ccub.pipeline.validate(ccub.pipeline.Options(root=second, out=out, workers=1),
                               load_config(cwd=second), None, broken)
    assert state(out) == old
    assert not list(out.glob(TMP_PREFIX + "*"))


def test_second_writer_exits_2_naming_the_holder(two_outputs):
    second, out, old, _ = two_outputs
    with exclusive(out, command="ccub validate"):
        result = CliRunner().invoke(app, ["validate", str(second), "--out", str(out),
                                          "--workers", "1"])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "being written by another ccub run" in text and f"pid {os.getpid()}" in text
        assert "--wait" in text  # how to queue instead
        card = CliRunner().invoke(app, ["card", str(out)])
        assert card.exit_code == 2 and "another ccub run" in " ".join(card.output.split())
    assert state(out) == old


def test_wait_runs_once_the_holder_is_done(two_outputs):
    second, out, _, new = two_outputs
    held = threading.Event()

    def hold() -> None:
        with exclusive(out, command="ccub validate"):
            held.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    start = time.monotonic()
    result = CliRunner().invoke(app, ["validate", str(second), "--out", str(out), "--workers",
                                      "1", "--wait"])
    holder.join()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start >= 1
    assert comparable(state(out)) == comparable(new)


def test_two_real_runs_on_one_out_never_mix(two_outputs):
    """Two processes racing for one folder: each exits 0 (it ran) or 2 (it was refused), and
    the folder ends with one whole output."""
    second, out, old, new = two_outputs
    import subprocess
    import sys

    runs = [subprocess.Popen([sys.executable, "-m", "ccub", "validate", str(second), "--out",
                              str(out), "--workers", "1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(180) for p in runs)
    assert codes in ([0, 0], [0, 2]), [p.stderr.read() for p in runs]
    assert comparable(state(out)) == comparable(new)


def test_read_only_output_is_a_clear_error(tmp_path, monkeypatch):
    root = tmp_path / "sub"
    imagefolder(root / "korea", [("FOOD_1.jpg", "a bowl of bibimbap with vegetables")])
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == tmp_path / "ro" / "out":
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = CliRunner().invoke(app, ["validate", str(root), "--out", str(tmp_path / "ro" / "out"),
                                      "--workers", "1"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"{tmp_path / 'ro' / 'out'}: cannot be written" in text
    assert "internal error" not in text


def test_full_disk_is_a_clear_error_and_keeps_the_old_output(two_outputs, monkeypatch):
    second, out, old, _ = two_outputs
    import ccub.export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ccub.export, "write_metadata", full)
    monkeypatch.setattr(ccub.pipeline, "write_metadata", full)
    result = CliRunner().invoke(app, ["validate", str(second), "--out", str(out),
                                      "--workers", "1"])
    assert result.exit_code == 2
    assert f"{out}: the disk is full" in " ".join(result.output.split())
    assert state(out) == old


def test_journal_naming_a_folder_outside_is_ignored(tmp_path):
    """The journal is ccub's own, but never trusted to move anything from outside `out`."""
    out = tmp_path / "out"
    (out / "clean").mkdir(parents=True)
    (tmp_path / "elsewhere" / "clean").mkdir(parents=True)
    (out / JOURNAL).write_text(json.dumps({"tmp": "../elsewhere", "names": ["clean"]}), "utf-8")
    with exclusive(out):
        pass
    assert (tmp_path / "elsewhere" / "clean").is_dir() and (out / "clean").is_dir()
    assert not (out / JOURNAL).exists()
