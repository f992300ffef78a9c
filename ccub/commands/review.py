"""`ccub review`: the records held for review, and decisions on them from a terminal or a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ccub.commands.common import EXIT_USAGE, ConfigOption, column, console, err, fail, load_config, table

if TYPE_CHECKING:
    from ccub.config import Limits
    from ccub.steward.queue import Held


def review(
    data: Annotated[Path, typer.Argument(help="The validate --out folder (reports/ and steward/ are in it).")]
    = Path("data"),
    accept: Annotated[list[str] | None, typer.Option(
        "--accept", help="Accept a held record, by its key or short id (repeatable).")] = None,
    reject: Annotated[list[str] | None, typer.Option(
        "--reject", help="Reject a held record, by its key or short id (repeatable).")] = None,
    reason: Annotated[str, typer.Option(
        help="Why (shown to the contributor; for every --accept/--reject of this call).")] = "",
    reviewer: Annotated[str | None, typer.Option(help="Who decides (required with --accept/--reject).")] = None,
    import_file: Annotated[Path | None, typer.Option(
        "--import", help="Add a saved decisions file (JSON lines or CSV, e.g. from review.html).",
        dir_okay=False)] = None,
    config: ConfigOption = None,
    wait: Annotated[bool, typer.Option(
        help="When a validate run is writing DATA, wait for it instead of exiting.")] = False,
) -> None:
    """List the records held for review, or record decisions on them in DATA/steward/.

    The next `ccub validate` applies the decisions. Exit codes: 0 done; 2 bad input (an unknown
    record, a missing --reviewer, an unreadable file or refused rows).
    """
    from ccub.steward.queue import ReviewError, decide, load_queue
    from ccub.steward.queue import import_file as add_file

    choices = [(k, "accept") for k in accept or []] + [(k, "reject") for k in reject or []]
    cfg = load_config(config)
    if not choices and not import_file:
        if reason or reviewer:
            fail("--reason and --reviewer go with --accept/--reject")
        try:
            queue = load_queue(data)
        except ReviewError as exc:
            fail(exc, cause=exc)
        print_queue(queue, data, cfg.limits)
        return
    if choices and not (reviewer or "").strip():
        fail("--accept/--reject need --reviewer NAME: every decision says who made it")
    if (reason or reviewer) and not choices:
        fail("--reason and --reviewer go with --accept/--reject; a file brings its own")
    next_run = f"the next `ccub validate SUBMISSIONS --out {data}` applies them"
    try:
        if choices:
            added, already = decide(data, cfg.limits, choices, reviewer or "", reason, wait)
            for d in added:
                say(f"{d.decision}ed {d.record} ({d.reviewer})")
            say(f"{len(added)} decision(s) recorded in {data / 'steward' / 'decisions.jsonl'}"
                               + (f", {already} already there" if already else "") + f"; {next_run}")
        if import_file:
            added, already, problems, unmatched = add_file(data, cfg.limits, import_file, wait)
            for problem in problems[:50]:
                say_err(f"refused: {problem}", "red")
            if len(problems) > 50:
                say_err(f"... and {len(problems) - 50} more refused row(s)", "red")
            say(f"{import_file}: {len(added)} decision(s) added to {data / 'steward'}"
                               + (f", {already} already there" if already else "")
                               + (f", {len(problems)} row(s) refused" if problems else "") + f"; {next_run}")
            if unmatched:
                say_err(f"note: {unmatched} added decision(s) match no record held in "
                               f"{data / 'reports' / 'report.json'} (another batch, or an image or caption that "
                               "changed): they apply only to that exact image and caption", "yellow")
            if problems:
                raise typer.Exit(EXIT_USAGE)
    except ReviewError as exc:
        fail(exc, cause=exc)


def print_queue(queue: list[Held], data: Path, limits: Limits) -> None:
    from ccub.steward import Steward, StewardError

    try:
        steward = Steward.load(data, limits)
    except StewardError as exc:
        fail(exc, cause=exc)
    if not queue:
        say(f"nothing held for review in {data / 'reports' / 'report.json'}")
        return
    shown = table(f"held for review ({len(queue)})")
    # The id and check ids are never folded, so they can be copied and grepped; a long key
    # folds (the id names the record on the command line).
    column(shown, "id", no_wrap=True)
    column(shown, "key")
    column(shown, "contributor", no_wrap=True)
    column(shown, "checks", no_wrap=True, min_width=max((len(c) for h in queue for c in h.checks), default=6))
    decisions = [steward.decision_for(h.image_sha256, h.caption_sha256) if h.decidable else None for h in queue]
    pending = sum(d is not None for d in decisions)
    if pending:  # the column only when there is something in it: 80 columns are few
        column(shown, "decided")
    for held, decision in zip(queue, decisions, strict=True):
        cells = [held.id, Text(held.key), Text(held.contributor or "-"), Text("\n".join(held.checks))]
        if pending:
            cells.append(Text(f"{decision.decision} by {decision.reviewer}" if decision else ""))
        shown.add_row(*cells)
    console.print(shown)
    if pending:
        say(f"{pending} decided since the last run: the next `ccub validate SUBMISSIONS --out {data}` "
                           "applies them")
    say(f"decide: ccub review {data} --accept ID --reviewer NAME [--reason TEXT] (or --reject), "
                       f"or open {data / 'reports' / 'review.html'} and --import the file it saves")


def say(text: str) -> None:
    """A line naming paths and user text: printed as it is, never folded or read as markup."""
    console.print(Text(text), soft_wrap=True)


def say_err(text: str, style: str) -> None:
    err.print(Text(text, style=style), soft_wrap=True)
