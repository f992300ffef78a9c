"""The README and docs/ are part of the interface: their commands, links and catalogue must stay true."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ccub.checks.registry import all_specs
from ccub.cli import app

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
CHECKS_PAGE = (Path(__file__).parents[1] / "docs" / "checks.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_setup_commands():
    first = "\n".join(README.splitlines()[:12])
    assert "pip install -e . && ccub validate examples/submissions" in first
    assert "pip install -e '.[test]' &&" in first and "pytest" in first


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test-command -->" in ci and "<!-- test-command -->" in README


def test_readme_check_catalogue_is_current():
    """The catalogue lives in docs/checks.md; the name is kept for history."""
    documented = set(re.findall(r"`([a-z]+\.[a-z_]+)`", CHECKS_PAGE))
    missing = [spec.id for spec in all_specs() if spec.id not in documented]
    assert not missing, f"docs/checks.md check catalogue lacks {missing}; run `ccub checks --markdown`"
    result = CliRunner().invoke(app, ["checks", "--markdown"], env={"COLUMNS": "300"})
    block = CHECKS_PAGE.split("<!-- check-catalogue")[1].split("<!-- /check-catalogue -->")[0]
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


# ---------------------------------------------------------------- links and commands in the docs

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A fenced code block, also one indented inside a list item.
FENCE = re.compile(r"^[ ]*(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^[ ]*(?P=fence)[ \t]*$",
                   re.M | re.S)
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^[ ]{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s|$)", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _blank_out(text: str, pattern: re.Pattern[str]) -> str:
    """`text` with every match of `pattern` replaced by spaces (newlines kept, so line numbers hold)."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def link_problems(name: str, text: str, folder: Path) -> list[str]:
    """'name:line: target' for every relative link of a Markdown text that names no existing file
    or folder (resolved from `folder`); anchors are not checked, code is not read."""
    prose = _blank_out(_blank_out(text, FENCE), re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S))
    problems = []
    for match in [*LINK.finditer(prose), *REFERENCE_LINK.finditer(prose)]:
        target = match.group("target")
        if target.startswith("#") or SCHEME.match(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not (folder / path).exists():
            line = prose.count("\n", 0, match.start()) + 1
            problems.append(f"{name}:{line}: link to {target}, which does not exist")
    return problems


def test_every_relative_link_in_the_docs_resolves():
    problems = [p for doc in DOC_FILES
                for p in link_problems(str(doc.relative_to(ROOT)), doc.read_text("utf-8"), doc.parent)]
    assert not problems, "\n".join(problems)


def test_the_link_checker_reports_a_missing_file(tmp_path):
    (tmp_path / "there.md").write_text("x")
    text = ("[ok](there.md) [ok](there.md#part) [web](https://example.org/x) [anchor](#top)\n"
            "`[code](nowhere.md)`\n```text\n[fenced](nowhere.md)\n```\n"
            "see [the gone page](gone.md#intro) and ![a picture](img/none.png)\n[ref]: missing/ref.md\n")
    assert link_problems("fake.md", text, tmp_path) == [
        "fake.md:6: link to gone.md#intro, which does not exist",
        "fake.md:6: link to img/none.png, which does not exist",
        "fake.md:7: link to missing/ref.md, which does not exist",
    ]


def _strip_comment(line: str) -> str:
    """The line up to a shell comment: a # that starts a word outside quotes."""
    quote, previous = None, " "
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return line[:i]
        previous = char
    return line


def shell_commands(text: str) -> list[tuple[int, str]]:
    """(line, command) for every logical line of the shell code blocks of a Markdown text:
    continuations (a trailing backslash) joined, comments and `$ ` prompts removed."""
    commands = []
    for block in FENCE.finditer(text):
        if block.group("lang").lower() not in SHELL_LANGUAGES:
            continue
        first = text.count("\n", 0, block.start("body")) + 1
        pending, start = [], None
        for offset, raw in enumerate(block.group("body").splitlines()):
            line = _strip_comment(raw).strip()
            if start is None:
                start = first + offset
                line = line.removeprefix("$ ")
            if line.endswith("\\"):
                pending.append(line[:-1])
                continue
            pending.append(line)
            if " ".join(pending).strip():
                commands.append((start, " ".join(pending)))
            pending, start = [], None
        if pending and " ".join(pending).strip():
            commands.append((start, " ".join(pending)))
    return commands


def _invocations(command: str) -> list[list[str]]:
    """The arguments of every ccub invocation in one shell command: `ccub ...`, `VAR=x ccub ...`
    or `... -m ccub ...` (python -m, accelerate launch -m) in each part of a list or pipeline."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    tokens = list(lexer)
    parts, part = [], []
    for token in tokens:
        if token in {"&&", "||", ";", "|", "&", "(", ")"}:
            parts.append(part)
            part = []
        else:
            part.append(token)
    parts.append(part)
    found = []
    for part in parts:
        # A redirection ends the arguments (`ccub config > ccub.toml`).
        cut = next((i for i, t in enumerate(part) if t and set(t) <= set("<>&")), len(part))
        words = part[:cut]
        for i, word in enumerate(words):
            leading = all(re.fullmatch(r"[A-Za-z_]\w*=.*", w) for w in words[:i])
            if word == "ccub" and (leading or (i > 0 and words[i - 1] == "-m")):
                found.append(words[i + 1:])
                break
    return found


def _options(command) -> dict[str, bool]:
    """Every option name a click command accepts (secondary `--no-x` names included) -> takes a value.
    Typer builds its commands with a click of its own (typer._click), so types are not tested."""
    names = {"--help": False}
    for param in command.params:
        if param.param_type_name == "option":
            takes_value = not (param.is_flag or param.count)
            for name in (*param.opts, *param.secondary_opts):
                names[name] = takes_value
    return names


def invocation_problems(args: list[str], root) -> list[str]:
    """What is wrong with `ccub ARGS`: an unknown command or subcommand, an option the command does
    not accept, or a group left without its subcommand. Positional values are not judged."""
    command, path, problems, i = root, ["ccub"], [], 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            name, equals, _ = token.partition("=")
            accepted = _options(command)
            if name not in accepted:
                problems.append(f"`{' '.join(path)}` has no option {name}")
                i += 1
            else:
                i += 1 if equals or not accepted[name] else 2
            continue
        if hasattr(command, "commands"):
            if token not in command.commands:
                problems.append(f"`{' '.join(path)}` has no command {token!r}")
                return problems
            command = command.commands[token]
            path.append(token)
        i += 1
    if hasattr(command, "commands") and not {"--help", "--version"} & set(args):
        problems.append(f"`{' '.join(path)}` needs a command ({', '.join(command.commands)})")
    return problems


def command_problems(name: str, text: str) -> tuple[list[str], int]:
    """'name:line: problem' for every ccub command line of a Markdown text's shell blocks, and
    how many ccub invocations were checked."""
    root = typer.main.get_command(app)
    problems, checked = [], 0
    for line, command in shell_commands(text):
        for args in _invocations(command):
            checked += 1
            problems += [f"{name}:{line}: {problem} (in: {command.strip()})"
                         for problem in invocation_problems(args, root)]
    return problems, checked


def test_every_ccub_command_in_the_docs_exists_with_its_options():
    problems, checked = [], 0
    for doc in DOC_FILES:
        found, count = command_problems(str(doc.relative_to(ROOT)), doc.read_text("utf-8"))
        problems += found
        checked += count
    assert checked > 30, f"only {checked} ccub command lines found: the parser misses them"
    assert not problems, "\n".join(problems)


FAKE_DOC = """\
# A page

```bash
ccub validate examples/submissions --workers 2 \\
    --bogus-flag x   # a comment naming --not-a-flag
ccub stduy make runs/x
pip install -e . && ccub finetune --culture india --no-prepare --resume=latest
echo ccub --nope; HF_HUB_OFFLINE=1 ccub benchmark --model runs/x --seeds 2 --clip-model tiny
accelerate launch --multi_gpu -m ccub study analyze study responses --participant all
ccub study
ccub config > ccub.toml
```

1. In a list:
   ```shell
   $ ccub card --init --force
   ```

```text
ccub validate --not-checked-in-text-blocks
```
"""


def test_the_command_checker_reports_unknown_commands_and_flags():
    problems, checked = command_problems("fake.md", FAKE_DOC)
    assert checked == 8
    assert [p.split(" (in: ")[0] for p in problems] == [
        "fake.md:4: `ccub validate` has no option --bogus-flag",
        "fake.md:6: `ccub` has no command 'stduy'",
        "fake.md:8: `ccub benchmark` has no option --clip-model",
        "fake.md:9: `ccub study analyze` has no option --participant",
        "fake.md:10: `ccub study` needs a command (make, analyze, simulate)",
        "fake.md:16: `ccub card` has no option --force",
    ]


@pytest.mark.parametrize("line", ["ccub --help", "ccub --version", "ccub study make --help",
                                  "ccub validate x --no-include-review --wait --workers=2"])
def test_the_command_checker_accepts_valid_lines(line):
    problems, checked = command_problems("ok.md", f"```bash\n{line}\n```\n")
    assert checked == 1 and problems == []


def test_every_option_in_an_inline_ccub_synopsis_exists():
    """Synopses such as `ccub prepare [DATASET] [--culture C] ...` sit in inline code, not in shell
    blocks: each option they name must be one the command (the leading command words) accepts."""
    root = typer.main.get_command(app)
    problems, checked = [], 0
    for doc in DOC_FILES:
        text = _blank_out(doc.read_text("utf-8"), FENCE)
        for span in re.finditer(r"`(ccub [^`]+)`", text):
            command, path = root, ["ccub"]
            for word in span.group(1).split()[1:]:
                if not hasattr(command, "commands") or word not in command.commands:
                    break
                command = command.commands[word]
                path.append(word)
            checked += 1
            accepted = _options(command)
            line = text.count("\n", 0, span.start()) + 1
            problems += [f"{doc.relative_to(ROOT)}:{line}: `{' '.join(path)}` has no option {name}"
                         for name in re.findall(r"--[a-z][a-z0-9-]*", span.group(1)) if name not in accepted]
    assert checked > 20
    assert not problems, "\n".join(problems)


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
