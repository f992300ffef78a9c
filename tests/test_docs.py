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


ROOT = Path(__file__).parents[1]
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")


def architecture_references() -> list[tuple[Path, str | None]]:
    """(file, name defined in it or None) for every `dir/file.py` (optionally followed by `name`)
    in ARCHITECTURE.md, and every bare `file.py` of a list that follows a `dir/file.py`."""
    found = []
    for match in re.finditer(r"`([a-z_]+(?:/[a-z_]+)*\.py)`(?: `(\w+)`)?", ARCHITECTURE):
        path, name = match.groups()
        if "/" not in path:  # a sibling of the last full path named before it
            path = str(Path(found[-1][0]).parent / path)
        found.append((path, name))
    return [(ROOT / path, name) for path, name in found]


def test_architecture_names_only_modules_and_functions_that_exist():
    references = architecture_references()
    assert len(references) > 20, "the pattern finds the references"
    for path, name in references:
        assert path.is_file(), f"ARCHITECTURE.md names {path.relative_to(ROOT)}, which does not exist"
        if name:
            source = path.read_text(encoding="utf-8")
            assert re.search(rf"^(def|class) {name}\b|^{name}\b.*=", source, re.M), \
                f"ARCHITECTURE.md names {name} in {path.relative_to(ROOT)}, which does not define it"
    folders = re.findall(r"`([a-z_]+/)`", ARCHITECTURE)
    assert all((ROOT / f).is_dir() for f in folders), folders


def test_gitignore_keeps_the_commands_default_outputs_out_of_git():
    """What the commands write by default when run from the repository root, and the user's
    configuration files, are never committed by accident."""
    import inspect

    from ccub.commands import study, validate

    ignored = set((ROOT / ".gitignore").read_text(encoding="utf-8").splitlines())
    assert {"/data/", "/submissions/", "/runs/", "/study/", "/responses/", "/ccub.toml", "/card.toml",
            ".ccub-benchmark-cache/"} <= ignored
    defaults = [inspect.signature(validate.validate).parameters["out"].default,
                inspect.signature(study.make).parameters["out"].default]
    assert all(f"/{Path(d).as_posix()}/" in ignored for d in defaults), defaults
