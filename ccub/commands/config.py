"""`ccub config`: the effective configuration as TOML."""

from __future__ import annotations

import typer

from ccub.commands.common import ConfigOption, load_config


def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration as TOML (a starting point for ccub.toml)."""
    import tomli_w

    cfg = load_config(config)
    # Plain echo: rich would wrap long lines and break the TOML when redirected to a file.
    typer.echo(f"# effective ccub configuration (from {cfg.source})")
    typer.echo(tomli_w.dumps(cfg.to_dict()))
