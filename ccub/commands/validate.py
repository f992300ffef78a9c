"""`ccub validate`: check submissions, write the clean dataset, the reports and the data cards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ccub.commands.card import print_card_summary
from ccub.commands.common import (
    EXIT_USAGE,
    SEVERITY_STYLE,
    ConfigOption,
    column,
    console,
    err,
    fail,
    load_config,
    progress_bar,
    table,
)


def validate(
    submissions: Annotated[Path, typer.Argument(help="Folder of community submissions.")],
    out: Annotated[Path, typer.Option(help="Output folder (clean/ and reports/ go here).")] = Path("data"),
    config: ConfigOption = None,
    culture: Annotated[str | None, typer.Option(help="Default culture for every record.")] = None,
    category: Annotated[str | None, typer.Option(help="Default category (CCUB code).")] = None,
    license: Annotated[str | None, typer.Option(help="Default licence (SPDX id).")] = None,
    creator: Annotated[str | None, typer.Option(help="Default creator / attribution.")] = None,
    contributor: Annotated[str | None, typer.Option(help="Default contributor id.")] = None,
    consent: Annotated[str | None, typer.Option(help="Default consent (yes / no / n/a).")] = None,
    language: Annotated[str | None, typer.Option(help="Default caption language (ISO 639-1).")] = None,
    include_review: Annotated[bool, typer.Option(help="Export records held for review too.")] = False,
    workers: Annotated[int, typer.Option(help="Processes decoding images (default: all cores).", min=1,
                                         show_default=False)]
    = os.cpu_count() or 1,
    clip: Annotated[str | None, typer.Option(
        help="CLIP model for semantic duplicates: MODEL:PRETRAINED (open_clip, from the local "
             "cache), a local checkpoint path, or 'tiny' (random weights, for testing).")] = None,
    test_fraction: Annotated[float | None, typer.Option(
        help="Make a test split of this fraction per culture, stratified by category, keeping "
             "duplicate groups on one side.")] = None,
    against: Annotated[Path | None, typer.Option(
        help="An earlier --out folder: check new submissions against its accepted images.")] = None,
    meta: Annotated[Path | None, typer.Option(
        help="The steward's card.toml for the data cards (default: ./card.toml, else "
             "SUBMISSIONS/card.toml, when present; `ccub card --init` writes a template).",
        dir_okay=False)] = None,
    wait: Annotated[bool, typer.Option(
        help="When another run is writing --out, wait for it instead of exiting.")] = False,
    decisions: Annotated[Path | None, typer.Option(
        help="Review decisions (JSON lines or CSV, e.g. saved by the report's review page) to add to "
             "OUT/steward/ before checking.", dir_okay=False)] = None,
) -> None:
    """Check submissions, write the clean dataset and the report.

    Exit codes: 0 nothing rejected or held for review; 1 some records rejected or held
    for review; 2 the run could not proceed.
    """
    from ccub.outdir import OutputBusy, OutputError
    from ccub.outputs import run_validate
    from ccub.pipeline import UsageError
    from ccub.readers import RootError
    from ccub.vocab import Vocabulary, check_flags

    cfg = load_config(config)
    for problem in check_flags(Vocabulary(cfg), culture, category):
        fail(problem)
    flags = {"culture": culture, "category": category, "license": license, "creator": creator,
             "contributor": contributor, "consent": consent, "language": language}
    with progress_bar() as progress:
        task = progress.add_task("analysing images", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            label = "embedding images (CLIP)" if stage == "embed" else "analysing images"
            progress.update(task, description=label, completed=done, total=total, refresh=True)

        try:
            result, outputs = run_validate(submissions, out, cfg, flags, meta=meta, progress=on_progress,
                                           include_review=include_review, workers=workers, clip=clip,
                                           test_fraction=test_fraction, against=against, wait=wait,
                                           decisions=decisions)
        except (UsageError, RootError, OutputBusy, OutputError) as exc:
            fail(exc, cause=exc)
        except Exception as exc:
            # Exit code 1 means "records rejected"; a crash must not look like that.
            err.print_exception()
            err.print(f"[red]internal error:[/] {exc!r}; {out} holds either the previous output "
                      "or this run's whole output. Please report this with the traceback above.")
            raise typer.Exit(EXIT_USAGE) from exc
    print_summary(outputs.report, out)
    print_card_summary(outputs.card, out / "clean", outputs.card_meta)
    raise typer.Exit(result.exit_code)


def print_summary(report: dict[str, Any], out: Path) -> None:
    summary = report["summary"]
    statuses = table("ccub validate")
    for name, style in (("culture", ""), ("accepted", "green"), ("review", "yellow"), ("rejected", "red")):
        column(statuses, name, style=style, justify="left" if not style else "right")
    for culture, counts in summary["status"].items():
        statuses.add_row(culture, *(str(counts.get(k, 0)) for k in ("accepted", "review", "rejected")))
    console.print(statuses)
    issues = table("most frequent findings")
    for name in ("check", "severity", "count"):
        column(issues, name, no_wrap=name == "check")
    severity = {i["check"]: i["severity"] for i in report["issues"]}
    # Problems first: info notes (counts, coverage) are in the report.
    problems = [(c, n) for c, n in summary["checks"].items() if severity[c] != "info"]
    for check, count in problems[:10]:
        style = SEVERITY_STYLE.get(severity[check], "")
        issues.add_row(check, f"[{style}]{severity[check]}[/]", str(count))
    if problems:
        console.print(issues)
    notes = summary["severity"].get("info", 0)
    if notes:
        console.print(f"{notes} info note(s) (coverage, normalisations) are in the report.")
    for note in report["notes"]:
        console.print(note["text"], highlight=False, markup=False)
    groups = report["duplicate_groups"]
    if groups:
        console.print(f"{len(groups)} duplicate group(s); see the report's duplicates section.")
    held = sum(counts.get("review", 0) for counts in summary["status"].values())
    if held:
        console.print(f"{held} record(s) held for review: decide in {out / 'reports' / 'review.html'} or with "
                      f"`ccub review {out}`", highlight=False, markup=False)
    console.print(f"clean dataset: {out / 'clean'}\nreports: {out / 'reports'} "
                  "(report.html, review.html, report.md, report.json, issues.csv)", highlight=False)
