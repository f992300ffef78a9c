"""`ccub release`, `ccub diff` and `ccub lineage`: versioned releases of the clean set, what changed
between two of them, and which data a run was trained on (`ccub/steward/releases.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ccub.commands.common import ConfigOption, column, console, fail, load_config, table

DataArgument = Annotated[Path | None, typer.Argument(help="A `ccub validate --out` folder (default: ./data).")]


def _steward(data: Path, config: Path | None):
    from ccub.steward import Steward, StewardError

    cfg = load_config(config, announce=False)
    try:
        return Steward.load(data, cfg.limits)
    except StewardError as exc:
        fail(exc, cause=exc)


def release(
    version: Annotated[str, typer.Argument(help="The release's version: 1.0, 1.2.3, 2.0.0-rc.1 (a new one, after "
                                                "the last).")],
    data_dir: DataArgument = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the release record as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Freeze the current clean set (DATA/clean, DATA/index) as DATA/releases/VERSION/: its files, a
    digest, counts, cards carrying the version, and the changelog against the previous release."""
    from ccub.outdir import OutputBusy, OutputError
    from ccub.steward.releases import ReleaseError, make_release, releases_dir
    from data_cards.facts import CardError

    data = data_dir or Path("data")
    try:
        record = make_release(data, version, _steward(data, config))
    except (ReleaseError, CardError, OutputBusy, OutputError) as exc:
        fail(exc, cause=exc)
    except OSError as exc:
        fail(f"{releases_dir(data)}: {exc.strerror or exc}; nothing was released", cause=exc)
    if as_json:
        typer.echo(json.dumps({"schema": record.SCHEMA, "schema_version": record.VERSION, **vars(record)},
                              indent=2, ensure_ascii=False))
        return
    folder = releases_dir(data) / version
    console.print(f"release {version}: {folder} ({record.images} images, {record.files} files, "
                  f"{record.contributors} contributors)", highlight=False, markup=False, soft_wrap=True)
    console.print(f"digest {record.digest}", highlight=False, markup=False)
    print_changelog(record.log())


def diff(
    old: Annotated[str, typer.Argument(help="A release version.")],
    new: Annotated[str, typer.Argument(help="A release version, or 'current' for the clean set as it is now.")],
    data_dir: DataArgument = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changelog as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """What changed between two releases, or a release and the current clean set: rows added,
    removed (withdrawn, rejected on review, replaced, other) and captions changed, per culture and
    category and per contributor. Rows are matched by the submitted file's digest."""
    from ccub.steward.releases import ReleaseError
    from ccub.steward.releases import diff as changes

    data = data_dir or Path("data")
    try:
        log = changes(data, old, new, _steward(data, config))
    except ReleaseError as exc:
        fail(exc, cause=exc)
    except OSError as exc:
        fail(f"{data}: {exc.strerror or exc}", cause=exc)
    if as_json:
        typer.echo(json.dumps(changelog_json(log), indent=2, ensure_ascii=False))
        return
    print_changelog(log)


def changelog_json(log: Any) -> dict[str, Any]:
    return {**log.as_dict(), "summary": {"added": len(log.added), "removed": log.removed_total,
                                         "removed_by_cause": {k: len(v) for k, v in log.removed.items()},
                                         "captions_changed": len(log.captions_changed)}}


def print_changelog(log: Any) -> None:
    if log.old is None:
        console.print(f"first release: {log.after} images", highlight=False, markup=False)
    else:
        causes = ", ".join(f"{len(v)} {k}" for k, v in log.removed.items() if v)
        console.print(f"{log.old} -> {log.new}: {log.before} -> {log.after} images; {len(log.added)} added, "
                      f"{log.removed_total} removed{f' ({causes})' if causes else ''}, "
                      f"{len(log.captions_changed)} captions changed", highlight=False, markup=False, soft_wrap=True)
    cells = table("per culture and category")
    for header in ("culture", "category", log.old or "before", log.new, "added", "removed", "captions changed"):
        column(cells, header, justify="left" if header in ("culture", "category") else "right")
    for c in log.cells:
        cells.add_row(c["culture"], c["category"], *(str(c[k]) for k in
                                                    ("before", "after", "added", "removed", "captions_changed")))
    console.print(cells)
    if log.contributors:
        people = table("per contributor")
        for header in ("contributor", "added", "removed", "captions changed"):
            column(people, header, justify="left" if header == "contributor" else "right")
        for c in log.contributors:
            people.add_row(c["contributor"], str(c["added"]), str(c["removed"]), str(c["captions_changed"]))
        console.print(people)


def lineage(
    run: Annotated[Path, typer.Argument(help="A run folder (runs/<name>/, written by `ccub finetune`).")],
    studies: Annotated[list[Path] | None, typer.Option(
        "--studies", help="A study bundle, or a folder of them, to search for studies of the run (repeatable; "
                          "default: ./study*/).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """The chain a run comes from and goes to: submissions -> release -> run -> benchmark -> studies."""
    from ccub.steward.releases import ReleaseError, trace

    try:
        chain = trace(run, studies if studies else sorted(Path().glob("study*/")))
    except ReleaseError as exc:
        fail(exc, cause=exc)
    if as_json:
        typer.echo(json.dumps(chain, indent=2, ensure_ascii=False))
        return
    # One line a stage (never folded: they name paths and digests).
    for number, step in enumerate(chain["chain"]):
        arrow = "  -> " if number else ""
        console.print(f"{arrow}{step['stage']}: {step['what']} ({step['details']})", highlight=False, markup=False,
                      soft_wrap=True)
    for note in chain["notes"]:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
