"""The README is part of the interface: its commands and catalogue must stay true."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ccub.checks.registry import all_specs
from ccub.cli import app

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_setup_commands():
    first = "\n".join(README.splitlines()[:12])
    assert "pip install -e . && ccub validate examples/submissions" in first
    assert "pip install -e '.[test]' &&" in first and "pytest" in first


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci and "<!-- test-command -->" in README


def test_readme_check_catalogue_is_current():
    documented = set(re.findall(r"`([a-z]+\.[a-z_]+)`", README))
    missing = [spec.id for spec in all_specs() if spec.id not in documented]
    assert not missing, f"README check catalogue lacks {missing}; run `ccub checks --markdown`"
    result = CliRunner().invoke(app, ["checks", "--markdown"], env={"COLUMNS": "300"})
    block = README.split("<!-- check-catalogue")[1].split("<!-- /check-catalogue -->")[0]
    assert block.split("\n", 1)[1] == result.output
