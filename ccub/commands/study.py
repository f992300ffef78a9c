"""`ccub study make | analyze | simulate`: the human ranking study on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ccub.commands.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    ConfigOption,
    column,
    console,
    err,
    fail,
    load_config,
    staged_progress,
    table,
)

study_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                        help="Run a human ranking study of benchmark images and compare people with the proxies.")


@study_app.command()
def make(
    runs: Annotated[list[str], typer.Argument(
        metavar="RUN", help="Run folders (runs/NAME) benchmarked with `ccub benchmark`, or base:MODEL and "
                            "lora:FILE[@SCALE] references benchmarked into a --benchmark folder.", show_default=False)],
    benchmarks: Annotated[list[Path] | None, typer.Option(
        "--benchmark", help="A benchmark folder (holding benchmark.json) to take images from, e.g. what "
                            "`ccub benchmark --output DIR` wrote; repeat for several.", file_okay=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the study bundle.")] = Path("study"),
    culture: Annotated[str | None, typer.Option(help="Culture of the study (default: the benchmark's).")] = None,
    items: Annotated[int | None, typer.Option(help="(prompt, seed) items, drawn at random; 0: all "
                                                   "(\\[study] items).", min=0)] = None,
    per_participant: Annotated[int | None, typer.Option(
        help="Items each participant ranks, drawn at random in the survey; 0: all (\\[study] per_participant).",
        min=0)] = None,
    base: Annotated[bool, typer.Option(help="Show the base model's image too.")] = True,
    texts: Annotated[Path | None, typer.Option(help="TOML replacing the survey's texts (e.g. a translation).",
                                               dir_okay=False)] = None,
    crowd_url: Annotated[str, typer.Option(help="URL prefix where crowd/images/ will be hosted.")] = "",
    seed: Annotated[int | None, typer.Option(help="Seed of the item sample and slot shuffles (\\[study] seed).")]
    = None,
    force: Annotated[bool, typer.Option(help="Replace a different study already in --out.")] = False,
    allow_withdrawn: Annotated[bool, typer.Option(
        "--allow-withdrawn", help="Use runs trained or benchmarked on data whose consent was withdrawn "
                                  "(`ccub withdraw` marked them).")] = False,
    config: ConfigOption = None,
) -> None:
    """Build a study bundle: survey.html for participants, the private key, metrics and a crowd-sourcing layout.

    Exit codes: 0 done; 2 the bundle could not be made.
    """
    from benchmark.study.bundle import MakeOptions, StudyError, make_study
    from ccub.config import ConfigError

    if not allow_withdrawn:
        from ccub.steward.withdraw import refusal

        refused = refusal([*(Path(r) for r in runs if Path(r).is_dir()), *(benchmarks or [])])
        if refused:
            fail(refused)
    cfg = load_config(config)
    for name, value in (("items", items), ("per_participant", per_participant), ("seed", seed)):
        if value is not None:
            setattr(cfg.study, name, value)
    options = MakeOptions(runs=[r if r.startswith(("base:", "lora:")) else Path(r) for r in runs],
                          benchmarks=list(benchmarks or []), out=out, culture=culture, base=base, texts=texts,
                          crowd_url=crowd_url, force=force)
    with staged_progress() as on_progress:
        try:
            made = make_study(options, cfg, on_progress)
        except (StudyError, ConfigError, ValueError) as exc:
            fail(exc, cause=exc)
    if made.smoke_run:
        console.print("[bold yellow]TEST STUDY:[/] some images come from models with RANDOM WEIGHTS; the survey "
                      "says so on every page. Do not run it with people.", highlight=False)
    console.print(f"study {made.study_id}: {made.items} items x {len(made.models)} images "
                  f"({', '.join(made.models)}, shuffled per item) in {made.out}", highlight=False, markup=False)
    console.print(f"send participants: {made.out / 'survey.html'}  (keep {made.out / 'study.json'} private: it is "
                  f"the key)", highlight=False, markup=False)
    console.print(f"next: ccub study analyze {made.out} responses/", highlight=False, markup=False)


@study_app.command()
def analyze(
    study: Annotated[Path, typer.Argument(help="The study bundle (the folder with study.json), or a folder of "
                                               "bundles (one per culture).")],
    responses: Annotated[Path, typer.Argument(help="Folder of the files participants sent back (.json, .csv).")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: STUDY/analysis).")] = None,
    participants: Annotated[str, typer.Option(help="all, or affiliated: only those who identify with the "
                                                   "culture.")] = "all",
    resubmission: Annotated[str | None, typer.Option(
        help="When a participant's files answer the same item differently: count the latest, the first, or drop "
             "the participant (\\[study] resubmission).", show_default=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Rank the models per question (Bradley-Terry), measure agreement, and correlate the benchmark's proxies.

    Exit codes: 0 done; 1 done, but some response files were rejected (listed); 2 nothing to analyse.
    """
    from benchmark.study.analyze import GROUPS, analyze, read_metrics
    from benchmark.study.bundle import METRICS_FILE, StudyError, check_study_settings, find_studies, read_study
    from benchmark.study.outputs import write_outputs
    from benchmark.study.responses import RESUBMISSION, read_responses
    from ccub.config import ConfigError
    from ccub.recordfile import RecordError

    cfg = load_config(config)
    for flag, value, allowed in (("--participants", participants, GROUPS),
                                 ("--resubmission", resubmission, RESUBMISSION)):
        if value is not None and value not in allowed:
            fail(f"{flag} {value}: use one of {', '.join(allowed)}")
    cfg.study.resubmission = resubmission or cfg.study.resubmission
    try:
        check_study_settings(cfg.study, cfg.source)
    except ConfigError as exc:
        fail(exc, "config error", exc)
    try:
        folders = find_studies(study)
        keys = [read_study(f) for f in folders]
        ids = [k.study_id for k in keys]
        if len(set(ids)) != len(ids):
            raise StudyError(f"{study}: two bundles are the same study ({', '.join(map(str, folders))}); keep one")
        found, rejected = read_responses(responses, keys, cfg.limits, cfg.study.resubmission)
        metrics = [read_metrics(f / METRICS_FILE, k.model_names()) for f, k in zip(folders, keys, strict=True)]
    except (StudyError, RecordError, FileNotFoundError) as exc:
        fail(exc, cause=exc)
    for message in rejected:
        err.print(f"[red]rejected:[/] {escape(message)}", highlight=False)
    console.print(f"{sum(r.files for r in found.values())} response file(s) read, {len(rejected)} rejected",
                  highlight=False)
    for read in found.values():
        _print_conflicts(read)
    results = [analyze(key, found[key.study_id], proxies, cfg.study, participants)
               for key, proxies in zip(keys, metrics, strict=True)]
    for result in results:
        if not result.strengths:
            err.print(f"study {result.study_id} ({result.culture_name}): no usable rankings in {responses}; "
                      f"{' '.join(result.notes)}", highlight=False, markup=False)
    usable = [r for r in results if r.strengths]
    if not usable:
        fail(f"no usable rankings in {responses}")
    files = write_outputs(usable, out or study / "analysis")
    for result in usable:
        _print_analysis(result)
    console.print(f"outputs: {', '.join(str(f) for f in files)}", highlight=False, markup=False)
    raise typer.Exit(EXIT_FINDINGS if rejected else EXIT_OK)


