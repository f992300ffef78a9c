"""Reading untrusted files: only regular files inside a root, decided on the descriptor read.

A path is first resolved (symlinks that stay inside the root are allowed), then opened one
component at a time from the root's descriptor with O_NOFOLLOW, so a file swapped for a
symlink, a FIFO or a device after the check is refused instead of followed or blocked on:
the checks (regular file, inside the root, same inode as analysed) are made with fstat on the
descriptor that is then read.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_O_COMMON = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
# O_NONBLOCK: opening a FIFO swapped in after the lstat returns at once instead of waiting for
# a writer; it changes nothing for regular files.
_O_FILE = _O_COMMON | getattr(os, "O_NONBLOCK", 0)
_O_DIR = _O_COMMON | getattr(os, "O_DIRECTORY", 0)

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symlink"))


class UnsafeFile(OSError):
    """A file that must not be read; `check` is the finding's id, the message says why."""

    def __init__(self, check: str, message: str):
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class Identity:
    """Which file was read: compared when the same path is read again later in a run."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def kind_of(mode: int) -> str:
    """'a FIFO (named pipe)', 'a socket', ... for a non-regular st_mode."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def split_relative(rel: str) -> list[str]:
    """Components of a path relative to a root; absolute paths and '..' are refused."""
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        raise UnsafeFile("file.outside_root", f"'{rel}' is not a plain path inside the folder")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeFile("file.outside_root", f"'{rel}' points outside the submissions folder")
    return parts


class Root:
    """A folder whose files are untrusted: every read goes through `open`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.real = self.path.resolve()

    def resolve(self, rel: str) -> str:
        """`rel` with symlinks resolved, still relative to the root; refused if it leaves it."""
        split_relative(rel)
        try:
            real = Path(os.path.realpath(self.real / rel, strict=True))
        except FileNotFoundError as exc:
            raise UnsafeFile("file.missing", f"'{rel}' does not exist") from exc
        except OSError as exc:
            raise UnsafeFile("file.outside_root", f"'{rel}' cannot be resolved "
                             f"({exc.strerror or 'symlink loop'})") from exc
        if real == self.real or not real.is_relative_to(self.real):
            raise UnsafeFile("file.outside_root", f"'{rel}' is a symlink pointing outside the "
                             "submissions folder")
        return real.relative_to(self.real).as_posix()

    def lstat(self, rel: str) -> os.stat_result:
        """The entry itself (symlinks not followed)."""
        return os.lstat(self.real / posixpath.join(*split_relative(rel)))

    @contextmanager
    def open(self, rel: str, expect: Identity | None = None) -> Iterator[tuple[BinaryIO, Identity]]:
        """(binary file, its identity) for a regular file inside the root.

        Raises UnsafeFile with check file.outside_root, file.not_regular, file.missing,
        file.changed (the file is not the one `expect` describes) or file.unreadable.
        """
        parts = split_relative(self.resolve(rel))
        fd = self._open_fd(rel, parts)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFile("file.not_regular", f"'{rel}' is {kind_of(st.st_mode)}, "
                                 "not a regular file")
            identity = Identity.of(st)
            if expect is not None and (identity.dev, identity.ino, identity.size) != \
                    (expect.dev, expect.ino, expect.size):
                raise UnsafeFile("file.changed", f"'{rel}' was replaced or changed during the run")
            fh = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh, identity

    def _open_fd(self, rel: str, parts: list[str]) -> int:
        try:
            current = os.open(self.real, _O_DIR)
        except OSError as exc:
            raise UnsafeFile("file.unreadable", f"{self.path}: cannot be opened "
                             f"({exc.strerror})") from exc
        try:
            for part in parts[:-1]:
                nxt = os.open(part, _O_DIR, dir_fd=current)
                os.close(current)
                current = nxt
            # lstat before open: a FIFO or device is never opened at all (opening a device can
            # have side effects); the fstat after the open catches a swap in between.
            st = os.stat(parts[-1], dir_fd=current, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFile("file.not_regular", f"'{rel}' is {kind_of(st.st_mode)}, not a "
                                 "regular file")
            fd = os.open(parts[-1], _O_FILE, dir_fd=current)
            if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)
                raise UnsafeFile("file.changed", f"'{rel}' was replaced while it was opened")
            return fd
        except UnsafeFile:
            raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise UnsafeFile("file.changed", f"'{rel}' was replaced by a symlink during "
                                 "the run; it was not read") from exc
            if exc.errno == errno.ENOENT:
                raise UnsafeFile("file.missing", f"'{rel}' does not exist") from exc
            raise UnsafeFile("file.unreadable", f"'{rel}' cannot be read "
                             f"({exc.strerror})") from exc
        finally:
            os.close(current)

    def read(self, rel: str, max_bytes: int, expect: Identity | None = None
             ) -> tuple[bytes, Identity]:
        """The whole file, refused (file.too_large) when it holds more than `max_bytes`."""
        with self.open(rel, expect) as (fh, identity):
            if identity.size > max_bytes:
                raise UnsafeFile("file.too_large", f"'{rel}' is {identity.size:,} bytes, over "
                                 f"the {max_bytes:,}-byte cap")
            try:
                data = fh.read(max_bytes + 1)
            except OSError as exc:
                raise UnsafeFile("file.unreadable", f"'{rel}' cannot be read "
                                 f"({exc.strerror})") from exc
        if len(data) > max_bytes:  # grew after the fstat
            raise UnsafeFile("file.changed", f"'{rel}' grew while it was read")
        return data, identity
