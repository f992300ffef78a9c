"""The check catalogue: stable ids, default severities and thresholds, and the families.

A family groups checks that need the same inputs (one class per family, like CleanVision's
issue managers). Record checks see one record and the facts of its image; dataset checks
see every record at once (duplicates, repeated captions, counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from ccub.records import SEVERITIES, Finding, Record

if TYPE_CHECKING:
    from ccub.config import Config
    from ccub.dedup.accepted import AcceptedIndex
    from ccub.imaging.analyze import ImageFacts
    from ccub.safeio import Root
    from ccub.steward import Steward
    from ccub.vocab import Vocabulary


@dataclass(frozen=True)
class CheckSpec:
    id: str
    severity: str
    summary: str
    fix: str
    thresholds: tuple[str, ...] = ()  # dotted config keys the check reads


@dataclass
class Context:
    """What checks may read besides the record: config, vocabularies, image facts."""

    cfg: Config
    vocab: Vocabulary
    root: Root  # the submissions folder, read only through it
    facts: dict[str, ImageFacts]  # by image path relative to the root
    # Duplicate search: an accepted dataset to check against (--against), CLIP embeddings by
    # image (--clip) and the model's name, and whether --test-fraction assigns splits later.
    against: AcceptedIndex | None = None
    embeddings: dict[str, Any] | None = None
    clip_model: str | None = None
    splits_assigned_later: bool = False
    # Review decisions and withdrawals (`ccub.steward.Steward`), when the output has a steward folder.
    steward: Steward | None = None


class CheckFamily:
    name: str = ""
    specs: tuple[CheckSpec, ...] = ()

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        return ()

    def check_dataset(self, records: list[Record], ctx: Context) -> Iterable[Finding]:
        return ()


def families() -> list[CheckFamily]:
    from ccub.checks import captions, duplicates, files, images, labels, privacy, rights, steward

    return [
        files.FileChecks(),
        images.GeometryChecks(),
        images.QualityChecks(),
        privacy.PrivacyChecks(),
        captions.CaptionChecks(),
        labels.LabelChecks(),
        rights.RightsChecks(),
        steward.StewardChecks(),
        duplicates.DuplicateChecks(),
    ]


def all_specs() -> Iterator[CheckSpec]:
    for family in families():
        yield from family.specs


@cache
def spec_index() -> dict[str, CheckSpec]:
    return {spec.id: spec for spec in all_specs()}


@dataclass(frozen=True)
class CheckRow:
    """One check as a configuration sees it: `ccub checks` prints these."""

    id: str
    severity: str  # "disabled" when the configuration disables it
    thresholds: str  # "key=value, ..." or "-"
    summary: str
    fix: str


def check_rows(cfg: Config) -> list[CheckRow]:
    rows = []
    for spec in all_specs():
        severity = "disabled" if spec.id in cfg.disable else severity_of(spec.id, cfg)
        thresholds = ", ".join(f"{t}={cfg.lookup(t)}" for t in spec.thresholds if not isinstance(cfg.lookup(t), list))
        rows.append(CheckRow(spec.id, severity, thresholds or "-", spec.summary, spec.fix))
    return rows


def severity_of(check_id: str, cfg: Config) -> str:
    return cfg.severity.get(check_id) or spec_index()[check_id].severity


def validate_overrides(cfg: Config) -> None:
    from ccub.config import ConfigError

    known = spec_index()
    for check_id, severity in cfg.severity.items():
        if check_id not in known:
            raise ConfigError(f"{cfg.source} [severity]: unknown check id '{check_id}'; "
                              "`ccub checks` lists them")
        if severity not in SEVERITIES:
            raise ConfigError(f"{cfg.source} [severity] {check_id} = '{severity}': "
                              f"use one of {', '.join(SEVERITIES)}")
    for check_id in cfg.disable:
        if check_id not in known:
            raise ConfigError(f"{cfg.source} disable: unknown check id '{check_id}'; "
                              "`ccub checks` lists them")
