"""Test settings every module shares, and the `root` fixture; helpers are in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the tests may reach the network (language models, tokenizers).
os.environ["HF_HUB_OFFLINE"] = "1"
# Under pytest-xdist every worker is a process: torch's default of one thread per core would
# put cores x workers threads on the cores, and small tiny-model ops slow down many times over.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _clean_working_folder(tmp_path_factory: pytest.TempPathFactory):
    """Run in an empty folder: commands read ./ccub.toml when present, and a user's file in the
    checkout must not change what the tests see."""
    previous = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(previous)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The submissions folder (the output goes to tmp_path/out, beside it)."""
    path = tmp_path / "subs"
    path.mkdir()
    return path


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """Where the browser tests' Chromium saves downloads."""
    return tmp_path / "downloads"


@pytest.fixture
def driver(downloads: Path):
    """Headless Chromium (tests/browser.py); skips the test, or fails it in CI, when absent."""
    from browser import chromium, require_browser

    require_browser()
    with chromium(downloads) as web_driver:
        yield web_driver