def _print_conflicts(read) -> None:
    """Each participant whose files disagree, with the files counted and set aside (ids quoted: they are
    whatever the files say)."""
    from benchmark.study.responses import RESUBMISSION
    from benchmark.study.shapes import quoted

    for c in read.conflicts:
        kept = ", ".join(p.source for p in c.kept) or "none"
        aside = ", ".join(p.source for p in c.set_aside)
        console.print(f"conflict: participant {quoted(c.participant)} sent files that answer the same items "
                      f"differently; counted: {kept}; set aside: {aside} ([study] resubmission = {c.policy}: "
                      f"{RESUBMISSION[c.policy]})", highlight=False, markup=False, soft_wrap=True)


def _print_analysis(result) -> None:
    """The console keeps what fits 80 columns; the intervals of every number are in the files."""
    from benchmark.study import outputs

    for banner in outputs.banners(result):
        console.print(f"[bold yellow]{banner}[/]", highlight=False)
    console.print(outputs.participants_line(result), highlight=False, markup=False)
    rows = [[q if row == 0 else "", s.model, outputs.interval(s.theta, s.low, s.high),
             "-" if s.model == result.reference else outputs.interval(s.p_beats_reference, s.p_low, s.p_high)]
            for q in result.questions
            for row, s in enumerate(sorted((s for s in result.strengths if s.question == q), key=lambda s: s.rank))]
    _table(f"Bradley-Terry rankings, best first ({result.culture_name})",
           ["question", "model", "strength [95% CI]", f"P(beats {result.reference})"], rows)
    _table("agreement between participants", outputs.AGREEMENT_HEADER, outputs.agreement_rows(result))
    if result.correlations:
        header, rows = outputs.proxy_matrix(result, intervals=False)
        _table("proxies against people: mean within-item Kendall's tau (* 95% CI excludes 0)", header, rows)
    for note in result.notes:
        console.print(note, highlight=False, markup=False)


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    shown = table(title)
    for name in header:
        column(shown, escape(name))
    for row in rows:
        shown.add_row(*map(escape, row))
    console.print(shown)


@study_app.command()
def simulate(
    study: Annotated[Path, typer.Argument(help="The study bundle (the folder with study.json).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the simulated response files.")],
    participants: Annotated[int, typer.Option(help="Simulated participants.", min=1)] = 20,
    strength: Annotated[list[str] | None, typer.Option(
        metavar="MODEL=VALUE",
        help="Planted log-strength of a model, MODEL=VALUE (repeat; default 0 for every model).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated rankings.")] = 0,
) -> None:
    """Write simulated responses (Plackett-Luce with planted strengths) to try the analysis before recruiting.

    The files say they are simulated, and every analysis of them says so.
    """
    from benchmark.study.bundle import StudyError, read_study
    from benchmark.study.simulate import simulate as run_simulation
    from benchmark.study.simulate import write_responses

    planted = {}
    for text in strength or []:
        name, _, value = text.partition("=")
        try:
            planted[name.strip()] = float(value)
        except ValueError:
            fail(f"--strength {text!r}: write MODEL=NUMBER, e.g. korea-MPC=1.0")
    try:
        key = read_study(study)
        documents = run_simulation(key, participants, planted, seed=seed)
    except (StudyError, ValueError) as exc:
        fail(exc, cause=exc)
    paths = write_responses(documents, out)
    console.print(f"{len(paths)} SIMULATED response files in {out} (strengths: "
                  f"{json.dumps(planted) if planted else 'all 0'}); next: ccub study analyze {study} {out}",
                  highlight=False, markup=False)
