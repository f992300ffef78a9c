"""How long work tells whoever watches it what it is doing, without knowing who watches.

Library code (training, prepare, the benchmark) reports through a plain callback
``progress(stage, done, total, **fields)`` and announces phases that cannot count (loading a
model) with ``with phase(progress, "loading UNet from ..."):``. A callback without a ``phase``
method (a test's lambda, or none at all) simply sees no phases. `ccub.commands.common.Reporter`
is the watcher the commands use: bars on a terminal, log lines otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

ProgressFn = Callable[..., None]  # (stage, done, total, **fields)


def phase(progress: Any, text: str) -> AbstractContextManager[Any]:
    """`progress.phase(text)` when the watcher shows phases, else a context that does nothing."""
    show = getattr(progress, "phase", None)
    return show(text) if callable(show) else nullcontext()


def report(progress: Any, stage: str, done: float, total: int, **fields: Any) -> None:
    """Call `progress(stage, done, total, **fields)`; a plain 3-argument callback gets no fields."""
    if progress is None:
        return
    if fields and not getattr(progress, "takes_fields", False):
        progress(stage, done, total)
        return
    progress(stage, done, total, **fields)
