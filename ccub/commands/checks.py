"""`ccub checks`: every check with its severity and thresholds, like a linter's rule list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ccub.commands.common import SEVERITY_STYLE, ConfigOption, column, console, load_config, table


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
    shown = table("ccub checks")
    # Ids are never folded, so `ccub checks | grep <id>` finds them on a narrow terminal; the
    # thresholds go under the description, which keeps the rest of the width.
    column(shown, "id", no_wrap=True, min_width=max(len(r.id) for r in rows))
    column(shown, "severity", no_wrap=True)
    column(shown, "description and threshold")
    for row in rows:
        threshold = "" if row.thresholds in ("", "-") else f"\n[dim]threshold: {escape(row.thresholds)}[/]"
        shown.add_row(row.id, f"[{SEVERITY_STYLE.get(row.severity, 'dim')}]{row.severity}[/]",
                      escape(row.summary) + threshold)
    console.print(shown)
    if vocabulary:
        print_vocabulary(cfg)


def print_markdown(rows) -> None:
    console.print("| id | severity | threshold | finds | fix |\n|---|---|---|---|---|", highlight=False, markup=False)
    for row in rows:
        cells = [f"`{row.id}`", *(v.replace("|", "\\|") for v in (row.severity, row.thresholds, row.summary,
                                                                   row.fix))]
        console.print("| " + " | ".join(cells) + " |", highlight=False, markup=False, soft_wrap=True)


def print_vocabulary(cfg) -> None:
    cultures = table("cultures")
    for name in ("slug", "name", "adjective", "ISO 3166", "languages"):
        column(cultures, name)
    for slug, c in cfg.cultures.items():
        cultures.add_row(slug, c.name, c.adjective, f"{c.iso3}/{c.iso2}", ", ".join(c.languages))
    categories = table("categories")
    for name in ("code", "name", "aliases", "shows people"):
        column(categories, name)
    for code, c in cfg.categories.items():
        categories.add_row(code, c.name, ", ".join(c.aliases), "yes" if c.people else "")
    console.print(cultures, categories)
