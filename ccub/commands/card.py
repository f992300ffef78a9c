"""`ccub card`: regenerate the data cards of a clean dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ccub.commands.common import console, fail


def card(
    data_dir: Annotated[Path | None, typer.Argument(
        help="A `ccub validate --out` folder (default: ./data).")] = None,
    meta: Annotated[Path | None, typer.Option(help="The steward's card.toml.", dir_okay=False)] = None,
    init: Annotated[bool, typer.Option(
        "--init", help="Write a commented card.toml template here and stop.")] = False,
) -> None:
    """Regenerate the data cards (Hugging Face README.md and Croissant JSON-LD) of a clean
    dataset from its report, its files and the steward's card.toml: --meta, else ./card.toml,
    else the one the cards were last written from, else the facts recorded with them."""
    from ccub.outdir import OutputBusy, OutputError
    from data_cards import refresh_published, write_template
    from data_cards.facts import CardError

    try:
        if init:
            target = meta or Path("card.toml")
            write_template(target)
            console.print(f"wrote {target}: fill it in, then run `ccub card`", highlight=False)
            return
        data_dir = data_dir or Path("data")
        result = refresh_published(data_dir, meta)
    except (CardError, OutputBusy, OutputError) as exc:
        fail(exc, cause=exc)
    print_card_summary(result, data_dir / "clean", result.source)


def print_card_summary(card: Any, clean: Path, meta: Path | None) -> None:
    if card is None:
        return
    console.print(f"data cards: {clean / 'README.md'}, {clean / 'croissant.json'}", highlight=False)
    if card.missing:
        where = meta or "a card.toml (`ccub card --init` writes a template)"
        console.print(f"[yellow]card incomplete:[/] add {', '.join(card.missing)} to {where}, "
                      "then run `ccub card`", highlight=False)
