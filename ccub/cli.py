"""The `ccub` command line: the command modules of `ccub.commands`, assembled."""

from __future__ import annotations

from typing import Annotated

import typer

from ccub import __version__
from ccub.commands.benchmark import benchmark
from ccub.commands.benchmark_table import benchmark_table
from ccub.commands.card import card
from ccub.commands.checks import checks
from ccub.commands.common import console
from ccub.commands.config import show_config
from ccub.commands.doctor import doctor
from ccub.commands.fetch import fetch
from ccub.commands.finetune import finetune
from ccub.commands.prepare import prepare
from ccub.commands.release import diff, lineage, release
from ccub.commands.review import review
from ccub.commands.study import study_app
from ccub.commands.submission import submission_app
from ccub.commands.validate import validate
from ccub.commands.withdraw import withdraw

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Curate community image-caption data for culturally faithful text-to-image models.")


def _version(value: bool) -> None:
    if value:
        console.print(f"ccub {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """ccub: validate submissions, fine-tune with SCoFT, benchmark cultural representation."""


# In the order `ccub --help` lists them: the data's way from submissions to results.
for command, name in ((checks, "checks"), (show_config, "config"), (validate, "validate"), (review, "review"),
                      (card, "card"), (withdraw, "withdraw"), (release, "release"), (diff, "diff"),
                      (prepare, "prepare"), (finetune, "finetune"), (benchmark, "benchmark"),
                      (benchmark_table, "benchmark-table"), (lineage, "lineage"),
                      (fetch, "fetch"), (doctor, "doctor")):
    app.command(name)(command)
app.add_typer(study_app, name="study")
app.add_typer(submission_app, name="submission")

if __name__ == "__main__":
    app()
