"""`ccub submission init`: a commented submission.toml for contributors to fill in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ccub.commands.common import ConfigOption, console, fail, load_config

submission_app = typer.Typer(no_args_is_help=True, help="Help contributors prepare a submission folder.")

TEMPLATE = """\
# submission.toml: values for every photo in this folder and in the folders below it. A value
# given for one photo (a metadata.jsonl / metadata.csv column) wins over the value here.
# Check the folder with `ccub validate {folder}`; the report says what to fix, file by file.

# The culture the photos show: a slug, name or ISO code ({cultures}).
{culture}

{categories}
# Otherwise give it per photo, or start each file name with its code (FOOD_1.jpg).
{category}

{licenses}
{license}

# Who took the photos, as they want to be credited (the CC-BY licences require it).
{creator}

# Your contributor id: the report groups its findings by contributor.
{contributor}

# Consent of the people shown: "yes" (they agreed to be shown), "no", or "n/a" (nobody can be
# recognised). Photos of people without consent are held for review.
{consent}

# The language the captions are written in, an ISO 639-1 code such as "en" or "ko".
{language}

# Who wrote the captions: "community" (people of the culture). Captions written by a model
# ("machine") are rejected: SCoFT needs the community's own words.
caption_source = "community"
"""


def _line(key: str, value: str | None, example: str) -> str:
    """`key = "value"`, or the example commented out when no value was given."""
    import tomli_w

    return tomli_w.dumps({key: value}).strip() if value else f"# {tomli_w.dumps({key: example}).strip()}"


def _comment(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 96, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)


def render(cfg, folder: Path, values: dict[str, str | None]) -> str:
    return TEMPLATE.format(
        folder=folder, cultures="`ccub checks --vocabulary` lists them",
        categories=_comment(f"The category, when every photo here has the same one: "
                            f"{', '.join(sorted(cfg.categories))}."),
        licenses=_comment(f"The licence of the photos, as an SPDX id; accepted: "
                          f"{', '.join(cfg.rights.allowed_licenses)}."),
        culture=_line("culture", values["culture"], "korea"), category=_line("category", values["category"], "FOOD"),
        license=_line("license", values["license"], "CC-BY-4.0"),
        creator=_line("creator", values["creator"], "Kim Min-ji"),
        contributor=_line("contributor", values["contributor"], "k-017"),
        consent=_line("consent", values["consent"], "n/a"), language=_line("language", values["language"], "en"))


@submission_app.command("init")
def init(
    folder: Annotated[Path, typer.Argument(help="The submission folder (created when missing).", file_okay=False)],
    culture: Annotated[str | None, typer.Option(help="The culture the photos show.")] = None,
    category: Annotated[str | None, typer.Option(help="The category of every photo here.")] = None,
    license: Annotated[str | None, typer.Option(help="SPDX licence id of the photos.")] = None,
    creator: Annotated[str | None, typer.Option(help="Who took the photos (credited).")] = None,
    contributor: Annotated[str | None, typer.Option(help="The contributor id.")] = None,
    consent: Annotated[str | None, typer.Option(help="yes, no or n/a.")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code of the captions.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write FOLDER/submission.toml: every field a contributor can set, commented, with the values given.

    An existing submission.toml is never overwritten. Exit codes: 0 written; 2 not written.
    """
    from ccub.files import create_text
    from ccub.readers import SUBMISSION_TOML
    from ccub.vocab import Vocabulary, check_flags

    cfg = load_config(config)
    vocab = Vocabulary(cfg)
    for problem in check_flags(vocab, culture, category):
        fail(problem)
    values = {"culture": vocab.culture(culture), "category": vocab.category(category), "license": license,
              "creator": creator, "contributor": contributor, "consent": consent, "language": language}
    path = folder / SUBMISSION_TOML
    refused = f"{path} exists; it is never overwritten: edit it, or remove it first"
    if path.exists() or path.is_symlink():
        fail(refused)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        create_text(path, render(cfg, folder, values))
    except FileExistsError:
        fail(refused)
    except OSError as exc:
        fail(f"{path}: cannot be written ({exc.strerror})")
    console.print(f"wrote {path}: fill in the commented fields, then run `ccub validate {folder}`", highlight=False)
