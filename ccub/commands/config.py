"""`ccub config`: the effective configuration as TOML, or a commented template written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ccub.commands.common import ConfigOption, console, fail, load_config

HEADER = """\
# ccub configuration. Every command reads ./ccub.toml when it exists (and says so), or the
# file given with --config; a key left out keeps its default. Written by `ccub config --write`
# from {source}.

# Check ids that do not run at all (`ccub checks` lists them).
disable = {disable}

# A check's severity, overriding its default: "error" (rejected), "review" (held for a person),
# "warning" or "info" (kept). For example:
#   "caption.too_short" = "warning"
[severity]
{severity}
# Cultures and categories beyond the shipped vocabulary (ccub/vocabulary.toml), or corrections
# of it, as tables of the same name. For example:
#   [cultures.ghana]
#   name = "Ghana"
#   adjective = "Ghanaian"
#   iso3 = "GHA"
#   iso2 = "GH"
#   languages = ["en", "ak"]
#   [categories.SPORT]
#   name = "sport"
#   aliases = ["games"]
"""


def template(cfg) -> str:
    """Every section of `cfg` with its comments, and SCoFT's settings as [scoft]."""
    import tomli_w

    from ccub.config import THRESHOLD_SECTIONS, build_dataclass
    from ccub.config_template import section
    from finetune.config import ScoftConfig

    severity = "".join(tomli_w.dumps({check: level}) for check, level in sorted(cfg.severity.items()))
    parts = [HEADER.format(source=cfg.source, disable=tomli_w.dumps({"v": cfg.disable}).split("=", 1)[1].strip(),
                           severity=severity)]
    parts += [section(name, getattr(cfg, name)) for name in THRESHOLD_SECTIONS]
    scoft = build_dataclass(ScoftConfig, cfg.scoft, f"{cfg.source} [scoft]")
    parts.append(section("scoft", scoft, ["`ccub finetune`: SCoFT's hyperparameters (the [scoft] table of a",
                                          "`ccub finetune --config` file overrides these, and flags override both)."]))
    return "\n".join(parts)


def show_config(
    config: ConfigOption = None,
    write: Annotated[Path | None, typer.Option(
        help="Write a commented template with every section (SCoFT's included) to this file; an existing file "
             "is never overwritten.", dir_okay=False)] = None,
) -> None:
    """Print the effective configuration as TOML, or write a commented template (--write FILE)."""
    import tomli_w

    from ccub.config import ConfigError
    from ccub.files import create_text

    cfg = load_config(config)
    if write is None:
        # Plain echo: rich would wrap long lines and break the TOML when redirected to a file.
        typer.echo(f"# effective ccub configuration (from {cfg.source})")
        typer.echo(tomli_w.dumps(cfg.to_dict()))
        return
    refused = f"{write} exists; ccub config --write never overwrites a file: choose another name or remove it"
    if write.exists() or write.is_symlink():
        fail(refused)
    try:
        create_text(write, template(cfg))
    except ConfigError as exc:
        fail(exc, "config error", exc)
    except FileExistsError:
        fail(refused)
    except OSError as exc:
        fail(f"{write}: cannot be written ({exc.strerror})")
    console.print(f"wrote {write}: every section with its defaults and comments; edit it and pass it with "
                  f"--config {write} (or name it ccub.toml in the folder you run ccub from)", highlight=False)
