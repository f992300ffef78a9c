"""Per-image metric values as files: the benchmark's `results.csv` and a study bundle's `metrics.csv`.

One row type for both, written and read here only. Names are written through `csv_text`
(spreadsheet-escaped), so a reader is given the names it expects and maps each cell back.

Seeds stay integers. A prompt-level value (one per prompt, over all its seeds) has no seed: its
`seed` cell is empty and its `level` is "prompt" (an image's is "image"), so a reader keeps the
two apart by `level`, never by a made-up seed. An empty cell makes pandas guess float, so read
the files with ``pd.read_csv(path, dtype={"seed": "Int64"})`` (pandas' integer type with
missing values); docs/outputs.md lists every column.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ccub.escape import csv_text, spreadsheet_cell
from ccub.files import atomic_write_text
from ccub.recordfile import RecordError

RESULTS_COLUMNS = ["model", "prompt", "prompt_text", "level", "seed", "metric", "value", "random_weights"]
# Pandas' dtypes for the columns it would guess wrong (`seed`: integers, empty at prompt level).
PANDAS_DTYPES = {"seed": "Int64"}
IMAGE, PROMPT = "image", "prompt"
STUDY_COLUMNS = ["item", "model", "prompt", "seed", "metric", "value"]
_REQUIRED = ("model", "prompt", "seed", "metric", "value")


@dataclass(frozen=True)
class MetricRow:
    model: str
    prompt: str  # the prompt's id in the suite
    seed: int | None  # None for a prompt-level value
    metric: str
    value: float
    prompt_text: str = ""
    item: str = ""  # the study item showing this image (metrics.csv only)
    random_weights: bool = False

    @property
    def level(self) -> str:
        """"image" (a value of one generated image) or "prompt" (one over all seeds of a prompt)."""
        return PROMPT if self.seed is None else IMAGE


def write_rows(path: Path, rows: Iterable[MetricRow], columns: list[str]) -> Path:
    cells = [{**dataclasses.asdict(r), "seed": "" if r.seed is None else r.seed, "level": r.level} for r in rows]
    atomic_write_text(Path(path), csv_text(cells, columns))
    return Path(path)


def read_rows(path: Path, names: Iterable[str] = (), fix: str = "rerun `ccub benchmark`") -> list[MetricRow]:
    """Every row of `path`; `names`: the model and prompt names the file was written from. A file
    with a missing column or a cell of the wrong type is refused naming the row, field and `fix`."""
    written = {spreadsheet_cell(name): name for name in names}
    name = lambda cell: written.get(cell, cell)  # noqa: E731
    rows = []
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise RecordError(f"{path}: no column {', '.join(missing)}; {fix}")
        for line, cell in enumerate(reader, start=2):
            field = "seed"
            try:
                seed = int(cell["seed"]) if cell["seed"] not in ("", None) else None
                field = "value"
                value = float(cell["value"])
            except (TypeError, ValueError):
                raise RecordError(f"{path}: line {line}, field {field}: {cell[field]!r} is not a number; "
                                  f"{fix}") from None
            if cell.get("level") not in (None, "", PROMPT if seed is None else IMAGE):
                raise RecordError(f"{path}: line {line}, field level: {cell['level']!r} with seed {cell['seed']!r} "
                                  f"(an image has a seed, a prompt-level value none); {fix}")
            rows.append(MetricRow(model=name(cell["model"]), prompt=name(cell["prompt"]), seed=seed,
                                  metric=cell["metric"], value=value, prompt_text=cell.get("prompt_text") or "",
                                  item=cell.get("item") or "", random_weights=cell.get("random_weights") == "True"))
    return rows
