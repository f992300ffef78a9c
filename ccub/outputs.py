"""What `ccub validate` writes into its staged output folder besides the clean set: the reports,
and the data cards beside clean/ when the dataset is not empty. Staged with the clean set, they
are published with it, atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
