"""Statistics for a human ranking study of generated images (pure numpy).

In the study each participant ranks, per item (a (prompt, seed) pair), the images of K
models (e.g. base, +M, +MP, +MPC) on one question, best first. The functions below:

- ``rankings_to_pairs``: a full ranking of K models gives K(K-1)/2 (winner, loser) pairs.
- ``bradley_terry`` / ``fit_bradley_terry``: Bradley-Terry log-strengths by maximum
  likelihood (Newton's method; the latter also says whether it converged). With ``prior = 0``
  they refuse data without a finite MLE rather than return infinite strengths.
- ``bt_bootstrap_draws`` / ``percentile_interval``: the same on resamples of the
  participants (``prior > 0``), and percentile intervals of such draws. A fit that stops at
  its iteration limit is reported by a ``ConvergenceWarning``.
- ``win_counts``: how often a beat b.
- ``kendalls_w`` / ``mean_kendall_w``: agreement between participants (Kendall's W).
- ``kendall_tau_b`` / ``within_item_tau``: rank correlation of an automatic metric with
  people's ranking of the same item's images, averaged over items, with an interval that
  resamples participants and prompts. NaN follows ``nan_policy`` (scipy's names), one rule
  for the estimate and its bootstrap.

The unit of replication for the Bradley-Terry intervals is the participant: the
comparisons of one participant share their taste and are correlated, so resampling
single comparisons would make intervals too narrow.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BTFit",
    "ConvergenceWarning",
    "bradley_terry",
    "bt_bootstrap_draws",
    "fit_bradley_terry",
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


class ConvergenceWarning(RuntimeWarning):
    """A Bradley-Terry fit stopped at ``max_iter`` before meeting its tolerance."""


@dataclass(frozen=True)
class BTFit:
    """A Bradley-Terry fit: log-strengths (mean 0) and whether the optimiser converged.

    ``max_gradient`` is the largest ``|d loglik / d theta_i|`` at the end, in (pseudo-)wins:
    0 at the maximum.
    """

    models: list[str]
    theta: np.ndarray
    converged: bool
    iterations: int
    max_gradient: float

    def as_dict(self) -> dict[str, float]:
        return {m: float(t) for m, t in zip(self.models, self.theta, strict=True)}


def _sigmoid(d: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-d))`` without overflow and to full relative precision also near 0 (where
    ``1 - sigmoid(-d)`` would keep only an absolute precision of 1e-16, which nearly separated
    data need: their gradient is a sum of such small probabilities)."""
    e = np.exp(-np.abs(d))
    return np.where(d >= 0, 1, e) / (1 + e)


