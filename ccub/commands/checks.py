"""`ccub checks`: every check with its severity and thresholds, like a linter's rule list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ccub.commands.common import SEVERITY_STYLE, ConfigOption, console, load_config


def checks(
    config: ConfigOption = None,
    vocabulary: Annotated[bool, typer.Option(help="List cultures and categories too.")] = False,
    markdown: Annotated[bool, typer.Option(help="Print a Markdown table instead.")] = False,
) -> None:
    """List every check: id, severity, threshold, what it finds (like a linter's rules)."""
    from ccub.checks.registry import check_rows

    cfg = load_config(config, announce=not markdown)
    rows = check_rows(cfg)
    if markdown:
        print_markdown(rows)
        return
    table = Table(title="ccub checks", show_lines=False)
    for column in ("id", "severity", "threshold", "description"):
        # Ids are never folded, so `ccub checks | grep <id>` finds them on a narrow terminal.
        table.add_column(column, overflow="fold", no_wrap=column == "id",
                         min_width=max(len(r.id) for r in rows) if column == "id" else None)
    for row in rows:
        table.add_row(row.id, f"[{SEVERITY_STYLE.get(row.severity, 'dim')}]{row.severity}[/]", row.thresholds,
                      row.summary)
    console.print(table)
    if vocabulary:
        print_vocabulary(cfg)


def print_markdown(rows) -> None:
    console.print("| id | severity | threshold | finds | fix |\n|---|---|---|---|---|", highlight=False, markup=False)
    for row in rows:
        cells = [f"`{row.id}`", *(v.replace("|", "\\|") for v in (row.severity, row.thresholds, row.summary,
                                                                   row.fix))]
        console.print("| " + " | ".join(cells) + " |", highlight=False, markup=False, soft_wrap=True)


def print_vocabulary(cfg) -> None:
    cultures = Table(title="cultures")
    for column in ("slug", "name", "adjective", "ISO 3166", "languages"):
        cultures.add_column(column)
    for slug, c in cfg.cultures.items():
        cultures.add_row(slug, c.name, c.adjective, f"{c.iso3}/{c.iso2}", ", ".join(c.languages))
    categories = Table(title="categories")
    for column in ("code", "name", "aliases", "shows people"):
        categories.add_column(column)
    for code, c in cfg.categories.items():
        categories.add_row(code, c.name, ", ".join(c.aliases), "yes" if c.people else "")
    console.print(cultures, categories)
