"""An output folder that one run writes at a time, published all at once.

`exclusive(out)` takes a lock on the folder for the whole run (a second run exits naming the
holder, or waits) and first completes any publish that an earlier run left half done.

`publish(tmp, out, names)` moves the finished folders `tmp/<name>` over `out/<name>`. A
journal written before the first rename makes the group of renames one step: a run killed at
any instant leaves the journal behind, and the next command that opens the folder rolls the
publish forward, so the folder then holds the whole new output; killed before the journal, it
still holds the whole old one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from ccub.files import atomic_write_text

LOCK_FILE = ".ccub.lock"
HOLDER_FILE = ".ccub.lock.json"
JOURNAL = ".ccub-publish.json"
TMP_PREFIX = ".ccub-tmp-"


class OutputBusy(RuntimeError):
    """Another run holds the folder."""


class OutputError(RuntimeError):
    """The folder cannot be written (read-only, full disk, not a folder)."""


def _rename(src: Path, dst: Path) -> None:
    # One function for every rename of a publish, so tests can fail or kill at each of them.
    os.rename(src, dst)


def describe_os_error(exc: OSError, folder: Path) -> str:
    """A message that names the folder and the fix for the usual causes."""
    import errno

    if exc.errno == errno.ENOSPC:
        return f"{folder}: the disk is full; free some space or choose another --out"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{folder}: cannot be written (permission denied or read-only); choose another --out"
    if exc.errno == errno.ENOTDIR:
        return f"{folder}: a file stands where a folder is needed; choose another --out"
    return f"{folder}: {exc.strerror or exc}"


@contextmanager
def exclusive(out: Path, wait: bool = False, command: str = "ccub") -> Iterator[Path]:
    """Hold `out` for one run: create it, lock it, finish an interrupted publish in it."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out / LOCK_FILE, thread_local=False)
        try:
            lock.acquire(blocking=wait)
        except Timeout:
            raise OutputBusy(f"{out} is being written by another ccub run ({_holder(out)}); "
                             "run again when it has finished (`ccub validate --wait` waits "
                             "by itself)") from None
    except OSError as exc:
        raise OutputError(describe_os_error(exc, out)) from exc
    try:
        atomic_write_text(out / HOLDER_FILE, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        recover(out)
        yield out
    except OSError as exc:
        raise OutputError(describe_os_error(exc, out)) from exc
    finally:
        (out / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()


def _holder(out: Path) -> str:
    try:
        info = json.loads((out / HOLDER_FILE).read_text("utf-8"))
        return f"{info['command']}, pid {info['pid']} on {info['host']}, since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh temporary folder inside `out` (same file system: renames are atomic) to build
    the new output in; removed afterwards unless a publish from it has begun, which is then
    finished."""
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out))
    try:
        yield tmp
    finally:
        if (out / JOURNAL).exists():
            with suppress(OSError):  # if the renames fail again, the next command finishes them
                _roll_forward(out)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out: Path, names: tuple[str, ...]) -> None:
    """Move `tmp/<name>` to `out/<name>` for every name, as one step (see the module doc)."""
    atomic_write_text(out / JOURNAL, json.dumps({"tmp": tmp.name, "names": list(names)}))
    _roll_forward(out)


def _journal(out: Path) -> tuple[Path, list[str]] | None:
    """(temporary folder, names) of the journal; None when it is not one ccub wrote."""
    try:
        journal = json.loads((out / JOURNAL).read_text("utf-8"))
        tmp, names = journal["tmp"], journal["names"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    plain = [tmp, *names] if isinstance(names, list) else [None]
    if not all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in plain) \
            or not tmp.startswith(TMP_PREFIX):
        return None
    return out / tmp, names


def _roll_forward(out: Path) -> None:
    journal = _journal(out)
    if journal is None:  # never move anything on the word of a file ccub did not write
        (out / JOURNAL).unlink()
        return
    tmp, names = journal
    aside = tmp / ".previous"
    for name in names:
        if not (tmp / name).exists():
            continue  # already moved into place
        if (out / name).exists():
            aside.mkdir(exist_ok=True)
            if (aside / name).exists():
                shutil.rmtree(aside / name)
            _rename(out / name, aside / name)
        _rename(tmp / name, out / name)
    (out / JOURNAL).unlink()
    shutil.rmtree(tmp, ignore_errors=True)


def recover(out: Path) -> None:
    """Finish a publish that was interrupted, then remove temporary folders of killed runs.

    Call only while holding `exclusive(out)`: a running publish looks interrupted too.
    """
    if (out / JOURNAL).exists():
        _roll_forward(out)
    for tmp in out.glob(TMP_PREFIX + "*"):
        shutil.rmtree(tmp, ignore_errors=True)
