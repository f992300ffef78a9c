"""`ccub study analyze`: what people ranked, how much they agreed, and which proxies follow them.

    study.json (key) + metrics.csv + responses (already checked, slots turned into models)
      --> per question: Bradley-Terry strengths with participant-bootstrap intervals and the
          probability of beating the reference model; mean ranks; win rates;
          agreement (Kendall's W per item, averaged, with its chance level);
          Kendall's tau between each benchmark proxy and the human ranking, within items,
          averaged, with an interval from resampling participants and prompts.

The human ranking of an item's images on a question is the mean over its raters of the share
of the other images each image beat (1 = always ranked first). Proxies are oriented so that a
positive tau means "the proxy prefers what people prefer", whichever direction it counts as
better. Only orders within an item are compared: ranks carry no meaning across items.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.metric_rows import read_rows
from benchmark.study import stats
from benchmark.study.responses import Conflict, Ranking, Responses

if TYPE_CHECKING:
    from benchmark.study.bundle import StudyKey

GROUPS = ("all", "affiliated")  # every participant, or those who identify with the culture
FEW_PARTICIPANTS = 10


@dataclass
class Strength:
    question: str
    model: str
    rank: int  # 1 = strongest
    theta: float  # Bradley-Terry log-strength, mean 0 over models
    low: float
    high: float
    p_beats_reference: float  # P(model beats the reference model), from the strengths
    p_low: float
    p_high: float
    mean_rank: float  # mean position given by people, 1 = best
    rankings: int


@dataclass
class Wins:
    question: str
    model: str
    opponent: str
    wins: int
    comparisons: int

    @property
    def rate(self) -> float:
        return self.wins / self.comparisons if self.comparisons else math.nan


@dataclass
class Agreement:
    question: str
    kendall_w: float  # mean over items with 2 or more raters
    chance: float  # its expectation when people rank at random: mean of 1/raters
    items: int
    mean_raters: float


@dataclass
class Correlation:
    question: str
    metric: str
    tau: float  # mean within-item Kendall tau-b, proxy oriented to "better"
    low: float
    high: float
    items: int  # items with a defined tau
    prompts: int


@dataclass
class Analysis:
    study_id: str
    culture: str
    culture_name: str
    group: str
    reference: str
    models: list[str]
    questions: list[str]
    participants: int
    identifies: dict[str, int]
    smoke_run: bool
    simulated: bool
    strengths: list[Strength] = field(default_factory=list)
    wins: list[Wins] = field(default_factory=list)
    agreement: list[Agreement] = field(default_factory=list)
    correlations: list[Correlation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    resubmission: str = "latest"  # the policy that settled conflicting files
    conflicts: list[Conflict] = field(default_factory=list)


def read_metrics(path: Path, models: Iterable[str] = ()) -> dict[tuple[str, str], dict[str, float]]:
    """(item, model) -> metric -> value, from the bundle's metrics.csv (absent: no proxies to correlate).
    `models`: the study's model names, which the CSV may hold formula-escaped ("'+MPC")."""
    found: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    if path.is_file():
        for row in read_rows(path, models, fix="make the study again with `ccub study make`"):
            found[(row.item, row.model)][row.metric] = row.value
    return dict(found)


