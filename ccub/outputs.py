"""What `ccub validate` writes into its staged output folder besides the clean set: the reports,
and the data cards beside clean/ when the dataset is not empty. Staged with the clean set, they
are published with it, atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccub.config import Config
    from ccub.pipeline import ProgressFn, Result


def default_card_meta(submissions: Path) -> Path | None:
    """The steward's card.toml: ./card.toml, else the one in the submissions folder."""
    for candidate in (Path("card.toml"), submissions / "card.toml"):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class ValidateOutputs:
    """The pipeline's output writer; holds what it wrote for the summary."""

    card_meta: Path | None
    report: dict[str, Any] = field(default_factory=dict)
    card: Any = None  # data_cards.CardResult, once written

    def __call__(self, result: Any, folder: Path) -> None:
        from ccub.report import write_reports
        from data_cards import write_cards

        self.report = write_reports(result, folder)
        if any(o.output for o in result.outcomes):  # no card for an empty dataset
            self.card = write_cards(self.report, folder.parent, self.card_meta)


def run_validate(submissions: Path, out: Path, cfg: Config, flags: dict[str, str | None] | None = None, *,
                 meta: Path | None = None, progress: ProgressFn | None = None,
                 **options: Any) -> tuple[Result, ValidateOutputs]:
    """`ccub validate` without the console: check the default-field flags, run the pipeline with the
    report and card writer, return its result and what was written. `ccub validate` and
    `ccub.api.validate` both run this. `options`: the other fields of `ccub.pipeline.Options`
    (include_review, workers, clip, test_fraction, against, wait, decisions)."""
    from ccub.pipeline import Options, UsageError, validate
    from ccub.vocab import Vocabulary, check_flags

    flags = {k: v for k, v in (flags or {}).items() if v}
    problems = check_flags(Vocabulary(cfg), flags.get("culture"), flags.get("category"))
    if problems:
        raise UsageError("; ".join(problems))
    outputs = ValidateOutputs(meta or default_card_meta(Path(submissions)))
    result = validate(Options(root=Path(submissions), out=Path(out), flags=flags, **options), cfg, progress, outputs)
    return result, outputs