def _gradient(wins: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient of the log-likelihood and the pairwise win probabilities, for B x K x K win matrices.

    ``g_i = sum_j w_ij s_ji - w_ji s_ij`` with ``s_ij = P(i beats j)``: the same as
    ``W_i - sum_j n_ij s_ij`` but without its cancellation when the data are nearly separated.
    """
    d = theta[:, :, None] - theta[:, None, :]
    s, s_t = _sigmoid(d), _sigmoid(-d)
    grad = (wins * s_t - wins.transpose(0, 2, 1) * s).sum(axis=2)
    return grad, s, s_t


def _loglik(wins: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``sum_ij w_ij log P(i beats j) = -sum_ij w_ij log(1 + exp(theta_j - theta_i))``, per matrix."""
    d = theta[:, :, None] - theta[:, None, :]
    return -(wins * np.logaddexp(0, -d)).sum(axis=(1, 2))


def _fit_many(wins: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Bradley-Terry MLE for a stack of win matrices (B x K x K), each with a finite MLE.

    Newton's method on the concave log-likelihood with a backtracking (Armijo) line search,
    from theta = 0. The Hessian is minus the Laplacian ``L`` of the weights
    ``n_ij s_ij s_ji``; ``(L + 11'/K) step = g`` gives the Newton step with mean 0 (``g`` sums
    to 0, and ``L`` is invertible on mean-0 vectors when the comparisons connect the models).
    A fit has converged when its Newton step moves no log-strength by more than ``tol``; the
    step is then taken, which leaves an error of about ``tol**2`` (Newton converges
    quadratically). Returns ``(theta, converged, max_gradient, iterations)``, theta centred.
    """
    b, k = wins.shape[:2]
    if k == 0:
        return np.zeros((b, 0)), np.ones(b, dtype=bool), np.zeros(b), 0
    n = wins + wins.transpose(0, 2, 1)
    theta = np.zeros((b, k))
    converged = np.zeros(b, dtype=bool)
    shift = np.full((k, k), 1 / k)
    iterations = 0
    while iterations < max_iter and not converged.all():
        iterations += 1
        todo = np.flatnonzero(~converged)
        w, t = wins[todo], theta[todo]
        grad, s, s_t = _gradient(w, t)
        h = n[todo] * s * s_t
        lap = np.eye(k) * h.sum(axis=2)[:, :, None] - h
        step = np.linalg.solve(lap + shift, grad[:, :, None])[:, :, 0]
        slope = (grad * step).sum(axis=1)  # >= 0: the directional derivative along the step
        base = _loglik(w, t)
        # Below this predicted gain the log-likelihood cannot tell steps apart (rounding): the
        # fit is then inside Newton's quadratic region and the full step is taken.
        ok = slope <= 1e3 * np.finfo(float).eps * (1 + np.abs(base))
        size = np.ones(len(todo))
        for _ in range(60):
            ok |= _loglik(w, t + size[:, None] * step) >= base + 1e-4 * size * slope
            if ok.all():
                break
            size = np.where(ok, size, size / 2)
        t = t + size[:, None] * step
        theta[todo] = t - t.mean(axis=1, keepdims=True)
        converged[todo] = np.max(np.abs(step), axis=1, initial=0.0) <= tol
    gradient = np.max(np.abs(_gradient(wins, theta)[0]), axis=1, initial=0.0)
    return theta, converged, gradient, iterations


def _ordered_groups(wins: np.ndarray) -> list[np.ndarray]:
    """The strongly connected components of the win graph (i -> j when i beat j), winners first.

    One group: every model can be linked to every other by a chain of wins, which is when the
    Bradley-Terry MLE without a prior exists (Zermelo 1929; Hunter 2004, assumption 1).
    """
    k = len(wins)
    reach = (wins > 0) | np.eye(k, dtype=bool)
    for _ in range(k):  # transitive closure by squaring: log2(k) rounds suffice, k is a bound
        wider = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
        if np.array_equal(wider, reach):
            break
        reach = wider
    same = reach & reach.T
    groups: list[np.ndarray] = []
    seen = np.zeros(k, dtype=bool)
    for i in range(k):
        if not seen[i]:
            groups.append(np.flatnonzero(same[i]))
            seen |= same[i]
    # A group reaches every group after it, so the groups that reach more come first.
    return sorted(groups, key=lambda g: -int(reach[g[0]].sum()))


def _check_mle_exists(wins: np.ndarray, models: list[str]) -> None:
    """Raise ValueError, naming the models, when the MLE without a prior is not finite."""
    groups = _ordered_groups(wins)
    if len(groups) <= 1:
        return
    unbeaten = [models[i] for i in range(len(models)) if wins[:, i].sum() == 0]
    winless = [models[i] for i in range(len(models)) if wins[i].sum() == 0]
    order = " > ".join(str([models[i] for i in g]) for g in groups)
    raise ValueError(
        "with prior = 0 the Bradley-Terry strengths have no finite maximum-likelihood value, as no chain of "
        f"wins leads from every model to every other (groups, none ever beaten by a later one: {order}; "
        f"never lost: {unbeaten}; never won: {winless}): the likelihood keeps growing as the groups move "
        "apart. Use prior > 0: pseudo-wins each way keep every strength finite")


def fit_bradley_terry(
    pairs: Sequence[tuple[str, str]],
    models: Sequence[str] | None = None,
    *,
    prior: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> BTFit:
    """Bradley-Terry log-strengths by maximum likelihood, with the optimiser's report.

    Model: ``P(i beats j) = p_i / (p_i + p_j)``, ``theta_i = log p_i`` centred to mean 0 (only
    differences matter: ``theta_i - theta_j`` is the log-odds that i beats j). The
    log-likelihood ``sum_{i != j} w_ij (theta_i - log(exp(theta_i) + exp(theta_j)))`` is
    concave and maximised by Newton's method with a line search (``_fit_many``); ``converged``
    says whether the Newton step fell below ``tol`` within ``max_iter`` iterations (5 to 15
    usually suffice); ``max_gradient`` is the largest partial derivative left.

    ``models`` fixes the models (default: those in ``pairs``, sorted). ``prior`` adds ``prior``
    pseudo-wins each way to every pair of models: a maximum a-posteriori estimate that shrinks
    strengths towards equality and is always finite.

    ``prior = 0`` is the plain MLE, which is finite only when the comparisons link every model
    to every other by a chain of wins (the win graph is strongly connected: e.g. a cycle
    A > B > C > A, whose MLE is all strengths equal). Otherwise, e.g. when a model never lost
    or never won, the MLE does not exist, and this refuses with a ``ValueError`` that names the
    groups of models and those that never lost or never won, rather than report infinite or
    arbitrary strengths.

    Relation to choix: choix's ``alpha`` is another prior (``ilsr_pairwise``: a rate added to
    every transition of its Markov chain; ``mm_pairwise``: ``(wins + alpha) / (denominator +
    alpha)``, a prior on each strength alone; ``opt_pairwise``: a Gaussian prior), none of
    which is ccub's pseudo-wins between models. ccub's ``prior = c`` equals choix's
    ``alpha = 0`` on the data plus ``c`` comparisons each way per pair of models (with every
    count multiplied by one factor, which leaves the MLE unchanged, when ``c`` is fractional).
    """
    if models is None:
        models = sorted({m for pair in pairs for m in pair})
    models = list(models)
    if len(set(models)) != len(models):
        raise ValueError("`models` lists a model twice")
    if not (prior >= 0 and np.isfinite(prior)):
        raise ValueError(f"`prior` must be a finite number >= 0, not {prior}")
    if max_iter < 1:
        raise ValueError(f"`max_iter` must be at least 1, not {max_iter}")
    index = {m: i for i, m in enumerate(models)}
    wins = _win_matrix(pairs, index)
    if prior == 0 and len(models) > 1:
        compared = (wins + wins.T).sum(axis=1) > 0
        if not compared.all():
            missing = [m for m, c in zip(models, compared, strict=True) if not c]
            raise ValueError(f"models without any comparison: {missing} (use prior > 0)")
        _check_mle_exists(wins, models)
    wins += prior * (1 - np.eye(len(models)))
    theta, converged, gradient, iterations = _fit_many(wins[None], max_iter, tol)
    return BTFit(models, theta[0], bool(converged[0]), iterations, float(gradient[0]))


def bradley_terry(
    pairs: Sequence[tuple[str, str]],
    models: Sequence[str] | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    prior: float = 0.0,
) -> dict[str, float]:
    """Bradley-Terry log-strengths (mean 0) by model: ``fit_bradley_terry(...).as_dict()``.

    See ``fit_bradley_terry`` for the model, the ``prior`` and what happens at ``prior = 0``
    (a ``ValueError`` when no finite MLE exists). A fit that has not converged within
    ``max_iter`` Newton iterations is returned with a ``ConvergenceWarning``.
    """
    fit = fit_bradley_terry(pairs, models, prior=prior, max_iter=max_iter, tol=tol)
    if not fit.converged:
        warnings.warn(f"Bradley-Terry did not converge in {max_iter} iterations (largest gradient "
                      f"{fit.max_gradient:.2g} wins); the strengths are approximate", ConvergenceWarning,
                      stacklevel=2)
    return fit.as_dict()


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
    *,
    max_iter: int = 100,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bradley-Terry log-strengths and their bootstrap draws, resampling participants.

    Returns ``(models, estimate, draws)``: ``estimate`` is ``bradley_terry`` on all rankings
    (with ``prior``); ``draws`` (``n_boot x len(models)``) are the estimates on resamples of
    the participants with replacement (a resampled participant brings all their rankings).
    ``percentile_interval(draws)`` gives the intervals; the joint draws also give intervals
    for functions of several strengths, such as the probability that one model beats
    another. ``prior`` must be above 0: a resample can leave a model without a win or a loss,
    where the plain MLE does not exist. A fit (the estimate or any resample) that has not
    converged within ``max_iter`` Newton iterations is reported by one ``ConvergenceWarning``.
    """
    participants = list(rankings_by_participant)
    if not participants:
        raise ValueError("no participants")
    if not prior > 0:
        raise ValueError(f"`prior` = {prior}: the bootstrap needs prior > 0, as a resample of participants can "
                         "leave a model without a win or without a loss, where the strengths have no finite "
                         "maximum-likelihood value")
    if n_boot < 1:
        raise ValueError(f"`n_boot` must be at least 1, not {n_boot}")
    models = sorted({m for rs in rankings_by_participant.values() for r in rs for m in r})
    index = {m: i for i, m in enumerate(models)}
    # One win matrix per participant: a resample is then a sum of matrices, no recounting.
    per = np.stack([_win_matrix(rankings_to_pairs(rankings_by_participant[p]), index) for p in participants])
    pseudo = prior * (1 - np.eye(len(models)))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(participants), (n_boot, len(participants)))
    counts = np.stack([np.bincount(pick, minlength=len(participants)) for pick in picks])
    # The estimate (all participants once) and every resample, fitted together.
    stack = np.concatenate([per.sum(axis=0)[None], np.einsum("bp,pij->bij", counts, per)]) + pseudo
    theta, converged, gradient, _ = _fit_many(stack, max_iter, 1e-10)
    if not converged.all():
        which = [] if converged[0] else ["the estimate"]
        if not converged[1:].all():
            which.append(f"{int((~converged[1:]).sum())} of {n_boot} bootstrap resamples")
        warnings.warn(f"Bradley-Terry did not converge in {max_iter} iterations for {' and '.join(which)} (largest "
                      f"gradient {gradient[~converged].max():.2g} wins); those strengths are approximate",
                      ConvergenceWarning, stacklevel=2)
    return models, theta[0], theta[1:]


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


