"""`ccub fetch`: download a URL manifest into a submission folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ccub.commands.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    ConfigOption,
    column,
    console,
    err,
    fail,
    load_config,
    table,
)


def fetch(
    manifest: Annotated[Path, typer.Argument(help="CCUB manifest: .csv, .tsv or .jsonl with url, caption, "
                                                  "country_code, category_code.", dir_okay=False)],
    out: Annotated[Path | None, typer.Option(help="Submission folder to write (default: "
                                                  "submissions/<manifest name>).")] = None,
    manifest_only: Annotated[bool, typer.Option("--manifest-only", help="Check the manifest only; "
                                                "no network.")] = False,
    allow_private: Annotated[bool, typer.Option("--allow-private", help="Also fetch from loopback and private "
                                                "addresses (an intranet mirror); refused by default.")] = False,
    data: Annotated[Path, typer.Option(help="The `ccub validate --out` folder whose withdrawals of consent "
                                            "are honoured (DATA/steward/).", file_okay=False)] = Path("data"),
    config: ConfigOption = None,
) -> None:
    """Download a URL manifest into a submission `ccub validate` reads (polite, resumable, with a report).

    Exit codes: 0 every row fetched or already there; 1 problems in the manifest or failed downloads
    (see fetch_report.csv); 2 the fetch could not start; 130 interrupted (rerun to resume).
    """
    from ccub.fetch import ManifestError, read_manifest
    from ccub.fetch.run import REPORT, FetchError, run_fetch, user_agent
    from ccub.vocab import Vocabulary

    cfg = load_config(config)
    cfg.fetch.allow_private = cfg.fetch.allow_private or allow_private
    try:
        rows, problems = read_manifest(manifest, Vocabulary(cfg), cfg.limits)
    except ManifestError as exc:
        fail(exc, cause=exc)
    for problem in problems:
        err.print(f"{manifest}:{problem}", highlight=False, markup=False)
    if manifest_only:
        console.print(f"{manifest}: {len(rows)} row(s), {len(problems)} problem(s)", highlight=False)
        raise typer.Exit(EXIT_FINDINGS if problems else EXIT_OK)
    if not rows:
        raise typer.Exit(EXIT_USAGE)
    out = out or Path("submissions") / manifest.stem
    from ccub.steward import Steward, StewardError

    try:
        steward = Steward.load(data, cfg.limits)
    except StewardError as exc:
        fail(exc, cause=exc)
    if not cfg.fetch.contact.strip():
        err.print("[yellow]note:[/] no contact address in the User-Agent; hosts such as Wikimedia require one "
                  "and may answer 403. Set it in ccub.toml:\n  \\[fetch]\n  contact = \"you@example.org\"",
                  highlight=False)
    console.print(f"User-Agent: {user_agent(cfg)}", highlight=False, markup=False)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("fetching", total=len(rows))
        try:
            result = run_fetch(manifest, out, cfg,
                               lambda _o, done, total: progress.update(task, completed=done, total=total),
                               steward)
        except FetchError as exc:
            fail(exc, cause=exc)
        except KeyboardInterrupt:
            err.print(f"[yellow]interrupted:[/] finished downloads are kept in {out}; rerun the same command "
                      "to resume", highlight=False)
            raise typer.Exit(130) from None
    outcomes = table("fetch outcomes")
    for name in ("outcome", "cause", "rows"):
        column(outcomes, name)
    causes: dict[tuple[str, str], int] = {}
    for o in result.outcomes:
        causes[(o.outcome, o.cause)] = causes.get((o.outcome, o.cause), 0) + 1
    for (outcome, cause), n in sorted(causes.items()):
        style = {"ok": "green", "skipped": "cyan", "failed": "red"}[outcome]
        outcomes.add_row(f"[{style}]{outcome}[/]", cause or "-", str(n))
    console.print(outcomes)
    for cause, outcomes in result.failures.items():
        console.print(f"[red]{cause}[/] ({len(outcomes)}):", highlight=False)
        for o in outcomes[:5]:
            console.print(f"  {o.where}: {o.url}  {o.message}", highlight=False, markup=False, soft_wrap=True)
        if len(outcomes) > 5:
            console.print(f"  ... {len(outcomes) - 5} more in {REPORT}", highlight=False)
    console.print(f"{result.records} image(s) in {out / 'metadata.jsonl'}; per-URL report: {out / REPORT}; "
                  f"next: ccub validate {out}", highlight=False)
    raise typer.Exit(EXIT_FINDINGS if result.failures or problems else EXIT_OK)
