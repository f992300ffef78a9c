"""`ccub doctor`: what this machine has for ccub, and every model the configured commands need.

Nothing is downloaded and no weights are loaded: models are looked up in the local caches only,
so the answer is the same on a cluster node without network. torch is imported only when it is
installed (the curation install has none); the heavy libraries are otherwise only looked up.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ccub.commands.common import EXIT_FINDINGS, EXIT_OK, ConfigOption, console, load_config

# import name -> distribution name, for the optional packages of the model stack and the tests.
EXTRAS = {"torch": "torch", "torchvision": "torchvision", "diffusers": "diffusers", "transformers": "transformers",
          "peft": "peft", "accelerate": "accelerate", "open_clip": "open_clip_torch", "lpips": "lpips",
          "dreamsim": "dreamsim", "safetensors": "safetensors", "huggingface_hub": "huggingface_hub",
          "bitsandbytes": "bitsandbytes", "selenium": "selenium"}
# The model stack every model command imports (`ccub.commands.common.model_stack`).
STACK = ("torch", "diffusers", "transformers")
# The survey's browser tests drive Debian's chromium through chromedriver (tests/browser.py).
BROWSER = (Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver"))
MODELS_INSTALL = "pip install -e '.[models]'"


@dataclass
class Row:
    """One model of the report: the commands using it and what the caches say."""

    commands: list[str]
    need: Any  # ccub.models.Need


def doctor(
    config: ConfigOption = None,
    scoft_config: Annotated[Path | None, typer.Option(
        "--scoft-config", help="SCoFT config TOML of `ccub finetune --config` (default: its built-in defaults).",
        dir_okay=False)] = None,
    base: Annotated[str | None, typer.Option(
        help="Base model for prepare, finetune and benchmark (hub id or folder); 'tiny' checks a smoke run's "
             "setup (tiny random models, built on first use).")] = None,
) -> None:
    """Check this machine for ccub: Python, GPU, free disk, installed extras, and every model the
    configured commands need (present or missing in the local caches; nothing is downloaded).

    Ends with one list of download commands for everything missing. Exit codes: 0 everything
    needed is here; 1 something is missing (listed); 2 a config cannot be read.
    """
    cfg = load_config(config)
    problems: list[str] = []
    stack_missing = [name for name in STACK if not _importable(name)]

    system = _table("system", "what", "found")
    version = sys.version.split()[0]
    ok_python = sys.version_info >= (3, 11)
    system.add_row("Python", f"{version} ({'>= 3.11, ok' if ok_python else 'ccub needs >= 3.11'})")
    if not ok_python:
        problems.append(f"Python {version}: ccub needs 3.11 or newer")
    system.add_row("platform", platform.platform())
    for what, value in _torch_rows(stack_missing):
        system.add_row(what, value)
    console.print(system)

    disk = _table("free disk", "where", "path", "free")
    from ccub.models import hf_cache_dir, model_cache
    from finetune.needs import torch_hub_dir

    for what, path in (("working folder", Path.cwd()), ("Hugging Face cache", hf_cache_dir()),
                       ("ccub model cache", model_cache()), ("torch hub cache", torch_hub_dir())):
        disk.add_row(what, str(path), _free(path))
    console.print(disk)

    extras = _table("installed extras", "package", "version")
    for module, dist in EXTRAS.items():
        extras.add_row(module, _version(module, dist))
    browser = [str(p) for p in BROWSER if not p.exists()]
    extras.add_row("browser (survey tests)", "missing " + ", ".join(browser) if browser
                   else f"{BROWSER[0]} + {BROWSER[1]}")
    console.print(extras)
    if stack_missing:
        problems.append(f"the model stack is not installed ({', '.join(stack_missing)} missing): {MODELS_INSTALL}; "
                        f"prepare, finetune and benchmark cannot run here (validate, card, fetch and study can)")

    scoft = _scoft_config(scoft_config, base)
    rows = _model_rows(cfg, scoft, base)
    console.print(f"config: {escape(cfg.source)}; SCoFT config: {escape(str(scoft_config or 'built-in defaults'))}",
                  highlight=False)
    models = _table("models the configured commands need (local caches only, nothing downloaded)",
                    "role", "model", "used by", "status")
    for row in rows:
        need = row.need
        status = f"[green]present[/] ({escape(need.note)})" if need.ok else "[red]missing[/]"
        models.add_row(escape(need.role), escape(need.name), ", ".join(row.commands), status)
    console.print(models)

    from ccub.models.needs import download_list

    missing = [row.need for row in rows if not row.need.ok]
    for need in missing:
        problems.append(need.problem)
    if not problems:
        console.print("[green]ready:[/] everything the configured commands need is here")
        raise typer.Exit(EXIT_OK)
    console.print(f"[red]not ready:[/] {len(problems)} problem(s)")
    for problem in problems:
        console.print(f"  - {escape(problem)}", highlight=False)
    lines = download_list(missing)
    if lines:
        console.print("[bold]download list[/] (one ready-to-run list for everything missing):")
        for line in lines:
            typer.echo(line)
    raise typer.Exit(EXIT_FINDINGS)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(module: str, dist: str) -> str:
    if not _importable(module):
        return "[dim]not installed[/]"
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "installed"


def _torch_rows(stack_missing: list[str]) -> list[tuple[str, str]]:
    if not _importable("torch"):
        return [("torch", f"not installed: the model stack is not installed ({MODELS_INSTALL})")]
    try:
        import torch
    except Exception as exc:  # a broken install: report it, do not crash the doctor
        return [("torch", f"cannot be imported ({type(exc).__name__}: {exc})")]
    rows = [("torch", torch.__version__)]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        memory = sum(torch.cuda.get_device_properties(i).total_memory for i in range(len(names)))
        rows += [("CUDA", f"available, {len(names)} device(s): {', '.join(names)}"),
                 ("GPU memory", f"{memory / 2**30:.1f} GiB in all")]
    else:
        rows.append(("CUDA", "not available (tiny smoke runs work on the CPU)"))
    mps = getattr(torch.backends, "mps", None)
    rows.append(("MPS", "available" if mps is not None and mps.is_available() else "not available"))
    if stack_missing:
        rows.append(("model stack", f"incomplete: {', '.join(stack_missing)} missing ({MODELS_INSTALL})"))
    return rows


def _free(path: Path) -> str:
    """Free space on the disk holding `path` (or its nearest existing parent)."""
    probe = Path(path).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return f"unknown ({exc.strerror})"
    note = "" if Path(path).expanduser().exists() else " (does not exist yet)"
    return f"{free / 2**30:.1f} GiB{note}"


def _scoft_config(path: Path | None, base: str | None) -> Any:
    from ccub.commands.common import fail
    from ccub.config import ConfigError
    from finetune.config import load_scoft_config

    try:
        return load_scoft_config(path, base=base)
    except ConfigError as exc:
        fail(exc, "config error", exc)


def _model_rows(cfg: Any, scoft: Any, base: str | None) -> list[Row]:
    """Every model of prepare, finetune and benchmark as configured, each once, in that order."""
    from ccub.models import Need, check_clip, hf_cache_dir, model_cache
    from finetune.needs import prepare_needs, training_needs
    from finetune.prepare import STAGES, apply_flags
    from finetune.tiny import is_tiny

    hf_cache = hf_cache_dir()
    settings, tiny = apply_flags(cfg.prepare, {}, base)
    per_command: list[tuple[str, list]] = []
    if tiny:
        refs = [("captioning model", "captioner"), ("depth model", "depth"), ("ControlNet", "controlnet"),
                ("base model", "base")]
        per_command.append(("prepare", [Need(role, f"{tiny}:{part}", note="random weights (tiny), built on first use")
                                        for role, part in refs]))
    else:
        per_command.append(("prepare", prepare_needs(settings, STAGES, network=False, hf_cache=hf_cache)))
    per_command.append(("finetune", training_needs(scoft, network=False, hf_cache=hf_cache)))
    clip = "tiny" if is_tiny(base) else cfg.benchmark.clip
    bench = [training_needs(scoft, network=False, hf_cache=hf_cache)[0],
             check_clip(clip, model_cache(), "benchmark CLIP", network=False, hf_cache=hf_cache)]
    if cfg.benchmark.lpips:
        from finetune.needs import check_backbone

        bench.append(check_backbone("lpips", tiny=bool(tiny), network=False, hf_cache=hf_cache))
    per_command.append(("benchmark", bench))
    rows: dict[tuple[str, str, str | None], Row] = {}
    for command, needs in per_command:
        for need in needs:
            key = (need.name, need.problem or "", need.command)
            if key in rows:
                rows[key].commands.append(command)
            else:
                rows[key] = Row([command], need)
    return list(rows.values())
