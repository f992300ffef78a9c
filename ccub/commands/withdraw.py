"""`ccub withdraw`: withdraw a contributor's or an image's consent, in the data and the models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ccub.commands.common import EXIT_FINDINGS, EXIT_OK, ConfigOption, console, err, fail, load_config


def withdraw(
    data_dir: Annotated[Path | None, typer.Argument(
        metavar="DATA", help="A `ccub validate --out` folder (default: ./data).", show_default=False)] = None,
    contributor: Annotated[list[str] | None, typer.Option(
        help="A contributor id, as in the submissions' contributor column (repeat for more).",
        show_default=False)] = None,
    image: Annotated[list[str] | None, typer.Option(
        help="An image's SHA-256 (the source_sha256 column of the clean set; repeat for more).",
        show_default=False)] = None,
    list_file: Annotated[Path | None, typer.Option(
        "--list", help="A file of one contributor id or image SHA-256 per line, or a CSV with a contributor "
                       "and/or image_sha256 column.", dir_okay=False, show_default=False)] = None,
    reason: Annotated[str, typer.Option(
        help="Why (private: kept in DATA/steward/withdrawals.jsonl only, never printed).")] = "",
    runs: Annotated[list[Path] | None, typer.Option(
        help="Folders of runs (runs/NAME/run.json) to check and mark (default: ./runs).", show_default=False)] = None,
    studies: Annotated[list[Path] | None, typer.Option(
        help="Study bundles, or folders of them, to check and mark (default: ./study).", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Withdraw consent: record it, rebuild the published clean set and its cards without the items,
    and list and mark every run, benchmark and study whose data included them. With no
    --contributor, --image or --list: apply the recorded withdrawals again (after an interruption).

    Exit codes: 0 done; 1 done, but some --list lines were refused (listed); 2 nothing could be done.
    """
    from ccub.outdir import OutputBusy, OutputError
    from ccub.steward import StewardError
    from ccub.steward.withdraw import Target, WithdrawError, read_list, target_problem
    from ccub.steward.withdraw import withdraw as run_withdraw

    cfg = load_config(config)
    data_dir = data_dir or Path("data")
    targets: list[Target] = []
    for kind, values in (("contributor", contributor or []), ("image", image or [])):
        for value in values:
            value = value.strip().lower() if kind == "image" else value.strip()
            problem = target_problem(kind, value)
            if problem:
                fail(f"--{kind} {escape(value[:80])}: {problem}")
            targets.append(Target(kind, value))
    problems: list[str] = []
    try:
        if list_file is not None:
            listed, problems = read_list(list_file, cfg.limits)
            if not listed and not targets:
                for message in problems[:20]:
                    err.print(f"[red]refused:[/] {escape(message)}", highlight=False)
                fail(f"--list {list_file}: no usable line (one contributor id or image SHA-256 per line)")
            targets += listed
        outcome = run_withdraw(data_dir, targets, cfg, reason, runs if runs is not None else _default("runs"),
                               studies if studies is not None else _default("study"))
    except (WithdrawError, StewardError, OutputBusy, OutputError) as exc:
        fail(exc, cause=exc)
    for message in problems[:50]:
        err.print(f"[red]refused:[/] {escape(message)}", highlight=False)
    if len(problems) > 50:
        err.print(f"... and {len(problems) - 50} more refused line(s)", highlight=False)
    # Lines name paths: printed whole (soft wrap), never folded inside a path.
    new = outcome.recorded
    items = len({i for w in new for i in w.items})
    console.print(f"{len(new)} withdrawal(s) recorded in {data_dir / 'steward' / 'withdrawals.jsonl'}"
                  + (f", {outcome.already} already recorded" if outcome.already else "")
                  + f" ({items} published item(s) matched)", highlight=False, markup=False, soft_wrap=True)
    r = outcome.rebuilt
    if r.rows:
        console.print(f"clean set rebuilt: {r.rows} row(s) and {r.files} file(s) removed; cards refreshed"
                      if r.cards else f"clean set rebuilt: {r.rows} row(s) and {r.files} file(s) removed",
                      highlight=False, markup=False, soft_wrap=True)
    else:
        console.print("clean set: no published row was withdrawn; nothing to rebuild", highlight=False, soft_wrap=True)
    if outcome.affected:
        console.print(f"{len(outcome.affected)} output(s) used withdrawn data, marked with withdrawn.json "
                      "(retrain or rebuild them; `ccub benchmark` and `ccub study make` refuse them without "
                      "--allow-withdrawn):", highlight=False, markup=False, soft_wrap=True)
        for a in outcome.affected:
            what = f"{a.items} item(s)" + (f", {a.contributors} contributor(s)" if a.contributors else "")
            console.print(f"  {a.kind:9} {a.folder}  ({what})" if a.kind != "study" else f"  {a.kind:9} {a.folder}",
                          highlight=False, markup=False, soft_wrap=True)
    else:
        console.print("no run, benchmark or study found that used withdrawn data", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_FINDINGS if problems else EXIT_OK)


def _default(name: str) -> list[Path]:
    return [Path(name)] if Path(name).is_dir() else []
