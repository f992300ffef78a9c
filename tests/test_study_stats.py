"""Ranking-study statistics: Bradley-Terry, bootstrap, win rates, Kendall's W and tau-b."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.study.stats import (
    bradley_terry,
    bt_bootstrap_draws,
    kendall_tau_b,
    kendalls_w,
    mean_kendall_w,
    percentile_interval,
    rankings_to_pairs,
    win_counts,
    within_item_tau,
)


def _newton_bt(wins: np.ndarray) -> np.ndarray:
    """Independent BT MLE: Newton on the log-likelihood with the last theta fixed at 0."""
    k = len(wins)
    n = wins + wins.T
    theta = np.zeros(k)
    for _ in range(100):
        s = 1 / (1 + np.exp(-(theta[:, None] - theta[None, :])))  # P(i beats j)
        grad = wins.sum(axis=1) - (n * s).sum(axis=1)
        h = n * s * (1 - s)
        hess = h - np.diag(h.sum(axis=1))
        step = np.linalg.solve(hess[:-1, :-1], grad[:-1])
        theta[:-1] -= step
        if np.max(np.abs(step)) < 1e-14:
            break
    return theta - theta.mean()


def _plackett_luce(rng: np.random.Generator, models: list[str], p: np.ndarray) -> list[str]:
    """Sample a ranking: pick the best with probability proportional to p, then repeat."""
    left = list(range(len(models)))
    out = []
    while left:
        w = p[left] / p[left].sum()
        k = rng.choice(len(left), p=w)
        out.append(models[left.pop(k)])
    return out


def test_rankings_to_pairs_counts():
    pairs = rankings_to_pairs([["a", "b", "c", "d"], ["d", "c", "b", "a"], ["x", "y"]])
    assert len(pairs) == 6 + 6 + 1
    assert pairs[:3] == [("a", "b"), ("a", "c"), ("a", "d")]
    assert ("y", "x") not in pairs and ("x", "y") in pairs
    with pytest.raises(ValueError):
        rankings_to_pairs([["a", "a"]])


def test_win_counts():
    pairs = [("a", "b")] * 3 + [("b", "a")] + [("a", "c")] * 2 + [("c", "b")]
    assert win_counts(pairs) == {("a", "b"): 3, ("b", "a"): 1, ("a", "c"): 2, ("c", "b"): 1}


def test_bt_two_models_exact():
    theta = bradley_terry([("A", "B")] * 3 + [("B", "A")])
    assert theta["A"] - theta["B"] == pytest.approx(math.log(3), abs=1e-12)
    assert theta["A"] + theta["B"] == pytest.approx(0, abs=1e-12)


def test_bt_three_models_matches_newton():
    models = ["a", "b", "c"]
    wins = np.array([[0, 7, 4], [3, 0, 5], [2, 6, 0]], dtype=float)
    pairs = [(models[i], models[j]) for i in range(3) for j in range(3) for _ in range(int(wins[i, j]))]
    theta = bradley_terry(pairs, models)
    ref = _newton_bt(wins)
    assert [theta[m] for m in models] == pytest.approx(list(ref), abs=1e-6)
    try:
        from scipy.optimize import minimize
    except ImportError:
        return

    def nll(t):
        d = t[:, None] - t[None, :]
        return float(np.sum(wins * np.log1p(np.exp(-d))))

    res = minimize(lambda t: nll(np.append(t, 0.0)), np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    t = np.append(res.x, 0.0)
    assert [theta[m] for m in models] == pytest.approx(list(t - t.mean()), abs=1e-5)


def test_bt_never_wins_and_prior():
    pairs = [("a", "b"), ("b", "a"), ("a", "c"), ("b", "c")]
    # c never won: its MLE is p = 0, the others' is undefined relative to it; prior 0 refuses.
    with pytest.raises(ValueError, match=r"never won: \['c'\]"):
        bradley_terry(pairs)
    smoothed = bradley_terry(pairs, prior=0.5)
    assert all(math.isfinite(v) for v in smoothed.values())
    assert smoothed["c"] < smoothed["a"] == pytest.approx(smoothed["b"])
    # The prior adds pseudo-wins each way: 0.5 each way on A vs B with 3-1 gives 3.5/1.5.
    two = bradley_terry([("A", "B")] * 3 + [("B", "A")], prior=0.5)
    assert two["A"] - two["B"] == pytest.approx(math.log(3.5 / 1.5))
    with pytest.raises(ValueError):
        bradley_terry(pairs, ["a", "b", "c", "d"])
    with pytest.raises(ValueError):
        bradley_terry(pairs, ["a", "b"])


def test_bt_planted_truth_bootstrap():
    rng = np.random.default_rng(1234)
    models = ["base", "M", "MP", "MPC"]
    true = np.array([-0.6, -0.1, 0.2, 0.5])
    true -= true.mean()
    p = np.exp(true)
    data = {f"p{k}": [_plackett_luce(rng, models, p) for _ in range(30)] for k in range(40)}
    names, estimate, draws = bt_bootstrap_draws(data, n_boot=300, seed=0)
    low, high = percentile_interval(draws)
    out = {m: (estimate[i], low[i], high[i]) for i, m in enumerate(names)}
    assert estimate == pytest.approx([bradley_terry(
        [pair for rankings in data.values() for pair in rankings_to_pairs(rankings)], names, prior=0.5)[m]
        for m in names])
    fitted = sorted(models, key=lambda m: out[m][0])
    assert fitted == models
    for m, t in zip(models, true, strict=True):
        est, lo, hi = out[m]
        assert lo <= est <= hi
        assert lo <= t <= hi, (m, t, out[m])
    again = bt_bootstrap_draws(data, n_boot=20, seed=5)[2]
    assert np.array_equal(again, bt_bootstrap_draws(data, n_boot=20, seed=5)[2])


def test_kendalls_w():
    assert kendalls_w(np.array([[1, 2, 3, 4]] * 5)) == pytest.approx(1.0)
    assert kendalls_w(np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])) == 0.0
    # Rank sums 4, 5, 9 (mean 6): S = 4 + 1 + 9 = 14, W = 12 * 14 / (9 * 24) = 7/9.
    assert kendalls_w(np.array([[1, 2, 3], [1, 2, 3], [2, 1, 3]])) == pytest.approx(7 / 9)
    with pytest.raises(ValueError):
        kendalls_w(np.array([[1, 1, 3]]))


def test_mean_kendall_w():
    items = [
        [["a", "b", "c"], ["a", "b", "c"], ["b", "a", "c"]],  # 7/9 as above
        [["a", "b", "c"], ["c", "b", "a"]],  # 0
        [["a", "b", "c"]],  # one rater: skipped
    ]
    assert mean_kendall_w(items) == pytest.approx((7 / 9 + 0) / 2)
    assert math.isnan(mean_kendall_w([[["a", "b"]]]))


def test_kendall_tau_b_hand():
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # x=[1,2,2,3], y=[1,2,3,3]: 4 concordant, 0 discordant, 1 tie in x, 1 in y:
    # tau_b = 4 / sqrt((6 - 1) (6 - 1)) = 0.8.
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_kendall_tau_b_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.integers(0, 6, 80)
        y = x + rng.integers(0, 4, 80)
        ref = stats.kendalltau(x, y, variant="b").statistic
        assert kendall_tau_b(x, y) == pytest.approx(ref, abs=1e-12)


def test_within_item_tau_matches_a_per_item_scipy_loop():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(3)
    participants, items, k = 7, 12, 4
    scores = np.stack([[rng.permutation(k) / (k - 1) for _ in range(items)] for _ in range(participants)])
    rated = (rng.random((participants, items)) < 0.7).astype(float)
    rated[0] = 1  # every item has a rater
    proxy = rng.normal(size=(items, k))
    proxy[5] = 1.0  # a constant proxy: tau undefined, left out
    prompts = [f"p{i // 3}" for i in range(items)]
    tau, low, high, defined = within_item_tau(scores, rated, proxy, prompts, n_boot=300, seed=1)
    # People's means from whole positions: exact ties stay ties (a float sum of thirds may split them).
    positions = np.rint(scores * (k - 1))
    people = (positions * rated[:, :, None]).sum(0) / ((k - 1) * rated.sum(0)[:, None])
    naive = [kendalltau(proxy[i], people[i]).statistic for i in range(items) if i != 5]
    assert tau == pytest.approx(np.mean(naive)) and not defined[5] and defined.sum() == items - 1
    assert low <= tau <= high


def test_within_item_tau_keeps_ties_that_rounding_splits():
    # Image 0 gets 1/3 + 0 + 1 + 2/3 + 2/3 + 2/3 and image 3 gets 1 + 1/3 + 1/3 + 1 + 1/3 + 1/3:
    # both 10/3, but their float sums differ in the last bit. People tie them; the proxy does not.
    third = 1 / 3
    scores = np.array([[third, 2 * third, 0, 1], [0, 2 * third, 1, third], [1, 0, 2 * third, third],
                       [2 * third, 0, third, 1], [2 * third, 1, 0, third], [2 * third, 0, 1, third]])[:, None, :]
    people = scores.sum(axis=0)[0]
    assert people[0] != people[3]  # the rounding this guards against
    proxy = np.array([[4.0, 1.0, 2.0, 3.0]])
    tau = within_item_tau(scores, np.ones((6, 1)), proxy, ["a"], n_boot=10)[0]
    assert tau == pytest.approx(kendall_tau_b(proxy[0], [10, 7, 9, 10]))


def test_within_item_tau_is_exact_when_everybody_agrees_with_the_proxy():
    scores = np.tile(np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5]]), (5, 1, 1))  # 5 people, 2 items, 3 images
    proxy = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    tau, low, high, _ = within_item_tau(scores, np.ones((5, 2)), proxy, ["a", "b"], n_boot=200)
    assert (tau, low, high) == (1.0, 1.0, 1.0)
    reverse = within_item_tau(scores, np.ones((5, 2)), -proxy, ["a", "b"], n_boot=200)
    assert reverse[:3] == (-1.0, -1.0, -1.0)


# --------------------------------------------------------------------------- prior 0


def _pairs(wins: np.ndarray, models: list[str]) -> list[tuple[str, str]]:
    return [(models[i], models[j]) for i in range(len(models)) for j in range(len(models))
            for _ in range(int(wins[i, j]))]


def test_bt_prior_zero_refuses_when_no_finite_mle_exists():
    # A never lost, B never won: the likelihood grows without bound as theta_A - theta_B grows.
    with pytest.raises(ValueError, match=r"never lost: \['A'\].*never won: \['B'\]"):
        bradley_terry([("A", "B")])
    # Connected but not strongly: A beat B and C, B beat C, nobody beat A.
    with pytest.raises(ValueError, match=r"prior > 0"):
        bradley_terry([("A", "B"), ("B", "C"), ("A", "C")])
    # Two strongly connected groups, the first never beaten by the second: no model is
    # unbeaten or winless, yet no finite MLE exists either.
    with pytest.raises(ValueError, match=r"\['a', 'b'\] > \['c', 'd'\]"):
        bradley_terry([("a", "b"), ("b", "a"), ("c", "d"), ("d", "c"), ("a", "c"), ("b", "d")])


def test_bt_prior_zero_fits_a_strongly_connected_graph():
    cycle = bradley_terry([("A", "B"), ("B", "C"), ("C", "A")])
    assert cycle == pytest.approx({"A": 0.0, "B": 0.0, "C": 0.0}, abs=1e-12)
    models = ["a", "b", "c", "d"]
    wins = np.array([[0, 5, 3, 0], [1, 0, 4, 2], [2, 1, 0, 6], [1, 0, 1, 0]], dtype=float)
    theta = bradley_terry(_pairs(wins, models), models)
    assert [theta[m] for m in models] == pytest.approx(list(_newton_bt(wins)), abs=1e-9)


def test_bt_bootstrap_refuses_prior_zero():
    with pytest.raises(ValueError, match="prior > 0"):
        bt_bootstrap_draws({"p": [["a", "b"], ["b", "a"]]}, n_boot=5, prior=0)


def test_config_refuses_prior_zero():
    from benchmark.study.bundle import check_study_settings
    from ccub.config import ConfigError, Study

    with pytest.raises(ConfigError, match=r"ccub\.toml: \[study\] settings: prior = 0.0: must be above 0"):
        check_study_settings(Study(prior=0.0), "ccub.toml")
    check_study_settings(Study(prior=0.1), "ccub.toml")


# --------------------------------------------------------------------------- convergence, choix


def _choix_theta(wins: np.ndarray, prior: float) -> np.ndarray:
    """choix's ILSR maximum likelihood on the data plus `prior` comparisons each way per pair.

    choix's own `alpha` is another prior (ilsr: a rate added to every transition of the Markov
    chain; mm: a Gamma-like prior on each strength; opt: a Gaussian prior), so ccub's pseudo-wins
    are given to choix as data with alpha = 0: scaling every count by `scale` leaves the MLE
    unchanged and makes the pseudo-wins whole comparisons.
    """
    choix = pytest.importorskip("choix", reason="choix (the `test` extra) is the peer of ccub's Bradley-Terry")
    scale = 1 if prior == 0 else round(1 / prior) if abs(1 / prior - round(1 / prior)) < 1e-12 else None
    assert scale is not None, "use a prior of 1/integer"
    counts = wins * scale + (1 - np.eye(len(wins))) * prior * scale
    data = [(i, j) for i in range(len(wins)) for j in range(len(wins)) for _ in range(int(round(counts[i, j])))]
    theta = choix.ilsr_pairwise(len(wins), data, alpha=0.0, max_iter=100_000, tol=1e-14)
    return theta - theta.mean()


@pytest.mark.parametrize("prior", [0.1, 0.5, 1.0])
def test_bt_matches_choix_on_nearly_separated_data(prior):
    models = ["a", "b", "c", "d", "e"]
    # A near total order: each model beats every lower one 60 times and loses 0 or 1 times.
    wins = np.triu(np.full((5, 5), 60.0), 1) + np.tril(np.eye(5, k=-1) * 1)
    ref = _choix_theta(wins, prior)
    theta = bradley_terry(_pairs(wins, models), models, prior=prior)
    assert [theta[m] for m in models] == pytest.approx(list(ref), abs=1e-6)


def test_bt_matches_choix_on_random_data():
    rng = np.random.default_rng(11)
    for trial in range(6):
        k = int(rng.integers(2, 7))
        models = [f"m{i}" for i in range(k)]
        wins = rng.poisson(rng.uniform(0.2, 8), (k, k)).astype(float) * (1 - np.eye(k))
        for prior in (0.5, 1.0, 0.25):
            theta = bradley_terry(_pairs(wins, models), models, prior=prior)
            ref = _choix_theta(wins, prior)
            assert [theta[m] for m in models] == pytest.approx(list(ref), abs=1e-6), (trial, prior)
        if (wins > 0).all() or k == 2 and wins[0, 1] > 0 and wins[1, 0] > 0:  # strongly connected
            theta = bradley_terry(_pairs(wins + (1 - np.eye(k)), models), models)
            ref = _choix_theta(wins + (1 - np.eye(k)), 0)
            assert [theta[m] for m in models] == pytest.approx(list(ref), abs=1e-6)


def test_bt_reports_non_convergence():
    from benchmark.study.stats import ConvergenceWarning, fit_bradley_terry

    pairs = [("a", "b")] * 50 + [("b", "a")] + [("b", "c")] * 40 + [("c", "a")]
    fit = fit_bradley_terry(pairs, prior=0.1, max_iter=1)
    assert not fit.converged and fit.iterations == 1 and fit.max_gradient > 1e-3
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        bradley_terry(pairs, prior=0.1, max_iter=1)
    done = fit_bradley_terry(pairs, prior=0.1)
    assert done.converged and done.max_gradient < 1e-8
    data = {"p1": [["a", "b", "c"]] * 5, "p2": [["b", "c", "a"]] * 3}
    with pytest.warns(ConvergenceWarning, match=r"of 20 bootstrap resamples"):
        bt_bootstrap_draws(data, n_boot=20, max_iter=1)


def test_analysis_notes_non_convergence(monkeypatch):
    from functools import partial
    from types import SimpleNamespace

    from benchmark.study import analyze, stats
    from benchmark.study.responses import Ranking

    monkeypatch.setattr(stats, "bt_bootstrap_draws", partial(stats.bt_bootstrap_draws, max_iter=1))
    rankings = [Ranking(participant=f"p{n % 3}", item=f"i{n}", question="alignment",
                        models=("base", "+M") if n % 4 else ("+M", "base")) for n in range(12)]
    notes: list[str] = []
    settings = SimpleNamespace(bootstrap=10, seed=0, prior=0.5, confidence=0.95)
    out = analyze._strengths("alignment", rankings, ["base", "+M"], "base", settings, notes)
    assert len(out) == 2 and notes and all("alignment" in n and "did not converge" in n for n in notes)


def test_bt_bootstrap_draws_match_single_fits():
    from benchmark.study.stats import _fit_many

    rng = np.random.default_rng(2)
    stack = rng.poisson(3, (30, 4, 4)).astype(float) * (1 - np.eye(4)) + 0.5 * (1 - np.eye(4))
    together = _fit_many(stack, 100, 1e-10)[0]
    for b in range(30):
        alone = bradley_terry(_pairs(stack[b] * 2 - 1 * (1 - np.eye(4)), list("abcd")), list("abcd"), prior=1.0)
        assert together[b] == pytest.approx([alone[m] for m in "abcd"], abs=1e-9)


# --------------------------------------------------------------------------- NaN, inputs


@pytest.mark.filterwarnings("ignore:After omitting NaNs")  # scipy, on inputs left with < 2 values
def test_kendall_tau_b_nan_follows_scipy():
    from scipy.stats import kendalltau

    assert math.isnan(kendall_tau_b([1, 2, np.nan, 4], [1, 2, 3, 4]))
    assert kendall_tau_b([1, 2, np.nan, 4], [1, 2, 3, 4], nan_policy="omit") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau_b([1, 2, np.nan], [1, 2, 3], nan_policy="raise")
    with pytest.raises(ValueError, match="nan_policy"):
        kendall_tau_b([1, 2], [1, 2], nan_policy="drop")
    rng = np.random.default_rng(8)
    for _ in range(40):
        n = int(rng.integers(2, 30))
        x = rng.integers(0, 5, n).astype(float)
        y = rng.integers(0, 5, n).astype(float)
        x[rng.random(n) < 0.15] = np.nan
        y[rng.random(n) < 0.15] = np.nan
        for policy in ("propagate", "omit"):
            ref = kendalltau(x, y, variant="b", nan_policy=policy).statistic
            got = kendall_tau_b(x, y, nan_policy=policy)
            assert (math.isnan(got) and math.isnan(ref)) or got == pytest.approx(ref, abs=1e-12), (x, y, policy)


def _tau_data(seed: int = 3):
    rng = np.random.default_rng(seed)
    participants, items, k = 7, 12, 4
    scores = np.stack([[rng.permutation(k) / (k - 1) for _ in range(items)] for _ in range(participants)])
    rated = (rng.random((participants, items)) < 0.7).astype(float)
    rated[0] = 1
    proxy = rng.normal(size=(items, k))
    prompts = [f"p{i // 3}" for i in range(items)]
    return scores, rated, proxy, prompts


def test_within_item_tau_nan_proxy_is_left_out_of_estimate_and_bootstrap():
    scores, rated, proxy, prompts = _tau_data()
    proxy[4, 2] = np.nan  # item 4 shares prompt p1 with items 3 and 5
    tau, low, high, defined = within_item_tau(scores, rated, proxy, prompts, n_boot=200, seed=1)
    assert not defined[4] and defined.sum() == 11
    keep = [i for i in range(12) if i != 4]
    without = within_item_tau(scores[:, keep], rated[:, keep], proxy[keep], [prompts[i] for i in keep],
                              n_boot=200, seed=1)
    assert (tau, low, high) == pytest.approx(without[:3], abs=1e-12)


def test_within_item_tau_nan_omit_matches_scipy():
    from scipy.stats import kendalltau

    scores, rated, proxy, prompts = _tau_data(5)
    proxy[4, 2] = proxy[7, 0] = np.nan
    tau, low, high, defined = within_item_tau(scores, rated, proxy, prompts, n_boot=200, seed=1, nan_policy="omit")
    people = (np.rint(scores * 3) * rated[:, :, None]).sum(0) / (3 * rated.sum(0)[:, None])
    ref = [kendalltau(proxy[i], people[i], nan_policy="omit").statistic for i in range(12)]
    assert defined.all() and tau == pytest.approx(np.mean(ref)) and low <= tau <= high
    proxy[9, :3] = np.nan  # one image left: undefined under either policy
    assert not within_item_tau(scores, rated, proxy, prompts, n_boot=50, nan_policy="omit")[3][9]


def test_within_item_tau_accepts_sequences_and_names_bad_arguments():
    scores, rated, proxy, prompts = _tau_data()
    as_arrays = within_item_tau(scores, rated, proxy, prompts, n_boot=100)
    as_lists = within_item_tau(scores.tolist(), rated.tolist(), proxy.tolist(), tuple(prompts), n_boot=100)
    assert as_lists[:3] == as_arrays[:3] and np.array_equal(as_lists[3], as_arrays[3])
    for bad, word in [((scores[0], rated, proxy, prompts), "scores"),
                      ((scores, rated[:, :5], proxy, prompts), "rated"),
                      ((scores, rated, proxy[:, :3], prompts), "proxy"),
                      ((scores, rated, proxy, prompts[:4]), "prompts"),
                      ((scores, rated * 2, proxy, prompts), "rated"),
                      ((np.where(scores > 0.5, np.nan, scores), rated, proxy, prompts), "scores")]:
        with pytest.raises(ValueError, match=word):
            within_item_tau(*bad, n_boot=10)
    with pytest.raises(ValueError, match="n_boot"):
        within_item_tau(scores, rated, proxy, prompts, n_boot=0)
    with pytest.raises(ValueError, match="nan_policy"):
        within_item_tau(scores, rated, proxy, prompts, n_boot=10, nan_policy="drop")


# --------------------------------------------------------------------------- Kendall's W peers


def _random_ranks(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    return np.stack([rng.permutation(n) + 1 for _ in range(m)]).astype(float)


def test_kendalls_w_matches_hand_computation_and_friedman():
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(4)
    for _ in range(10):
        m, n = int(rng.integers(2, 9)), int(rng.integers(3, 7))
        ranks = _random_ranks(rng, m, n)
        # By hand: rank sums, their squared deviations from m (n + 1) / 2, scaled by the maximum.
        sums = [sum(ranks[r, j] for r in range(m)) for j in range(n)]
        s = sum((v - m * (n + 1) / 2) ** 2 for v in sums)
        assert kendalls_w(ranks) == pytest.approx(12 * s / (m**2 * (n**3 - n)), abs=1e-12)
        # Friedman's chi-square without ties is m (n - 1) W.
        chi2 = friedmanchisquare(*ranks.T).statistic
        assert kendalls_w(ranks) == pytest.approx(chi2 / (m * (n - 1)), abs=1e-12)


def test_kendalls_w_matches_pingouin():
    pg = pytest.importorskip("pingouin", reason="pingouin (the test extra) is absent: its Friedman test reports "
                             "Kendall's W")
    import pandas as pd

    ranks = _random_ranks(np.random.default_rng(6), 6, 4)
    long = pd.DataFrame([{"rater": r, "object": j, "rank": ranks[r, j]} for r in range(6) for j in range(4)])
    ref = float(pg.friedman(long, dv="rank", within="object", subject="rater")["W"].iloc[0])
    assert kendalls_w(ranks) == pytest.approx(ref, abs=1e-12)


def test_analysis_notes_items_left_out_for_nan_proxies():
    from types import SimpleNamespace

    from benchmark.study import analyze
    from benchmark.study.responses import Ranking

    models = ["base", "+M", "+MP"]
    rankings = [Ranking(f"p{p}", f"i{i}", "alignment", tuple(models[(p + i + j) % 3] for j in range(3)))
                for p in range(4) for i in range(3)]
    metrics = {(f"i{i}", m): {"clip_score": float(n + i)} for i in range(3) for n, m in enumerate(models)}
    metrics[("i1", "+M")]["clip_score"] = math.nan
    notes: list[str] = []
    settings = SimpleNamespace(bootstrap=20, seed=0, confidence=0.95)
    out = analyze._correlations("alignment", rankings, metrics, {"i0": "a", "i1": "a", "i2": "b"}, models,
                                settings, notes)
    assert out[0].items == 2 and notes == [
        "alignment: clip_score is NaN for some image of 1 item(s); those items are left out of its tau and of "
        "its interval"]


def test_bt_converges_with_a_tiny_prior_on_separated_data():
    from benchmark.study.stats import fit_bradley_terry

    # The win probabilities at the optimum are ~1e-10: a sigmoid with only absolute precision
    # (1 - sigmoid(-d)) left the gradient at rounding noise and the fit stuck at max_iter.
    pairs = [("a", "b")] * 60 + [("b", "c")] * 60 + [("a", "c")] * 60 + [("c", "d")] * 5
    for prior in (1e-6, 1e-9, 1e-12):
        fit = fit_bradley_terry(pairs, prior=prior)
        assert fit.converged and fit.max_gradient < 1e-15, prior
        assert list(np.argsort(-fit.theta)) == [0, 1, 2, 3]
    assert bradley_terry([], []) == {} and bradley_terry([], ["A"]) == {"A": 0.0}
