"""Outputs get the modes a plain open()/mkdir() would give them, so others on a shared server
can read a report when the umask lets them (mkstemp/mkdtemp alone make everything private)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from ccub import files
from ccub.files import atomic_write_text, current_umask, temporary_folder


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "file_mode", "folder_mode"),
                         [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def test_written_files_and_renamed_folders_respect_the_umask(tmp_path, mask, file_mode, folder_mode):
    with umask(mask):
        atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
        atomic_write_text(tmp_path / "report.html", "<p>again</p>")  # replacing keeps the mode
        folder = temporary_folder(tmp_path, ".run.")
    assert mode(tmp_path / "report.html") == file_mode
    assert (tmp_path / "report.html").read_text() == "<p>again</p>"
    assert mode(folder) == folder_mode


def test_umask_is_read_each_time_and_without_proc(tmp_path, monkeypatch):
    with umask(0o027):
        assert current_umask() == 0o027
    with umask(0o022):
        assert current_umask() == 0o022
        real_open = open

        def no_proc(path, *args, **kwargs):
            if str(path).startswith("/proc/"):
                raise OSError("no /proc here")
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(files, "open", no_proc, raising=False)
        assert current_umask() == 0o022
        assert os.umask(0o022) == 0o022  # the fallback put the umask back
