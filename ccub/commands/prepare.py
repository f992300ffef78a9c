"""`ccub prepare`: generic captions and self-generated negatives for SCoFT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ccub.commands.common import (
    ConfigOption,
    column,
    console,
    culture_dataset,
    fail,
    load_config,
    model_stack,
    settings_block,
    smoke_banner,
    staged_progress,
    table,
)

STAGE_LABELS = {"captions": "generic captions", "negatives": "negatives (depth + ControlNet)"}
STAGE_UNITS = {"captions": "images", "negatives": "images"}


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
    from finetune.prepare import STAGES, Options, apply_flags
    from finetune.prepare import prepare as run

    cfg = load_config(config)
    given = {"captions": captions, "captioner": captioner, "depth_model": depth_model, "controlnet": controlnet,
             "negatives_per_image": negatives, "steps": steps, "guidance_scale": guidance,
             "resolution": resolution, "seed": seed, "batch_size": batch_size, "dtype": dtype}
    cfg.prepare, tiny = apply_flags(cfg.prepare, given, base)
    if dataset is None:
        if not culture:
            fail("give a DATASET folder or --culture (which reads DATA/clean/CULTURE/)")
        dataset = culture_dataset(cfg, culture, data)
        culture = dataset.name
    elif not dataset.is_dir():
        fail(f"{dataset}: no such folder")
    refuse_release(dataset, "prepare writes captions and negatives into the dataset")
    model_stack()
    if tiny:
        smoke_banner(f"--base {tiny} uses tiny models with RANDOM WEIGHTS; the captions and negatives it "
                     "writes mean nothing (they only test the pipeline).")
    options = Options(root=dataset, culture=culture, tiny=tiny, stages=(only,) if only else STAGES, force=force,
                      device=device)
    settings_block("ccub prepare", prepare_settings(options, cfg.prepare, config))
    result = run_prepare(lambda progress: run(options, cfg, progress))
    raise typer.Exit(result.exit_code)


def refuse_release(dataset: Path, why: str) -> None:
    """Stop when `dataset` is a folder of a release (DATA/releases/VERSION/), which is never written."""
    from ccub.steward.releases import find_release

    release = find_release(dataset)
    if release is not None:
        fail(f"{dataset} is in release {release.name} ({release}), which is frozen, and {why}; run `ccub prepare` "
             f"on the clean set (DATA/clean/CULTURE) and release it again (`ccub release NEW_VERSION`)")


def run_prepare(work: Callable[[Any], Any]) -> Any:
    """Run `work(progress)` (a prepare call) under progress bars and print its summary; exit 2 when
    it cannot start, 1 when some images failed."""
    from ccub.models import ModelUnavailable
    from ccub.outdir import OutputBusy, OutputError
    from data_cards.facts import CardError
    from finetune.dataset import DatasetError
    from finetune.prepare import PrepareError

    with staged_progress(STAGE_LABELS, STAGE_UNITS) as on_progress:
        try:
            result = work(on_progress)
        except (DatasetError, PrepareError, ModelUnavailable, OutputBusy, OutputError, CardError) as exc:
            fail(exc, cause=exc)
    if result is None:
        return None
    print_prepare_summary(result)
    if result.failures:
        raise typer.Exit(1)
    return result


def prepare_settings(options: Any, settings: Any, config: Path | None) -> dict[str, object]:
    """The settings block of a prepare run (configs only; no model is loaded)."""
    from finetune.dataset import DatasetError, read_dataset
    from finetune.runtime import pick_device

    try:
        rows = f"{sum(1 for _ in read_dataset(options.root).rows())} images"
    except DatasetError:
        rows = "not readable"
    random = " (RANDOM WEIGHTS)"
    models = (f"all four tiny ({options.tiny}){random}" if options.tiny else
              f"captioner {settings.captioner}, depth {settings.depth_model}, ControlNet {settings.controlnet}, "
              f"base {settings.base}")
    return {
        "dataset": f"{options.root} ({rows})",
        "culture": options.culture or "from the dataset's rows",
        "stages": ", ".join(options.stages) + (" (--force: redo)" if options.force else ""),
        "captions": settings.captions,
        "negatives": f"{settings.negatives_per_image} per image, {settings.steps} steps, guidance "
                     f"{settings.guidance_scale:g}, {settings.resolution} px, batch {settings.batch_size}",
        "models": models,
        "precision": settings.dtype,
        "device": pick_device(options.device),
        "output": f"{options.root} (metadata, negatives/generated/, prepare.json)",
        "config": str(config or ("./ccub.toml" if Path("ccub.toml").is_file() else "none (built-in defaults)")),
    }


def print_prepare_summary(result: Any) -> None:
    # The folder on a line of its own: a path in a title would be split mid-word.
    console.print(f"ccub prepare: {result.root}", highlight=False, markup=False, soft_wrap=True)
    counts = table()
    column(counts, "what")
    column(counts, "count", justify="right")
    for what, count in sorted(result.counts.items()):
        counts.add_row(what, str(count))
    console.print(counts)
    for role, model in result.models.items():
        console.print(f"{role}: {model}", highlight=False, markup=False)
    if result.failures:
        failed = table(f"{len(result.failures)} image(s) failed; rerun to retry them")
        for name in ("image", "stage", "error"):
            column(failed, name)
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