NAN_POLICIES = ("propagate", "omit", "raise")


def _check_nan_policy(nan_policy: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"`nan_policy` = {nan_policy!r}: expected one of {', '.join(NAN_POLICIES)}")


def _order(v: np.ndarray) -> np.ndarray:
    """``sign(v_i - v_j)`` along the last axis, as int8 (infinities compare as values; no NaN here)."""
    return ((v[..., :, None] > v[..., None, :]).astype(np.int8) - (v[..., :, None] < v[..., None, :]))


def kendall_tau_b(x: Sequence[float], y: Sequence[float], nan_policy: str = "propagate") -> float:
    """Kendall's tau-b, ties handled: ``(n_c - n_d) / sqrt((n_0 - n_1) (n_0 - n_2))``.

    ``n_c``/``n_d``: concordant/discordant pairs, ``n_0 = n (n - 1) / 2``, ``n_1``/``n_2``:
    pairs tied in x/in y. Computed from the n x n sign matrices ``sx = sign(x_i - x_j)``,
    ``sy``: ``tau_b = sum(sx sy) / sqrt(sum(sx^2) sum(sy^2))`` (each pair counted twice
    everywhere, which cancels). O(n^2) time and memory: fine for n <= 2000 or so.
    Returns ``nan`` when x or y is constant or fewer than 2 observations are left.

    NaN, as in ``scipy.stats.kendalltau``: ``nan_policy="propagate"`` (default) returns ``nan``
    when x or y holds a NaN; ``"omit"`` drops every observation i whose ``x_i`` or ``y_i`` is
    NaN and computes tau-b on the rest; ``"raise"`` raises ``ValueError``.
    """
    _check_nan_policy(nan_policy)
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of the same length, not of shapes {xa.shape} and {ya.shape}")
    missing = np.isnan(xa) | np.isnan(ya)
    if missing.any():
        if nan_policy == "raise":
            raise ValueError(f"x or y holds NaN (at {np.flatnonzero(missing).tolist()})")
        if nan_policy == "propagate":
            return float("nan")
        xa, ya = xa[~missing], ya[~missing]
    sx, sy = _order(xa), _order(ya)
    num = float(np.sum(sx.astype(np.int64) * sy))
    den = float(np.count_nonzero(sx)) * float(np.count_nonzero(sy))
    return num / np.sqrt(den) if den > 0 else float("nan")


