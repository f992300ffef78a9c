"""Statistics for a human ranking study of generated images (pure numpy).

In the study each participant ranks, per item (a (prompt, seed) pair), the images of K
models (e.g. base, +M, +MP, +MPC) on one question, best first. The functions below:

- ``rankings_to_pairs``: a full ranking of K models gives K(K-1)/2 (winner, loser) pairs.
- ``bradley_terry``: Bradley-Terry log-strengths by maximum likelihood (MM algorithm).
- ``bt_bootstrap``: the same with percentile-bootstrap intervals, resampling participants.
- ``win_rates``: share of the comparisons of (a, b) won by a.
- ``kendalls_w`` / ``mean_kendall_w``: agreement between participants (Kendall's W).
- ``kendall_tau_b`` / ``tau_with_interval``: rank correlation (e.g. of an automatic metric
  with the human scores), with a (cluster) percentile-bootstrap interval.

The unit of replication for the Bradley-Terry intervals is the participant: the
comparisons of one participant share their taste and are correlated, so resampling
single comparisons would make intervals too narrow.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = [
    "bradley_terry",
    "bt_bootstrap",
    "bt_bootstrap_draws",
    "kendall_tau_b",
    "kendalls_w",
    "mean_kendall_w",
    "mean_with_cluster_interval",
    "percentile_interval",
    "rankings_to_pairs",
    "tau_with_interval",
    "win_rates",
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


def bt_bootstrap(
    rankings_by_participant: dict[str, Sequence[Sequence[str]]],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    prior: float = 0.5,
) -> dict[str, tuple[float, float, float]]:
    """Bradley-Terry log-strengths with percentile-bootstrap intervals over participants.

    Returns ``{model: (estimate, low, high)}``: ``estimate`` is ``bradley_terry`` on all
    rankings (with ``prior``); ``low``/``high`` are the ``(1 -/+ confidence)/2`` quantiles of
    the estimates on ``n_boot`` resamples of the participants with replacement (a resampled
    participant brings all their rankings). The default ``prior=0.5`` keeps resamples in
    which a model never wins finite.
    """
    models, estimate, draws = bt_bootstrap_draws(rankings_by_participant, n_boot, seed, prior)
    low, high = _interval(draws, confidence)
    return {m: (float(estimate[i]), float(low[i]), float(high[i])) for i, m in enumerate(models)}


def bt_bootstrap_draws(
    rankings_by_participant: dict[str, Sequence[Sequence[str]]],
    n_boot: int = 1000,
    seed: int = 0,
    prior: float = 0.5,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(models, estimate, draws)`` behind ``bt_bootstrap``: ``draws`` is ``n_boot x len(models)``.

    The joint draws give intervals for functions of several strengths, such as the
    probability that one model beats another.
    """
    participants = list(rankings_by_participant)
    if not participants:
        raise ValueError("no participants")
    models = sorted({m for rs in rankings_by_participant.values() for r in rs for m in r})
    index = {m: i for i, m in enumerate(models)}
    # One win matrix per participant: a resample is then a sum of matrices, no recounting.
    per = np.stack([_win_matrix(rankings_to_pairs(rankings_by_participant[p]), index) for p in participants])
    pseudo = prior * (1 - np.eye(len(models)))
    estimate = _fit_matrix(per.sum(axis=0) + pseudo, 1000, 1e-10)
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


def win_rates(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Share of the comparisons of a and b won by a: ``w(a, b) = wins_ab / (wins_ab + wins_ba)``.

    Both orders of every compared pair are returned, so ``w(a, b) + w(b, a) = 1``.
    """
    wins: dict[tuple[str, str], int] = {}
    for winner, loser in pairs:
        wins[(winner, loser)] = wins.get((winner, loser), 0) + 1
    rates: dict[tuple[str, str], float] = {}
    for a, b in list(wins):
        total = wins.get((a, b), 0) + wins.get((b, a), 0)
        rates[(a, b)] = wins.get((a, b), 0) / total
        rates[(b, a)] = wins.get((b, a), 0) / total
    return rates


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


def tau_with_interval(
    x: Sequence[float],
    y: Sequence[float],
    groups: Sequence[Hashable] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Kendall's tau-b with a percentile-bootstrap interval: ``(tau, low, high)``.

    Without ``groups`` the points are resampled with replacement. With ``groups`` (e.g.
    prompt ids) whole groups are resampled (cluster bootstrap), as points of one group are
    correlated. Resamples where tau is undefined (constant x or y) are ignored.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    tau = kendall_tau_b(xa, ya)
    rng = np.random.default_rng(seed)
    if groups is None:
        members = [np.array([i]) for i in range(len(xa))]
    else:
        if len(groups) != len(xa):
            raise ValueError("groups must have one entry per point")
        by_group: dict[Hashable, list[int]] = {}
        for i, g in enumerate(groups):
            by_group.setdefault(g, []).append(i)
        members = [np.array(ix) for ix in by_group.values()]
    draws = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        ix = np.concatenate([members[k] for k in pick])
        draws[b] = kendall_tau_b(xa[ix], ya[ix])
    low, high = _interval(draws, confidence)
    return tau, float(low), float(high)


def mean_with_cluster_interval(
    values: Sequence[float],
    groups: Sequence[Hashable],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of ``values`` (NaN ignored) with a percentile interval from resampling whole groups.

    Used for the mean within-item Kendall's tau between a proxy and the human ranking:
    items of one prompt share its difficulty, so prompts are resampled, not items.
    Returns ``(nan, nan, nan)`` when no value is finite.
    """
    va = np.asarray(values, dtype=float)
    if len(groups) != len(va):
        raise ValueError("groups must have one entry per value")
    keep = ~np.isnan(va)
    if not keep.any():
        return float("nan"), float("nan"), float("nan")
    by_group: dict[Hashable, list[float]] = {}
    for value, group in zip(va[keep], np.asarray(groups, dtype=object)[keep], strict=True):
        by_group.setdefault(group, []).append(value)
    sums = np.array([sum(v) for v in by_group.values()])
    counts = np.array([len(v) for v in by_group.values()])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), (n_boot, len(sums)))
    draws = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = _interval(draws, confidence)
    return float(va[keep].mean()), float(low), float(high)
