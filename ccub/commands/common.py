"""What every command shares: the consoles, exit codes, the --config option, progress bars and
the one way a command reports an error it cannot go past."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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


# Without a terminal (nohup, SLURM, CI logs) a log line at least this often while a stage advances.
LOG_SECONDS = 30.0
# ... and one every this share of a stage's total (unless a command sets `every`).
LOG_LINES_PER_STAGE = 10


@dataclass
class _Stage:
    label: str
    unit: str
    total: int
    started: float
    first_done: float
    last_line: float
    last_done: float
    task: Any = None
    finished: bool = False


class _Bar(BarColumn):
    def render(self, task):  # a phase (no total) shows its spinner and name only
        return Text("") if task.total is None else super().render(task)


class _Count(ProgressColumn):
    def render(self, task):
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)} {task.fields.get('unit', '')}".rstrip())


class _Remaining(TimeRemainingColumn):
    def render(self, task):
        return Text("") if task.total is None else super().render(task)


def clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _field(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Reporter:
    """The watcher of a command's long stages (`ccub.progress`): called as
    ``(stage, done, total, **fields)``, and ``with reporter.phase("loading UNet from ..."):``.

    On a terminal: a bar per stage with its unit, total, elapsed time and ETA, and a spinner per
    phase. Otherwise (stderr redirected to a file, nohup, SLURM): plain lines, a first one when a
    stage or phase starts, then one every `every` units or `LOG_SECONDS`, whichever comes first,
    and one when it ends: ``training: 3/6 steps (50%) | loss=0.1 | 2.1 s/step | elapsed 0:00:06 |
    ETA 0:00:06``.
    """

    takes_fields = True

    def __init__(self, labels: dict[str, str] | None = None, units: dict[str, str] | None = None, *,
                 every: int | None = None, seconds: float = LOG_SECONDS, console: Console | None = None,
                 terminal: bool | None = None, now=time.monotonic) -> None:
        self.console = console or err
        self.terminal = self.console.is_terminal if terminal is None else terminal
        self.labels, self.units = labels or {}, units or {}
        self.every, self.seconds, self.now = every, seconds, now
        self.stages: dict[str, _Stage] = {}
        self.bars = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), _Bar(), _Count(),
                             TextColumn("{task.fields[info]}"), TimeElapsedColumn(), _Remaining(),
                             console=self.console, transient=True) if self.terminal else None

    def __enter__(self) -> Reporter:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    @contextmanager
    def phase(self, text: str) -> Iterator[None]:
        started = self.now()
        task = None
        if self.bars is not None:
            task = self.bars.add_task(text, total=None, info="", unit="")
            self.bars.refresh()
        else:
            self.line(f"{text} ...")
        try:
            yield
        finally:
            if task is not None:
                self.bars.remove_task(task)
        if self.bars is None:
            self.line(f"{text}: done in {clock(self.now() - started)}")

    def __call__(self, stage: str, done: float, total: int, **fields: Any) -> None:
        now = self.now()
        s = self.stages.get(stage)
        if s is None:
            label, unit = self.labels.get(stage, stage), self.units.get(stage, "")
            s = self.stages[stage] = _Stage(label, unit, total, now, done, now, done)
            if self.bars is not None:
                s.task = self.bars.add_task(label, total=total, completed=done, info="", unit=unit)
            else:
                self.line(self._text(s, done, now, fields, first=True))
        s.total = total
        info = " ".join(f"{k}={_field(v)}" for k, v in fields.items())
        if self.bars is not None:
            self.bars.update(s.task, completed=done, total=total, info=info)
            self.bars.refresh()
        elif done > s.last_done and (done >= total or done - s.last_done >= self._every(s)
                                     or now - s.last_line >= self.seconds):
            self.line(self._text(s, done, now, fields))
            s.last_line, s.last_done = now, done
        if done >= total and not s.finished:
            s.finished = True
            if self.bars is not None:
                unit = f" {s.unit}" if s.unit else ""
                self.line(f"{s.label}: {int(total)}{unit} in {clock(now - s.started)}")

    def _every(self, s: _Stage) -> float:
        return self.every or max(1, s.total // LOG_LINES_PER_STAGE)

    def _text(self, s: _Stage, done: float, now: float, fields: dict[str, Any], first: bool = False) -> str:
        unit = f" {s.unit}" if s.unit else ""
        share = f" ({100 * done / s.total:.0f}%)" if s.total else ""
        parts = [f"{s.label}: {int(done)}/{s.total}{unit}{share}"]
        if fields:
            parts.append(" ".join(f"{k}={_field(v)}" for k, v in fields.items()))
        elapsed = now - s.started
        rate = (done - s.first_done) / elapsed if elapsed > 0 and done > s.first_done else None
        one = (s.unit or "item").removesuffix("s")
        if rate:
            parts.append(f"{rate:.2f} {s.unit or 'items'}/s" if rate >= 1 else f"{1 / rate:.1f} s/{one}")
        parts.append(f"elapsed {clock(elapsed)}")
        if first and not rate:
            parts.append(f"ETA after the first {one}" if done < s.total else "ETA 0:00:00")
        else:
            parts.append(f"ETA {clock((s.total - done) / rate) if rate else '?'}")
        return " | ".join(parts)


@contextmanager
def staged_progress(labels: dict[str, str] | None = None, units: dict[str, str] | None = None,
                    every: int | None = None) -> Iterator[Reporter]:
    """A progress callback (stage, done, total, **fields) drawing one bar per stage, labelled by
    `labels`, counted in `units` (bars on a terminal, log lines otherwise: `Reporter`)."""
    with Reporter(labels, units, every=every) as reporter:
        yield reporter


def settings_block(title: str, rows: dict[str, object]) -> None:
    """The resolved settings of a run, one `name  value` line each, before it starts."""
    width = max(len(k) for k in rows)
    err.print(f"{title}:", highlight=False, markup=False)
    for name, value in rows.items():
        err.print(f"  {name:<{width}}  {value}", highlight=False, markup=False)


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