def analyze(study: StudyKey, responses: Responses, metrics: dict[tuple[str, str], dict[str, float]], settings,
            group: str = "all") -> Analysis:
    """`settings`: the [study] config section (bootstrap, confidence, prior, seed)."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}")
    people = {p.id: p for p in responses.participants.values() if group == "all" or p.identifies == "yes"}
    rankings = [r for r in responses.rankings if r.participant in people]
    models = study.model_names()
    counts = {k: sum(p.identifies == k for p in people.values()) for k in ("yes", "no", "unsaid")}
    result = Analysis(
        study_id=study.study_id, culture=study.culture, culture_name=study.culture_name, group=group,
        reference="base" if "base" in models else models[0], models=models, questions=list(study.questions),
        participants=len(people), identifies=counts, smoke_run=bool(study.smoke_run),
        simulated=any(p.simulated for p in people.values()),
        settings={k: getattr(settings, k) for k in ("bootstrap", "confidence", "prior", "seed")},
        resubmission=responses.resubmission, conflicts=list(responses.conflicts))
    if not rankings:
        who = "any participant" if group == "all" else "participants who identify with the culture"
        result.notes.append(f"no rankings from {who}: nothing to analyse")
        return result
    if len(people) < FEW_PARTICIPANTS:
        result.notes.append(f"only {len(people)} participants: the intervals resample participants, and with fewer "
                            f"than {FEW_PARTICIPANTS} they understate the uncertainty")
    prompt_of = {item["id"]: item["prompt_id"] for item in study.items}
    for question in result.questions:
        chosen = [r for r in rankings if r.question == question]
        if not chosen:
            result.notes.append(f"{question}: nobody answered it")
            continue
        result.strengths += _strengths(question, chosen, models, result.reference, settings, result.notes)
        result.wins += _wins(question, chosen, models)
        result.agreement.append(_agreement(question, chosen))
        result.correlations += _correlations(question, chosen, metrics, prompt_of, models, settings, result.notes)
    return result


def _by_participant(rankings: list[Ranking]) -> dict[str, list[tuple[str, ...]]]:
    grouped: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for r in rankings:
        grouped[r.participant].append(r.models)
    return dict(grouped)


def _strengths(question: str, rankings: list[Ranking], models: list[str], reference: str, s,
               notes: list[str]) -> list[Strength]:
    """The Bradley-Terry rows of one question; a fit that did not converge adds a line to `notes`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", stats.ConvergenceWarning)
        names, estimate, draws = stats.bt_bootstrap_draws(_by_participant(rankings), s.bootstrap, s.seed, s.prior)
    for w in caught:
        if issubclass(w.category, stats.ConvergenceWarning):
            notes.append(f"{question}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    low, high = stats.percentile_interval(draws, s.confidence)
    ref = names.index(reference)
    p_draws = 1 / (1 + np.exp(draws[:, [ref]] - draws))
    p_low, p_high = stats.percentile_interval(p_draws, s.confidence)
    positions: dict[str, list[int]] = defaultdict(list)
    for r in rankings:
        for position, model in enumerate(r.models, start=1):
            positions[model].append(position)
    order = sorted(range(len(names)), key=lambda i: -estimate[i])
    out = []
    for rank, i in enumerate(order, start=1):
        out.append(Strength(
            question, names[i], rank, float(estimate[i]), float(low[i]), float(high[i]),
            float(1 / (1 + np.exp(estimate[ref] - estimate[i]))), float(p_low[i]), float(p_high[i]),
            float(np.mean(positions[names[i]])), len(positions[names[i]])))
    return sorted(out, key=lambda x: models.index(x.model))


def _wins(question: str, rankings: list[Ranking], models: list[str]) -> list[Wins]:
    counts = stats.win_counts(stats.rankings_to_pairs([r.models for r in rankings]))
    return [Wins(question, a, b, counts.get((a, b), 0), counts.get((a, b), 0) + counts.get((b, a), 0))
            for a in models for b in models if a != b]


def _agreement(question: str, rankings: list[Ranking]) -> Agreement:
    by_item: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for r in rankings:
        by_item[r.item].append(r.models)
    rated = [v for v in by_item.values() if len(v) >= 2]
    if not rated:
        return Agreement(question, math.nan, math.nan, 0, 0.0)
    return Agreement(question, stats.mean_kendall_w(rated), float(np.mean([1 / len(v) for v in rated])),
                     len(rated), float(np.mean([len(v) for v in rated])))


def score_arrays(rankings: list[Ranking], models: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(items, scores, rated): scores[p, i, k] is the share of item i's other images that participant p
    ranked model k above (1 = first), rated[p, i] whether p ranked item i."""
    people = sorted({r.participant for r in rankings})
    items = sorted({r.item for r in rankings})
    row, col, at = {p: n for n, p in enumerate(people)}, {i: n for n, i in enumerate(items)}, {
        m: n for n, m in enumerate(models)}
    scores = np.zeros((len(people), len(items), len(models)))
    rated = np.zeros((len(people), len(items)))
    for r in rankings:
        k = len(r.models)
        for position, model in enumerate(r.models):
            scores[row[r.participant], col[r.item], at[model]] = (k - 1 - position) / (k - 1)
        rated[row[r.participant], col[r.item]] = 1
    return items, scores, rated


def _correlations(question: str, rankings: list[Ranking], metrics: dict[tuple[str, str], dict[str, float]],
                  prompt_of: dict[str, str], models: list[str], s, notes: list[str]) -> list[Correlation]:
    from benchmark.evaluate import METRICS

    items, scores, rated = score_arrays(rankings, models)
    names = sorted({m for values in metrics.values() for m in values})
    out = []
    for metric in names:
        # A proxy ccub does not know is taken as higher-is-better.
        sign = -1.0 if metric in METRICS and not METRICS[metric].higher_is_better else 1.0
        keep = [n for n, item in enumerate(items) if all(metric in metrics.get((item, m), {}) for m in models)]
        if not keep:
            continue
        proxy = np.array([[sign * metrics[(items[n], m)][metric] for m in models] for n in keep])
        prompts = [prompt_of[items[n]] for n in keep]
        tau, low, high, defined = stats.within_item_tau(scores[:, keep], rated[:, keep], proxy, prompts,
                                                        s.bootstrap, s.seed, s.confidence)
        missing = int(np.isnan(proxy).any(axis=1).sum())
        if missing:
            notes.append(f"{question}: {metric} is NaN for some image of {missing} item(s); those items are left "
                         f"out of its tau and of its interval")
        used = {p for p, counted in zip(prompts, defined, strict=True) if counted}
        out.append(Correlation(question, metric, tau, low, high, int(defined.sum()), len(used)))
    return out
