"""Statistics for a human ranking study of generated images (pure numpy).

In the study each participant ranks, per item (a (prompt, seed) pair), the images of K
models (e.g. base, +M, +MP, +MPC) on one question, best first. The functions below:

- ``rankings_to_pairs``: a full ranking of K models gives K(K-1)/2 (winner, loser) pairs.
- ``bradley_terry``: Bradley-Terry log-strengths by maximum likelihood (MM algorithm).
- ``bt_bootstrap_draws`` / ``percentile_interval``: the same on resamples of the
  participants, and percentile intervals of such draws.
- ``win_counts``: how often a beat b.
- ``kendalls_w`` / ``mean_kendall_w``: agreement between participants (Kendall's W).
- ``kendall_tau_b`` / ``within_item_tau``: rank correlation of an automatic metric with
  people's ranking of the same item's images, averaged over items, with an interval that
  resamples participants and prompts.

The unit of replication for the Bradley-Terry intervals is the participant: the
comparisons of one participant share their taste and are correlated, so resampling
single comparisons would make intervals too narrow.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = [
    "bradley_terry",
    "bt_bootstrap_draws",
    "kendall_tau_b",
    "kendalls_w",
    "mean_kendall_w",
    "percentile_interval",
    "rankings_to_pairs",
    "win_counts",
    "within_item_tau",
]


def rankings_to_pairs(rankings: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Turn full rankings (best first) into (winner, loser) pairs.

    A ranking ``[m_1, ..., m_K]`` gives ``(m_a, m_b)`` for every ``a < b``: K(K-1)/2 pairs.
    """
    pairs: list[tuple[str, str]] = []
    for ranking in rankings:
        if len(set(ranking)) != len(ranking):
            raise ValueError(f"ranking lists a model twice: {list(ranking)}")
        for a in range(len(ranking)):
            for b in range(a + 1, len(ranking)):
                pairs.append((ranking[a], ranking[b]))
    return pairs


def _win_matrix(pairs: Sequence[tuple[str, str]], index: dict[str, int]) -> np.ndarray:
    """``w[i, j]`` = number of times model i beat model j."""
    wins = np.zeros((len(index), len(index)))
    for winner, loser in pairs:
        if winner not in index or loser not in index:
            raise ValueError(f"pair ({winner!r}, {loser!r}) names a model outside `models`")
        if winner == loser:
            raise ValueError(f"model {winner!r} compared with itself")
        wins[index[winner], index[loser]] += 1
    return wins


