"""Writing files so that a reader never sees half of one: a temporary name beside it, then a rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask now (it may change while ccub runs, so it is read each time).

    Linux shows it in /proc/self/status; elsewhere the only way is to set it and set it back,
    under a lock so that two threads of ccub never see each other's placeholder.
    """
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode ``mkdir()`` gives a new folder: 0o777 less the umask."""
    return 0o777 & ~current_umask()


def temporary_folder(parent: Path, prefix: str) -> Path:
    """A new folder in `parent` (``tempfile.mkdtemp``, private while it is built) given the mode
    of a normal ``mkdir`` -- for a folder that is renamed into place once complete, so others
    can read it as they could any other output."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(tmp, folder_mode())
    return tmp


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary path in `path`'s folder, flush it to disk, rename it to `path`.

    The rename is atomic on POSIX and Windows, so `path` holds either its old content or the whole
    new one; on any failure (or Ctrl-C) the temporary file is removed and `path` is untouched.
    The file gets the mode a plain ``open()`` would give it (0o666 less the umask), not
    ``mkstemp``'s private 0o600, so others on a shared server can read the outputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())  # after `write`, which may have replaced the file
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
