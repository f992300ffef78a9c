"""The `ccub` command line. It parses arguments and calls into the packages, nothing more.

Heavy packages (torch and friends) are imported inside the commands that need them, so
`ccub validate` starts fast on a laptop without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ccub import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Curate community image-caption data for culturally faithful "
                       "text-to-image models.")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages name paths: never fold them

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
SEVERITY_STYLE = {"error": "red", "review": "yellow", "warning": "cyan", "info": "dim"}

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="TOML config (default: ./ccub.toml when present).", dir_okay=False)]


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


def _load(config: Path | None):
    from ccub.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc


@app.command()
def checks(
    config: ConfigOption = None,
    vocabulary: Annotated[bool, typer.Option(help="List cultures and categories too.")] = False,
    markdown: Annotated[bool, typer.Option(help="Print a Markdown table instead.")] = False,
) -> None:
    """List every check: id, severity, threshold, what it finds (like a linter's rules)."""
    from ccub.checks.registry import families

    cfg = _load(config)
    rows = []
    for family in families():
        for spec in family.specs:
            severity = "disabled" if spec.id in cfg.disable else cfg.severity.get(spec.id, spec.severity)
            thresholds = ", ".join(f"{t}={cfg.lookup(t)}" for t in spec.thresholds
                                   if not isinstance(cfg.lookup(t), list))
            rows.append((spec.id, severity, thresholds or "-", spec.summary, spec.fix))
    if markdown:
        console.print("| id | severity | threshold | finds | fix |\n|---|---|---|---|---|",
                      highlight=False, markup=False)
        for row in rows:
            console.print("| " + " | ".join(f"`{v}`" if i == 0 else v.replace("|", "\\|")
                                            for i, v in enumerate(row)) + " |",
                          highlight=False, markup=False, soft_wrap=True)
        return
    table = Table(title="ccub checks", show_lines=False)
    for column in ("id", "severity", "threshold", "description"):
        # Ids are never folded, so `ccub checks | grep <id>` finds them on a narrow terminal.
        table.add_column(column, overflow="fold", no_wrap=column == "id",
                         min_width=max(len(r[0]) for r in rows) if column == "id" else None)
    for check_id, severity, thresholds, summary, _ in rows:
        table.add_row(check_id, f"[{SEVERITY_STYLE.get(severity, 'dim')}]{severity}[/]",
                      thresholds, summary)
    console.print(table)
    if vocabulary:
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


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration as TOML (a starting point for ccub.toml)."""
    import tomli_w

    cfg = _load(config)
    # Plain echo: rich would wrap long lines and break the TOML when redirected to a file.
    typer.echo(f"# effective ccub configuration (from {cfg.source})")
    typer.echo(tomli_w.dumps(cfg.to_dict()))


def _progress_bar() -> Progress:
    # No auto-refresh thread: the pipeline can then fork its workers safely.
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err, transient=True, auto_refresh=False)


@contextmanager
def staged_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback (stage, done, total) drawing one bar per stage."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield on_progress


@app.command()
def validate(
    submissions: Annotated[Path, typer.Argument(help="Folder of community submissions.")],
    out: Annotated[Path, typer.Option(help="Output folder (clean/ and reports/ go here).")]
    = Path("data"),
    config: ConfigOption = None,
    culture: Annotated[str | None, typer.Option(help="Default culture for every record.")]
    = None,
    category: Annotated[str | None, typer.Option(help="Default category (CCUB code).")] = None,
    license: Annotated[str | None, typer.Option(help="Default licence (SPDX id).")] = None,
    creator: Annotated[str | None, typer.Option(help="Default creator / attribution.")] = None,
    contributor: Annotated[str | None, typer.Option(help="Default contributor id.")] = None,
    consent: Annotated[str | None, typer.Option(help="Default consent (yes / no / n/a).")]
    = None,
    language: Annotated[str | None, typer.Option(help="Default caption language (ISO 639-1).")]
    = None,
    include_review: Annotated[bool, typer.Option(help="Export records held for review too.")]
    = False,
    workers: Annotated[int, typer.Option(help="Processes decoding images (default: all cores).",
                                         min=1)] = os.cpu_count() or 1,
    clip: Annotated[str | None, typer.Option(
        help="CLIP model for semantic duplicates: MODEL:PRETRAINED (open_clip, from the local "
             "cache), a local checkpoint path, or 'tiny' (random weights, for testing).")] = None,
    test_fraction: Annotated[float | None, typer.Option(
        help="Make a test split of this fraction per culture, stratified by category, keeping "
             "duplicate groups on one side.")] = None,
    against: Annotated[Path | None, typer.Option(
        help="An earlier --out folder: check new submissions against its accepted images.")]
    = None,
    meta: Annotated[Path | None, typer.Option(
        help="The steward's card.toml for the data cards (default: ./card.toml, else "
             "SUBMISSIONS/card.toml, when present; `ccub card --init` writes a template).",
        dir_okay=False)] = None,
    wait: Annotated[bool, typer.Option(
        help="When another run is writing --out, wait for it instead of exiting.")] = False,
) -> None:
    """Check submissions, write the clean dataset and the report.

    Exit codes: 0 nothing rejected or held for review; 1 some records rejected or held
    for review; 2 the run could not proceed.
    """
    from ccub.outdir import OutputBusy, OutputError
    from ccub.pipeline import Options, UsageError
    from ccub.pipeline import validate as run_validate
    from ccub.readers import RootError
    from ccub.report import write_reports

    cfg = _load(config)
    flags = {"culture": culture, "category": category, "license": license, "creator": creator,
             "contributor": contributor, "consent": consent, "language": language}
    options = Options(root=submissions, out=out, flags={k: v for k, v in flags.items() if v},
                      include_review=include_review, workers=workers, clip=clip,
                      test_fraction=test_fraction, against=against, wait=wait)
    card_meta = meta or _default_meta(submissions)
    reports: dict[str, Any] = {}
    cards: list[Any] = []

    def write_outputs(res: Any, folder: Path) -> None:
        from data_cards import write_cards

        reports.update(write_reports(res, folder))
        # Cards go into the temporary clean/ beside reports/: published with it, atomically.
        if any(o.output for o in res.outcomes):  # no card for an empty dataset
            cards.append(write_cards(reports, folder.parent, card_meta))

    with _progress_bar() as progress:
        task = progress.add_task("analysing images", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            label = "embedding images (CLIP)" if stage == "embed" else "analysing images"
            progress.update(task, description=label, completed=done, total=total, refresh=True)

        try:
            result = run_validate(options, cfg, on_progress, write_outputs)
        except (UsageError, RootError, OutputBusy, OutputError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from exc
        except Exception as exc:
            # Exit code 1 means "records rejected"; a crash must not look like that.
            err.print_exception()
            err.print(f"[red]internal error:[/] {exc!r}; {out} holds either the previous output "
                      "or this run's whole output. Please report this with the traceback above.")
            raise typer.Exit(EXIT_USAGE) from exc
    _summary(reports, out)
    _card_summary(cards[0] if cards else None, out / "clean", card_meta)
    raise typer.Exit(result.exit_code)


def _default_meta(submissions: Path) -> Path | None:
    for candidate in (Path("card.toml"), submissions / "card.toml"):
        if candidate.is_file():
            return candidate
    return None


def _card_summary(card: Any, clean: Path, meta: Path | None) -> None:
    if card is None:
        return
    console.print(f"data cards: {clean / 'README.md'}, {clean / 'croissant.json'}",
                  highlight=False)
    if card.missing:
        where = meta or "a card.toml (`ccub card --init` writes a template)"
        console.print(f"[yellow]card incomplete:[/] add {', '.join(card.missing)} to {where}, "
                      "then run `ccub card`", highlight=False)


@app.command()
def card(
    data_dir: Annotated[Path | None, typer.Argument(
        help="A `ccub validate --out` folder (default: ./data).")] = None,
    meta: Annotated[Path | None, typer.Option(help="The steward's card.toml.",
                                              dir_okay=False)] = None,
    init: Annotated[bool, typer.Option(
        "--init", help="Write a commented card.toml template here and stop.")] = False,
) -> None:
    """Regenerate the data cards (Hugging Face README.md and Croissant JSON-LD) of a clean
    dataset from its report, its files and the steward's card.toml: --meta, else ./card.toml,
    else the one the cards were last written from, else the facts recorded with them."""
    from importlib import resources

    if init:
        target = meta or Path("card.toml")
        if target.exists():
            err.print(f"[red]error:[/] {target} exists; ccub never overwrites your card file")
            raise typer.Exit(EXIT_USAGE)
        target.write_text(resources.files("data_cards").joinpath("card_template.toml")
                          .read_text("utf-8"), encoding="utf-8")
        console.print(f"wrote {target}: fill it in, then run `ccub card`", highlight=False)
        return
    from ccub.outdir import OutputBusy, OutputError, exclusive
    from data_cards import recorded_source, refresh_cards
    from data_cards.facts import CardError

    data_dir = data_dir or Path("data")
    if not data_dir.is_dir():  # the lock would create it
        err.print(f"[red]error:[/] {data_dir / 'reports' / 'report.json'} not found; give the --out "
                  "folder of a `ccub validate` run", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        # The lock also completes a publish that a killed validate left half done.
        with exclusive(data_dir, command="ccub card"):
            # ./card.toml first, as for validate; else the card.toml the cards were last written
            # from (the steward may have edited it), else the facts recorded with them.
            local = Path("card.toml") if Path("card.toml").is_file() else None
            result = refresh_cards(data_dir, meta or local or recorded_source(data_dir))
    except (CardError, OutputBusy, OutputError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from exc
    _card_summary(result, data_dir / "clean", result.source)


def _summary(report: dict[str, Any], out: Path) -> None:
    summary = report["summary"]
    table = Table(title="ccub validate")
    for column, style in (("culture", ""), ("accepted", "green"), ("review", "yellow"),
                          ("rejected", "red")):
        table.add_column(column, style=style, justify="left" if not style else "right")
    for culture, counts in summary["status"].items():
        table.add_row(culture, *(str(counts.get(k, 0)) for k in ("accepted", "review",
                                                                  "rejected")))
    console.print(table)
    issues = Table(title="most frequent findings")
    for column in ("check", "severity", "count"):
        issues.add_column(column)
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
        console.print(note, highlight=False, markup=False)
    groups = report["duplicate_groups"]
    if groups:
        console.print(f"{len(groups)} duplicate group(s); see the report's duplicates section.")
    console.print(f"clean dataset: {out / 'clean'}\nreports: {out / 'reports'} "
                  "(report.html, report.md, report.json, issues.csv)", highlight=False)


@app.command()
def prepare(
    dataset: Annotated[Path | None, typer.Argument(
        help="An imagefolder dataset (default: DATA/clean/CULTURE/, written by `ccub validate`).")] = None,
    culture: Annotated[str | None, typer.Option(
        help="Culture slug: picks DATA/clean/CULTURE/ and the lexicon of --captions strip.")] = None,
    data: Annotated[Path, typer.Option(help="The `ccub validate --out` folder.")] = Path("data"),
    base: Annotated[str | None, typer.Option(
        help="Base Stable Diffusion (hub id or folder) drawing the negatives; 'tiny' swaps all four "
             "models for tiny random ones (a smoke run on CPU).")] = None,
    captions: Annotated[str | None, typer.Option(
        help="Generic captions by: caption (an image-to-text model), strip (community caption minus "
             "the culture lexicon), column (keep the dataset's own).")] = None,
    captioner: Annotated[str | None, typer.Option(help="Image-to-text model (hub id or folder).")] = None,
    depth_model: Annotated[str | None, typer.Option(help="Depth-estimation model (hub id or folder).")] = None,
    controlnet: Annotated[str | None, typer.Option(help="Depth ControlNet (hub id or folder).")] = None,
    negatives: Annotated[int | None, typer.Option(help="Negatives per image (0: none).", min=0)] = None,
    steps: Annotated[int | None, typer.Option(help="Sampling steps per negative.", min=1)] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    resolution: Annotated[int | None, typer.Option(help="Shorter side of a negative, pixels.", min=8)] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed; each negative's seed derives from it.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Community images per generation batch.", min=1)] = None,
    only: Annotated[str | None, typer.Option(help="Run one stage: captions or negatives.")] = None,
    force: Annotated[bool, typer.Option(
        help="Redo captions and generated negatives already there (community negatives are kept).")] = False,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when present).")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, fp16, bf16 or fp32.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write generic captions (blip_text) and self-generated negatives (negative_imgpath) for SCoFT.

    Resumable: rerun after an interruption and only what is missing is made. Exit codes: 0 all
    done; 1 some images failed (listed); 2 the run could not start.
    """
    import dataclasses

    cfg = _load(config)
    given = {"captions": captions, "captioner": captioner, "depth_model": depth_model, "controlnet": controlnet,
             "negatives_per_image": negatives, "steps": steps, "guidance_scale": guidance,
             "resolution": resolution, "seed": seed, "batch_size": batch_size, "dtype": dtype}
    given = {k: v for k, v in given.items() if v is not None}
    from finetune.tiny import is_tiny

    tiny = base if is_tiny(base) else None
    if base and not tiny:
        given["base"] = base
    cfg.prepare = dataclasses.replace(cfg.prepare, **given)
    if dataset is None:
        if not culture:
            err.print("[red]error:[/] give a DATASET folder or --culture (which reads DATA/clean/CULTURE/)")
            raise typer.Exit(EXIT_USAGE)
        dataset = data / "clean" / culture
    _model_stack()
    if tiny:
        from finetune.prepare import smoke_settings

        cfg.prepare = smoke_settings(cfg.prepare, tiny, set(given))
        err.print(f"[bold yellow]SMOKE RUN:[/] --base {tiny} uses tiny models with RANDOM WEIGHTS; the captions "
                  "and negatives it writes mean nothing (they only test the pipeline).")
    result = _run_prepare_stages(dataset, culture, tiny, cfg, only=only, force=force, device=device)
    raise typer.Exit(result.exit_code)


def _model_stack() -> None:
    """Import the model libraries, or say how to install them; then quiet them: our progress bar
    is the one users watch, and the libraries' own bars and notices would interleave with it."""
    try:
        import diffusers
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        err.print(f"[red]error:[/] this command needs the model stack ({exc.name} is not installed): "
                  "pip install -e '.[models]'")
        raise typer.Exit(EXIT_USAGE) from exc

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()


def _run_prepare_stages(dataset: Path, culture: str | None, tiny: str | None, cfg: Any, only: str | None = None,
                        force: bool = False, device: str | None = None) -> Any:
    from ccub.models import ModelUnavailable
    from ccub.outdir import OutputBusy, OutputError
    from data_cards.facts import CardError
    from finetune.dataset import DatasetError
    from finetune.prepare import STAGES, Options, PrepareError, prepare

    options = Options(root=dataset, culture=culture, tiny=tiny, stages=(only,) if only else STAGES,
                      force=force, device=device)
    with _progress_bar() as progress:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "generic captions" if stage == "captions" else "negatives (depth + ControlNet)"
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done, total=total, refresh=True)

        try:
            result = prepare(options, cfg, on_progress)
        except (DatasetError, PrepareError, ModelUnavailable, OutputBusy, OutputError, CardError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from exc
    _prepare_summary(result)
    if result.failures:
        raise typer.Exit(1)
    return result


def _prepare_summary(result: Any) -> None:
    table = Table(title=f"ccub prepare: {result.root}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in sorted(result.counts.items()):
        table.add_row(what, str(count))
    console.print(table)
    for role, model in result.models.items():
        console.print(f"{role}: {model}", highlight=False, markup=False)
    if result.failures:
        failed = Table(title=f"{len(result.failures)} image(s) failed; rerun to retry them")
        for column in ("image", "stage", "error"):
            failed.add_column(column, overflow="fold")
        for f in result.failures:
            failed.add_row(f.image, f.stage, f.message)
        console.print(failed)
    if result.smoke_run:
        console.print("[bold yellow]SMOKE RUN:[/] some captions or negatives in this dataset were made with "
                      "RANDOM WEIGHTS (see prepare.json); rerun with real models and --force before training.")
    console.print(f"record of settings and seeds: {result.root / 'prepare.json'}", highlight=False)
    if result.cards:
        console.print(f"data cards refreshed: {', '.join(str(p) for p in result.cards if p.suffix != '.png')}",
                      highlight=False)


@app.command()
def finetune(
    culture: Annotated[str | None, typer.Option(help="Culture slug: trains on DATA/clean/CULTURE/.")] = None,
    data: Annotated[Path, typer.Option(help="The `ccub validate --out` folder.")] = Path("data"),
    dataset: Annotated[Path | None, typer.Option(help="A prepared imagefolder instead of DATA/clean/CULTURE/.")]
    = None,
    base: Annotated[str | None, typer.Option(
        help="Base Stable Diffusion 1.x/2.x (hub id or folder; default CompVis/stable-diffusion-v1-4); 'tiny' "
             "(or 'tiny-v', v-prediction) builds a tiny random one for a smoke run on CPU.")] = None,
    variant: Annotated[str | None, typer.Option(help="lora, M, MP or MPC (SCoFT, the default).")] = None,
    backbone: Annotated[str | None, typer.Option(help="Distance of the contrastive loss: dreamsim (the "
                                                      "reference's, default), clip, dinov2, blip2, lpips, "
                                                      "vgg.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps.", min=1)] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (instead of --steps).", min=1)] = None,
    config: Annotated[Path | None, typer.Option(help="SCoFT config TOML (every hyperparameter; a run's "
                                                     "config.toml works).", dir_okay=False)] = None,
    output: Annotated[Path | None, typer.Option(help="Run folder (default runs/CULTURE-VARIANT).")] = None,
    resume: Annotated[str | None, typer.Option(help="'latest' or a checkpoint-N folder.")] = None,
    export: Annotated[str | None, typer.Option(help="Also write kohya (A1111/ComfyUI) LoRA weights: kohya.")]
    = None,
    prepare_missing: Annotated[bool, typer.Option(
        "--prepare/--no-prepare", help="Run `ccub prepare` first when captions or negatives are missing.")] = True,
) -> None:
    """Train a SCoFT LoRA for one culture (run with `accelerate launch -m ccub finetune ...` on several GPUs).

    Exit codes: 0 trained; 2 the run could not start (bad options, missing data or models).
    """
    from ccub.config import ConfigError
    from finetune.config import load_scoft_config
    from finetune.tiny import TINY_PRESETS, is_tiny

    _model_stack()
    overrides = {"base": base, "variant": variant, "backbone": backbone, "max_train_steps": steps,
                 "num_train_epochs": epochs, "export_kohya": True if export == "kohya" else None}
    if export not in (None, "kohya"):
        err.print(f"[red]error:[/] --export {export}: the only export format is kohya")
        raise typer.Exit(EXIT_USAGE)
    try:
        cfg = load_scoft_config(config, **overrides)
    except ConfigError as exc:
        err.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    tiny = cfg.base if is_tiny(cfg.base) else None
    if tiny:
        _smoke_training(cfg, TINY_PRESETS[tiny]["resolution"], given={k for k, v in overrides.items() if v is not None},
                        from_file=config is not None)
    if dataset is None:
        if not culture:
            err.print("[red]error:[/] give --culture (reads DATA/clean/CULTURE/) or --dataset FOLDER")
            raise typer.Exit(EXIT_USAGE)
        dataset = data / "clean" / culture
    output = output or Path("runs") / f"{culture or dataset.name}-{cfg.variant}"
    ccub_cfg = _load(None)
    culture = culture or _dataset_culture(dataset, ccub_cfg)
    if prepare_missing:
        _prepare_if_missing(dataset, culture, tiny, ccub_cfg)
    _run_training(cfg, dataset, output, culture, resume, ccub_cfg)


def _smoke_training(cfg: Any, resolution: int, given: set[str], from_file: bool) -> None:
    """Settings that let a tiny random model train end to end in well under a minute on a CPU."""
    if from_file:
        return  # a config file says exactly what it wants
    cfg.resolution = resolution
    if "max_train_steps" not in given and "num_train_epochs" not in given:
        cfg.max_train_steps = 6
    cfg.checkpointing_steps, cfg.validation_steps, cfg.validation_inference_steps = 3, 0, 4
    if int(os.environ.get("RANK", "0")) == 0:
        err.print(f"[bold yellow]SMOKE RUN:[/] --base {cfg.base} trains a tiny model with RANDOM WEIGHTS "
                  f"({cfg.resolution} px, {cfg.max_train_steps} steps); its LoRA and samples mean nothing.")


def _dataset_culture(dataset: Path, ccub_cfg: Any) -> str | None:
    from finetune.dataset import DatasetError, read_dataset
    from finetune.prepare import dataset_culture

    try:
        return dataset_culture(read_dataset(dataset), ccub_cfg)
    except DatasetError:
        return None


def _prepare_if_missing(dataset: Path, culture: str | None, tiny: str | None, ccub_cfg: Any) -> None:
    from finetune.dataset import DatasetError, missing_for_scoft, read_dataset

    if int(os.environ.get("RANK", "0")) != 0:
        return  # under accelerate launch, the dataset must be prepared beforehand (checked by the trainer)
    try:
        missing = missing_for_scoft(read_dataset(dataset))
    except DatasetError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from exc
    if not any(missing.values()):
        return
    what = ", ".join(f"{n} rows without {k}" for k, n in missing.items() if n)
    err.print(f"{dataset}: {what}; running `ccub prepare` first.", highlight=False)
    from finetune.prepare import smoke_settings

    if tiny:
        ccub_cfg.prepare = smoke_settings(ccub_cfg.prepare, tiny, set())
    _run_prepare_stages(dataset, culture, tiny, ccub_cfg)


def _run_training(cfg: Any, dataset: Path, output: Path, culture: str | None, resume: str | None,
                  ccub_cfg: Any) -> None:
    from ccub.models import ModelUnavailable
    from finetune.checkpoints import ResumeError
    from finetune.dataset import DatasetError
    from finetune.train import RunOptions, TrainingError, train

    name = ccub_cfg.cultures[culture].name if culture in ccub_cfg.cultures else None
    options = RunOptions(dataset=dataset, output=output, culture=culture, culture_name=name, resume=resume)
    with Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("training", total=None, loss="")

        def on_step(step: int, total: int, record: dict[str, float]) -> None:
            progress.update(task, completed=step, total=total, loss=f"loss {record.get('loss/total', 0.0):.4f}")

        try:
            result = train(cfg, options, on_step)
        except (DatasetError, ModelUnavailable, ResumeError, TrainingError, ImportError) as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from exc
    if int(os.environ.get("RANK", "0")) != 0:
        return
    console.print(f"LoRA: {result.lora}" + (f" (resumed from step {result.resumed_from})" if result.resumed_from
                                             else ""), highlight=False)
    console.print(f"run folder: {result.output} (config.toml, train_log.jsonl, logs/, samples/, README.md, "
                  "run.json)", highlight=False)
    if result.skipped_steps:
        console.print(f"[yellow]{result.skipped_steps} optimizer step(s) skipped for non-finite gradients[/]")
    if result.smoke_run:
        console.print("[bold yellow]SMOKE RUN:[/] made with RANDOM WEIGHTS (tiny models); do not use or report it.")


@app.command()
def benchmark(
    model: Annotated[Path, typer.Option("--model", help="A `ccub finetune` run folder (runs/NAME).")],
    compare: Annotated[list[Path] | None, typer.Option(
        help="More runs in the same table: --compare runs/y runs/z (or repeat the option).")] = None,
    more: Annotated[list[Path] | None, typer.Argument(
        help="Further runs to compare (what follows --compare runs/y).", show_default=False)] = None,
    culture: Annotated[str | None, typer.Option(help="Culture to benchmark (default: the run's).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="A prompt suite (TOML or CSV) instead of the built-in one.",
                                                 dir_okay=False)] = None,
    seeds: Annotated[int | None, typer.Option(help="Images per prompt and model.", min=1)] = None,
    clip: Annotated[str | None, typer.Option(help="CLIP scorer: MODEL:PRETRAINED (open_clip, local cache), a "
                                                  "checkpoint path, or 'tiny' (random weights).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Image cache (default: .ccub-benchmark-cache beside the run).")]
    = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when present).")] = None,
    config: ConfigOption = None,
) -> None:
    """Compare a fine-tuned run with its base model on the culture's prompts (paired, with intervals).

    Exit codes: 0 done; 2 the run could not start.
    """
    from benchmark.run import BenchmarkError, Options, run_benchmark
    from benchmark.runs import RunError
    from ccub.models import ModelUnavailable

    cfg = _load(config)
    _model_stack()
    if config is None and _is_smoke_run(model):
        # A smoke run only tests the pipeline: a few steps and seeds say as much as the study's 50 x 4.
        cfg.benchmark.steps = 4
        seeds = seeds or 2
        err.print(f"[bold yellow]SMOKE RUN:[/] {model} was trained with RANDOM WEIGHTS; benchmarking it with "
                  f"{cfg.benchmark.steps} steps and {seeds} seeds (a --config file sets them exactly).")
    options = Options(run=model, compare=[*(compare or []), *(more or [])], culture=culture, prompts=prompts,
                      seeds=seeds, clip=clip, cache=cache, device=device)
    with staged_progress() as on_progress:
        try:
            outcome = run_benchmark(options, cfg, on_progress)
        except (BenchmarkError, RunError, ModelUnavailable, ValueError) as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from exc
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _benchmark_summary(outcome)


def _is_smoke_run(run: Path) -> bool:
    from benchmark.runs import RunError, load_run

    try:
        return load_run(run).smoke_run
    except RunError:
        return False  # the benchmark itself reports what is wrong with the folder


def _benchmark_summary(outcome: Any) -> None:
    from benchmark.report import PROXY, SMOKE

    if outcome.smoke_run:
        console.print(f"[bold yellow]{SMOKE}[/]", highlight=False)
    # Means per model and sample sizes are in summary.md; the console keeps what fits 80 columns.
    table = Table(title="fine-tuned minus base, paired by (prompt, seed)")
    for column in ("metric", "model", "difference [95% CI]", "win", "p adj."):
        table.add_column(column, no_wrap=True)
    for c in outcome.comparisons:
        sign = "↑" if c.higher_is_better else "↓"
        table.add_row(f"{c.metric} {sign}", c.model, f"{c.difference:+.2g} [{c.ci_low:+.2g}, {c.ci_high:+.2g}]",
                      f"{c.win_rate:.2f}", f"{c.p_adjusted:.2g}")
    console.print(table)
    for metric, per_model in outcome.sets.items():
        values = ", ".join(f"{m} {v:.4f}" for m, v in per_model.items())
        console.print(f"{metric}: {values}", highlight=False)
    for note in outcome.notes:
        console.print(note, highlight=False, markup=False)
    counts = ", ".join(f"{v} {k}" for k, v in outcome.counts.items())
    console.print(f"{counts}; {outcome.generated} image(s) generated now, the rest from the cache.", highlight=False)
    console.print(PROXY, highlight=False)
    console.print(f"outputs: {outcome.output} (results.csv, summary.csv, summary.md, report.html)", highlight=False)


@app.command()
def fetch(
    manifest: Annotated[Path, typer.Argument(help="CCUB manifest: .csv, .tsv or .jsonl with url, caption, "
                                                  "country_code, category_code.", dir_okay=False)],
    out: Annotated[Path | None, typer.Option(help="Submission folder to write (default: "
                                                  "submissions/<manifest name>).")] = None,
    manifest_only: Annotated[bool, typer.Option("--manifest-only", help="Check the manifest only; "
                                                "no network.")] = False,
    allow_private: Annotated[bool, typer.Option("--allow-private", help="Also fetch from loopback and private "
                                                "addresses (an intranet mirror); refused by default.")] = False,
    config: ConfigOption = None,
) -> None:
    """Download a URL manifest into a submission `ccub validate` reads (polite, resumable, with a report).

    Exit codes: 0 every row fetched or already there; 1 problems in the manifest or failed downloads
    (see fetch_report.csv); 2 the fetch could not start; 130 interrupted (rerun to resume).
    """
    from ccub.fetch import ManifestError, read_manifest
    from ccub.fetch.run import REPORT, FetchError, run_fetch, user_agent
    from ccub.vocab import Vocabulary

    cfg = _load(config)
    cfg.fetch.allow_private = cfg.fetch.allow_private or allow_private
    try:
        rows, problems = read_manifest(manifest, Vocabulary(cfg), cfg.limits)
    except ManifestError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from exc
    for problem in problems:
        err.print(f"{manifest}:{problem}", highlight=False, markup=False)
    if manifest_only:
        console.print(f"{manifest}: {len(rows)} row(s), {len(problems)} problem(s)", highlight=False)
        raise typer.Exit(EXIT_FINDINGS if problems else EXIT_OK)
    if not rows:
        raise typer.Exit(EXIT_USAGE)
    out = out or Path("submissions") / manifest.stem
    if not cfg.fetch.contact.strip():
        err.print("[yellow]note:[/] no contact address in the User-Agent; hosts such as Wikimedia require one "
                  "and may answer 403. Set it in ccub.toml:\n  \\[fetch]\n  contact = \"you@example.org\"",
                  highlight=False)
    console.print(f"User-Agent: {user_agent(cfg)}", highlight=False, markup=False)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("fetching", total=len(rows))
        try:
            result = run_fetch(manifest, out, cfg,
                               lambda _o, done, total: progress.update(task, completed=done, total=total))
        except FetchError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from exc
        except KeyboardInterrupt:
            err.print(f"[yellow]interrupted:[/] finished downloads are kept in {out}; rerun the same command "
                      "to resume", highlight=False)
            raise typer.Exit(130) from None
    table = Table(title="fetch outcomes")
    for column in ("outcome", "cause", "rows"):
        table.add_column(column)
    causes: dict[tuple[str, str], int] = {}
    for o in result.outcomes:
        causes[(o.outcome, o.cause)] = causes.get((o.outcome, o.cause), 0) + 1
    for (outcome, cause), n in sorted(causes.items()):
        style = {"ok": "green", "skipped": "cyan", "failed": "red"}[outcome]
        table.add_row(f"[{style}]{outcome}[/]", cause or "-", str(n))
    console.print(table)
    for cause, outcomes in result.failures.items():
        console.print(f"[red]{cause}[/] ({len(outcomes)}):", highlight=False)
        for o in outcomes[:5]:
            console.print(f"  line {o.line}: {o.url}  {o.message}", highlight=False, markup=False, soft_wrap=True)
        if len(outcomes) > 5:
            console.print(f"  ... {len(outcomes) - 5} more in {REPORT}", highlight=False)
    console.print(f"{result.records} image(s) in {out / 'metadata.jsonl'}; per-URL report: {out / REPORT}; "
                  f"next: ccub validate {out}", highlight=False)
    raise typer.Exit(EXIT_FINDINGS if result.failures or problems else EXIT_OK)


# The study's commands live with the study; they use the helpers above, hence the late import.
from benchmark.study.cli import study_app  # noqa: E402

app.add_typer(study_app, name="study")

if __name__ == "__main__":
    app()