def _as_array(name: str, value, ndim: int, what: str) -> np.ndarray:
    """``value`` (an array or nested sequences) as a float array of ``ndim`` dimensions, or ValueError naming it."""
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be numbers shaped {what}: {exc}") from exc
    if out.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-d ({what}), not of shape {out.shape}")
    return out


# People's mean scores closer than this (times the largest |score|) count as tied: they are means
# of fractions such as k / (K - 1), which floating point splits by a rounding error where people
# are in fact tied (1/3 + 1 + 2/3 + ... is not always 1 + 1/3 + 1/3 + ... to the last bit).
_TIE = 1e-9


def within_item_tau(
    scores,
    rated,
    proxy,
    prompts: Sequence[Hashable],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    nan_policy: str = "propagate",
) -> tuple[float, float, float, np.ndarray]:
    """Mean over items of Kendall's tau-b between a proxy and people's scores of an item's K images.

    ``scores``: participants x items x K, each participant's score of each image (e.g. the
    share of the item's other images they ranked it above; finite); ``rated``: participants x
    items of 0/1, whether they ranked the item; ``proxy``: items x K (NaN where the proxy is
    missing); ``prompts``: items, the prompt of each item. Arrays or nested sequences. People's
    score of an image is the mean over the item's raters (means closer than 1e-9 times the largest
    score tie: rounding must not split a real tie). Items
    whose tau is undefined (no rater, a constant proxy or constant scores) are left out.

    NaN in ``proxy`` follows ``nan_policy``, the same rule in the estimate and in every
    resample: ``"propagate"`` (default) leaves an item with a NaN out, like an undefined tau;
    ``"omit"`` drops the item's images whose proxy is NaN and computes its tau on the rest
    (scipy's ``nan_policy="omit"``; undefined below 2 images); ``"raise"`` raises.

    Returns ``(tau, low, high, defined)``, ``defined`` the items whose tau counted; the interval
    is a percentile bootstrap that resamples participants *and* prompts (the items of a prompt
    travel together), so it carries both the raters' noise and the prompts' variety. A resample
    averages the items defined in it, each weighted by how often its prompt was drawn.
    """
    _check_nan_policy(nan_policy)
    scores = _as_array("scores", scores, 3, "participants x items x images")
    rated = _as_array("rated", rated, 2, "participants x items")
    proxy = _as_array("proxy", proxy, 2, "items x images")
    participants, items, k = scores.shape
    if rated.shape != (participants, items):
        raise ValueError(f"`rated` must be participants x items {(participants, items)} like `scores`, "
                         f"not {rated.shape}")
    if proxy.shape != (items, k):
        raise ValueError(f"`proxy` must be items x images {(items, k)} like `scores`, not {proxy.shape}")
    prompts = list(prompts)
    if len(prompts) != items:
        raise ValueError(f"`prompts` must name the prompt of each of the {items} items, not {len(prompts)}")
    if not np.isin(rated, (0, 1)).all():
        raise ValueError("`rated` must hold 0 or 1 (whether the participant ranked the item)")
    if not np.isfinite(scores).all():
        raise ValueError("`scores` must be finite (a score for every image, 0 where the item was not rated)")
    if np.isinf(proxy).any():
        raise ValueError("`proxy` must not be infinite (NaN marks a missing value)")
    if n_boot < 1:
        raise ValueError(f"`n_boot` must be at least 1, not {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), not {confidence}")
    valid = ~np.isnan(proxy)  # items x K
    if nan_policy == "raise" and not valid.all():
        raise ValueError(f"`proxy` holds NaN in item(s) {np.flatnonzero(~valid.all(axis=1)).tolist()}")
    if nan_policy == "propagate":
        valid = valid & valid.all(axis=1, keepdims=True)  # an item with a NaN keeps no image
    pair = valid[:, :, None] & valid[:, None, :]  # items x K x K: the pairs that count
    proxy_sign = np.where(pair, _order(np.where(valid, proxy, 0.0)), 0)
    proxy_untied = np.count_nonzero(proxy_sign, axis=(1, 2))
    groups = {g: i for i, g in enumerate(dict.fromkeys(prompts))}
    group_of = np.array([groups[g] for g in prompts], dtype=int)
    weighted = scores * rated[:, :, None]
    tie = _TIE * max(float(np.abs(scores).max(initial=0.0)), np.finfo(float).tiny)

    def taus(weights: np.ndarray) -> np.ndarray:
        """weights: draws x participants -> draws x items (nan where undefined)."""
        totals = weights @ rated  # draws x items
        human = np.einsum("dp,pik->dik", weights, weighted) / np.maximum(totals, 1)[:, :, None]
        diff = human[:, :, :, None] - human[:, :, None, :]
        human_sign = np.where(pair[None], np.sign(diff) * (np.abs(diff) > tie), 0)
        num = (proxy_sign[None] * human_sign).sum(axis=(2, 3))
        den = proxy_untied[None] * np.count_nonzero(human_sign, axis=(2, 3))
        return np.where((den > 0) & (totals > 0), num / np.sqrt(np.maximum(den, 1)), np.nan)

    point = taus(np.ones((1, participants)))[0]  # every participant once: the same rule as the resamples
    defined = ~np.isnan(point)
    if not defined.any():
        return float("nan"), float("nan"), float("nan"), defined
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for start in range(0, n_boot, 100):  # blocks bound the memory: 100 x items x K x K signs
        count = min(100, n_boot - start)
        people = np.stack([np.bincount(rng.integers(0, participants, participants), minlength=participants)
                           for _ in range(count)])
        picked = np.stack([np.bincount(rng.integers(0, len(groups), len(groups)), minlength=len(groups))
                           for _ in range(count)])[:, group_of]  # draws x items: how often each item's prompt
        values = taus(people.astype(float))
        weight = np.where(np.isnan(values), 0, picked)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[start:start + count] = np.nansum(values * weight, axis=1) / weight.sum(axis=1)
    low, high = _interval(draws, confidence)
    return float(np.mean(point[defined])), float(low), float(high), defined
