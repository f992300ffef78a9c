"""What every command shares: the consoles, exit codes, the --config option, progress bars and
the one way a command reports an error it cannot go past."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages name paths: never fold them

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
SEVERITY_STYLE = {"error": "red", "review": "yellow", "warning": "cyan", "info": "dim"}

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="TOML config (default: ./ccub.toml when present).", dir_okay=False)]


def fail(message: object, label: str = "error", cause: BaseException | None = None) -> NoReturn:
    """Print `label: message` (escaped: messages quote user input) and exit with EXIT_USAGE."""
    err.print(f"[red]{label}:[/] {escape(str(message))}", highlight=False)
    raise typer.Exit(EXIT_USAGE) from cause


def load_config(config: Path | None, announce: bool = True):
    """The ccub.toml a command runs with; `announce`: say on stderr which file that is, since
    ./ccub.toml is read without being named."""
    from ccub.config import ConfigError
    from ccub.config import load_config as load

    try:
        cfg = load(config)
        if announce and main_process():
            err.print(f"config: {escape(cfg.source)}", style="dim", highlight=False)
        return cfg
    except ConfigError as exc:
        fail(exc, "config error", exc)


def culture_dataset(cfg: Any, culture: str, data: Path) -> Path:
    """DATA/clean/CULTURE/, checked before any model is loaded; a culture given by name or code
    ("Korea", "KR") finds its slug's folder, and a mistyped one is answered with the closest."""
    from ccub.vocab import Vocabulary, did_you_mean

    clean = data / "clean"
    slug = Vocabulary(cfg).culture(culture) or culture
    for folder in (clean / culture, clean / slug):
        if folder.is_dir():
            return folder
    found = sorted(p.name for p in clean.iterdir() if p.is_dir()) if clean.is_dir() else []
    if found:
        fail(f"--culture {culture}: no {clean / culture}{did_you_mean(culture, found)}; validated cultures in "
             f"{clean}: {', '.join(found)}")
    fail(f"--culture {culture}: no {clean / culture}; run `ccub validate SUBMISSIONS --out {data}` first, or give "
         f"--data (the validate --out folder)")


def table(title: str | None = None) -> Table:
    """A console table that fits 80 columns without losing a character: light rules, and every
    column added with `fold` so long names wrap instead of being cut with an ellipsis."""
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")


def column(t: Table, header: str, **options: Any) -> None:
    t.add_column(header, **({"overflow": "fold"} | options))


def main_process() -> bool:
    """False in the other processes of an `accelerate launch` run: one of them prints."""
    return int(os.environ.get("RANK", "0")) == 0


def smoke_banner(message: str) -> None:
    err.print(f"[bold yellow]SMOKE RUN:[/] {message}", highlight=False)


def progress_bar() -> Progress:
    # No auto-refresh thread: the pipelines can then fork their workers safely.
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err, transient=True, auto_refresh=False)


@contextmanager
def staged_progress(labels: dict[str, str] | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback (stage, done, total) drawing one bar per stage, labelled by `labels`."""
    with progress_bar() as progress:
        tasks = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task((labels or {}).get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done, total=total, refresh=True)

        yield on_progress


def model_stack() -> None:
    """Import the model libraries, or say how to install them; then quiet them: our progress bar
    is the one users watch, and the libraries' own bars and notices would interleave with it."""
    try:
        import diffusers
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        fail(f"this command needs the model stack ({exc.name} is not installed): pip install -e '.[models]'",
             cause=exc)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