def _mm_fit(wins: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """MM iterations (Hunter 2004) on a win matrix whose every model has at least one win.

    ``p_i <- W_i / sum_{j != i} n_ij / (p_i + p_j)`` with ``W_i = sum_j w_ij`` and
    ``n_ij = w_ij + w_ji``, all models updated at once (still a minorise-maximise step, as
    the minorising function is separable), then rescaled to geometric mean 1. Stops when
    no log-strength moves by more than ``tol``. Returns log-strengths centred to mean 0.
    """
    total_wins = wins.sum(axis=1)
    n = wins + wins.T
    theta = np.zeros(len(wins))
    for _ in range(max_iter):
        p = np.exp(theta)
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.log(total_wins / denom)
        new -= new.mean()  # geometric mean of p is 1: the likelihood is scale invariant
        done = np.max(np.abs(new - theta)) < tol
        theta = new
        if done:
            break
    return theta


def _fit_matrix(wins: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """Log-strengths for a win matrix (prior already added); never-winning models get -inf.

    A model without a win has MLE ``p = 0``: it is set to -inf and the rest are fitted on
    the comparisons among themselves (repeatedly, as removing it may leave another model
    without a win). Finite values are centred to mean 0.
    """
    theta = np.full(len(wins), -np.inf)
    active = np.arange(len(wins))
    while len(active):
        sub = wins[np.ix_(active, active)]
        winners = sub.sum(axis=1) > 0
        if winners.all():
            theta[active] = _mm_fit(sub, max_iter, tol)
            break
        active = active[winners]
    return theta


def bradley_terry(
    pairs: Sequence[tuple[str, str]],
    models: Sequence[str] | None = None,
    *,
    max_iter: int = 1000,
    tol: float = 1e-10,
    prior: float = 0.0,
) -> dict[str, float]:
    """Bradley-Terry log-strengths fitted by maximum likelihood with the MM algorithm.

    Model: ``P(i beats j) = p_i / (p_i + p_j)``. The log-likelihood
    ``sum_{i != j} w_ij (log p_i - log(p_i + p_j))`` is maximised by Hunter's (2004) MM
    iteration ``p_i <- W_i / sum_{j != i} n_ij / (p_i + p_j)`` (``W_i``: wins of i,
    ``n_ij``: comparisons of i and j), normalising to geometric mean 1 after each step.
    Returns ``theta_i = log p_i``, centred to mean 0 (so only differences matter:
    ``theta_i - theta_j`` is the log-odds that i beats j).

    ``models`` fixes the models (default: those in ``pairs``, sorted). ``prior`` adds
    ``prior`` pseudo-wins each way to every pair of models, which shrinks strengths
    towards equality and keeps the MLE finite when a model never wins (or never loses) or
    the comparison graph is not connected. With ``prior=0`` a model that never wins gets
    ``-inf`` (its MLE is ``p = 0``) and the others are fitted among themselves; a model
    that never loses has no finite MLE either and drifts up until ``max_iter``; a model
    with no comparison at all raises ``ValueError``.
    """
    if models is None:
        models = sorted({m for pair in pairs for m in pair})
    models = list(models)
    if len(set(models)) != len(models):
        raise ValueError("`models` lists a model twice")
    if prior < 0:
        raise ValueError("`prior` must be >= 0")
    index = {m: i for i, m in enumerate(models)}
    wins = _win_matrix(pairs, index)
    wins += prior * (1 - np.eye(len(models)))
    compared = (wins + wins.T).sum(axis=1) > 0
    if len(models) > 1 and not compared.all():
        missing = [m for m, c in zip(models, compared, strict=True) if not c]
        raise ValueError(f"models without any comparison: {missing} (use prior > 0)")
    theta = _fit_matrix(wins, max_iter, tol)
    return {m: float(t) for m, t in zip(models, theta, strict=True)}


def _interval(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0: the (1-c)/2 and (1+c)/2 quantiles."""
    if not 0 < confidence < 1:
        raise ValueError("`confidence` must be in (0, 1)")
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(draws, [alpha, 1 - alpha], axis=0)
    return low, high


def bt_bootstrap_draws(
    rankings_by_participant: dict[str, Sequence[Sequence[str]]],
    n_boot: int = 1000,
    seed: int = 0,
    prior: float = 0.5,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bradley-Terry log-strengths and their bootstrap draws, resampling participants.

    Returns ``(models, estimate, draws)``: ``estimate`` is ``bradley_terry`` on all rankings
    (with ``prior``); ``draws`` (``n_boot x len(models)``) are the estimates on resamples of
    the participants with replacement (a resampled participant brings all their rankings).
    ``percentile_interval(draws)`` gives the intervals; the joint draws also give intervals
    for functions of several strengths, such as the probability that one model beats
    another. The default ``prior=0.5`` keeps resamples in which a model never wins finite.
    """
    participants = list(rankings_by_participant)
    if not participants:
        raise ValueError("no participants")
    models = sorted({m for rs in rankings_by_participant.values() for r in rs for m in r})
    index = {m: i for i, m in enumerate(models)}
    # One win matrix per participant: a resample is then a sum of matrices, no recounting.
    per = np.stack([_win_matrix(rankings_to_pairs(rankings_by_participant[p]), index) for p in participants])
    pseudo = prior * (1 - np.eye(len(models)))
    fitted = bradley_terry([pair for p in participants for pair in rankings_to_pairs(rankings_by_participant[p])],
                           models, prior=prior)
    estimate = np.array([fitted[m] for m in models])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(participants), (n_boot, len(participants)))
    counts = np.stack([np.bincount(pick, minlength=len(participants)) for pick in picks])
    resampled = np.einsum("bp,pij->bij", counts, per) + pseudo
    # Looser tolerance than the point estimate: bootstrap noise dwarfs 1e-8.
    if prior > 0:  # every model has a (pseudo-)win in every resample: fit them all at once
        return models, estimate, _mm_fit_many(resampled, 1000, 1e-8)
    return models, estimate, np.stack([_fit_matrix(w, 1000, 1e-8) for w in resampled])


def _mm_fit_many(wins: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """``_mm_fit`` on a stack of win matrices (B x K x K) in lockstep, until every fit has converged."""
    total_wins = wins.sum(axis=2)
    n = wins + wins.transpose(0, 2, 1)
    theta = np.zeros(total_wins.shape)
    for _ in range(max_iter):
        p = np.exp(theta)
        denom = (n / (p[:, :, None] + p[:, None, :])).sum(axis=2)
        new = np.log(total_wins / denom)
        new -= new.mean(axis=1, keepdims=True)
        done = np.max(np.abs(new - theta)) < tol
        theta = new
        if done:
            break
    return theta


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap draws along axis 0 (NaN draws ignored)."""
    return _interval(np.asarray(draws, dtype=float), confidence)


def win_counts(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """``(a, b) -> `` how often a beat b; a win rate is ``wins[a, b] / (wins[a, b] + wins[b, a])``."""
    wins: dict[tuple[str, str], int] = {}
    for winner, loser in pairs:
        wins[(winner, loser)] = wins.get((winner, loser), 0) + 1
    return wins


def kendalls_w(rank_matrix: np.ndarray) -> float:
    """Kendall's coefficient of concordance W for m raters (rows) x n objects (columns).

    Each row holds ranks 1..n. With ``R_j`` the rank sum of object j and ``R`` their mean
    ``m (n + 1) / 2``: ``S = sum_j (R_j - R)^2`` and ``W = 12 S / (m^2 (n^3 - n))``, in
    [0, 1]: 1 when all raters agree, 0 when all rank sums are equal. Full rankings have no
    ties, so no tie correction is applied.
    """
    ranks = np.asarray(rank_matrix, dtype=float)
    if ranks.ndim != 2 or ranks.shape[0] < 1 or ranks.shape[1] < 2:
        raise ValueError("rank_matrix must be m raters x n >= 2 objects")
    m, n = ranks.shape
    expected = np.arange(1, n + 1)
    if not all(np.array_equal(np.sort(row), expected) for row in ranks):
        raise ValueError("each row must be a permutation of the ranks 1..n")
    sums = ranks.sum(axis=0)
    s = float(((sums - sums.mean()) ** 2).sum())
    return 12 * s / (m**2 * (n**3 - n))


def mean_kendall_w(rankings_by_item: Sequence[Sequence[Sequence[str]]]) -> float:
    """Kendall's W per item across the participants who ranked it, averaged over items.

    ``rankings_by_item[k]`` holds the rankings (best first) of item k, one per participant;
    all must rank the same models. Items with fewer than 2 raters are skipped (W of one
    rater is trivially 1). Returns ``nan`` when no item has 2 raters.
    """
    values = []
    for rankings in rankings_by_item:
        if len(rankings) < 2:
            continue
        models = sorted(rankings[0])
        col = {m: j for j, m in enumerate(models)}
        rows = []
        for ranking in rankings:
            if sorted(ranking) != models:
                raise ValueError(f"rankings of one item name different models: {list(ranking)} vs {models}")
            row = np.empty(len(models))
            for rank, m in enumerate(ranking, start=1):
                row[col[m]] = rank
            rows.append(row)
        values.append(kendalls_w(np.array(rows)))
    return float(np.mean(values)) if values else float("nan")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b, ties handled: ``(n_c - n_d) / sqrt((n_0 - n_1) (n_0 - n_2))``.

    ``n_c``/``n_d``: concordant/discordant pairs, ``n_0 = n (n - 1) / 2``, ``n_1``/``n_2``:
    pairs tied in x/in y. Computed from the n x n sign matrices ``sx = sign(x_i - x_j)``,
    ``sy``: ``tau_b = sum(sx sy) / sqrt(sum(sx^2) sum(sy^2))`` (each pair counted twice
    everywhere, which cancels). O(n^2) time and memory: fine for n <= 2000 or so.
    Returns ``nan`` when x or y is constant.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("x and y must be 1-d and of the same length")
    sx = np.sign(xa[:, None] - xa[None, :]).astype(np.int8)
    sy = np.sign(ya[:, None] - ya[None, :]).astype(np.int8)
    num = float(np.sum(sx.astype(np.int64) * sy))
    den = float(np.count_nonzero(sx)) * float(np.count_nonzero(sy))
    return num / np.sqrt(den) if den > 0 else float("nan")


def within_item_tau(
    scores: np.ndarray,
    rated: np.ndarray,
    proxy: np.ndarray,
    prompts: Sequence[Hashable],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float, np.ndarray]:
    """Mean over items of Kendall's tau-b between a proxy and people's scores of an item's K images.

    ``scores``: participants x items x K, each participant's score of each image (e.g. the
    share of the item's other images they ranked it above); ``rated``: participants x items,
    whether they ranked the item; ``proxy``: items x K. People's score of an image is the mean
    over the item's raters. Items whose tau is undefined (a constant proxy or constant scores)
    are left out. Returns ``(tau, low, high, defined)``, ``defined`` the items whose tau counted;
    the interval is a percentile bootstrap
    that resamples participants *and* prompts (the items of a prompt travel together), so it
    carries both the raters' noise and the prompts' variety.
    """
    scores = np.asarray(scores, dtype=float)
    rated = np.asarray(rated, dtype=float)
    proxy_sign = np.sign(proxy[:, :, None] - proxy[:, None, :])  # items x K x K, fixed
    groups = {g: i for i, g in enumerate(dict.fromkeys(prompts))}
    group_of = np.array([groups[g] for g in prompts])

    def taus(weights: np.ndarray) -> np.ndarray:
        """weights: draws x participants -> draws x items (nan where undefined)."""
        totals = np.einsum("dp,pi->di", weights, rated)
        with np.errstate(invalid="ignore", divide="ignore"):
            human = np.einsum("dp,pik->dik", weights, scores * rated[:, :, None]) / totals[:, :, None]
            human_sign = np.sign(human[:, :, :, None] - human[:, :, None, :])
            num = (proxy_sign[None] * human_sign).sum(axis=(2, 3))
            den = np.sqrt(np.count_nonzero(proxy_sign, axis=(1, 2))[None] * np.count_nonzero(human_sign, axis=(2, 3)))
            return np.where(den > 0, num / den, np.nan)

    people = (scores * rated[:, :, None]).sum(axis=0) / np.maximum(rated.sum(axis=0), 1)[:, None]
    point = np.array([kendall_tau_b(proxy[i], people[i]) if rated[:, i].any() else np.nan
                      for i in range(len(proxy))])
    defined = ~np.isnan(point)
    if not defined.any():
        return float("nan"), float("nan"), float("nan"), defined
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for start in range(0, n_boot, 100):  # blocks bound the memory: 100 x items x K x K signs
        count = min(100, n_boot - start)
        people = np.stack([np.bincount(rng.integers(0, len(scores), len(scores)), minlength=len(scores))
                           for _ in range(count)])
        picked = np.stack([np.bincount(rng.integers(0, len(groups), len(groups)), minlength=len(groups))
                           for _ in range(count)])[:, group_of]  # draws x items: how often each item's prompt
        values = taus(people.astype(float))
        weight = np.where(np.isnan(values), 0, picked)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[start:start + count] = np.nansum(values * weight, axis=1) / weight.sum(axis=1)
    low, high = _interval(draws, confidence)
    return float(np.mean(point[defined])), float(low), float(high), defined
