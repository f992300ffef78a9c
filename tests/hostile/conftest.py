"""Hostile-input tests: every case is named for the attack or fault it plays.

The input is hashed before and after every run: every `ccub validate` run in this folder (in
process, through the pipeline or the CLI) checks that its submissions folder is byte-for-byte,
mode and mtime the same afterwards, even when the run fails. For other inputs (manifests,
response files, runs in a subprocess) call `guard.watch(folder)` once the folder is built;
it is checked when the test ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import snapshot

import ccub.pipeline


class InputGuard:
    def __init__(self) -> None:
        self.watched: dict[Path, dict] = {}

    def watch(self, folder: Path) -> Path:
        self.watched[Path(folder)] = snapshot(Path(folder))
        return Path(folder)

    def check(self) -> None:
        for folder, before in self.watched.items():
            assert snapshot(folder) == before, f"the input {folder} was modified"


@pytest.fixture
def guard():
    watcher = InputGuard()
    yield watcher
    watcher.check()


def pytest_configure(config):
    config.addinivalue_line("markers", "attacker_changes_input: the test itself changes the "
                            "input during the run (a swap); its input is not compared")


@pytest.fixture(autouse=True)
def validate_leaves_input_untouched(request, monkeypatch):
    if request.node.get_closest_marker("attacker_changes_input"):
        return
    real = ccub.pipeline.validate

    def guarded(options, *args, **kwargs):
        before = snapshot(options.root) if options.root.is_dir() else None
        try:
            return real(options, *args, **kwargs)
        finally:
            if before is not None:
                assert snapshot(options.root) == before, f"validate modified {options.root}"

    monkeypatch.setattr(ccub.pipeline, "validate", guarded)
