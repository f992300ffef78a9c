"""Writing files so that a reader never sees half of one: a temporary name beside it, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary path in `path`'s folder, flush it to disk, rename it to `path`.

    The rename is atomic on POSIX and Windows, so `path` holds either its old content or the whole
    new one; on any failure (or Ctrl-C) the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # the data must be on disk before the name points at it
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def create_text(path: Path, text: str) -> None:
    """Write a new file at `path` in one step, refusing (FileExistsError) when any file is there:
    the whole text is written under a temporary name, then linked to `path`, which fails
    instead of replacing an existing file."""
    path = Path(path)

    def link(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")
        os.link(tmp, path)

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        link(tmp)
    finally:
        os.unlink(tmp)
