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
    theta = bradley_terry(pairs)
    assert theta["c"] == -math.inf
    assert theta["a"] == pytest.approx(0) and theta["b"] == pytest.approx(0)
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
    people = (scores * rated[:, :, None]).sum(0) / rated.sum(0)[:, None]
    naive = [kendalltau(proxy[i], people[i]).statistic for i in range(items) if i != 5]
    assert tau == pytest.approx(np.mean(naive)) and not defined[5] and defined.sum() == items - 1
    assert low <= tau <= high


def test_within_item_tau_is_exact_when_everybody_agrees_with_the_proxy():
    scores = np.tile(np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5]]), (5, 1, 1))  # 5 people, 2 items, 3 images
    proxy = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    tau, low, high, _ = within_item_tau(scores, np.ones((5, 2)), proxy, ["a", "b"], n_boot=200)
    assert (tau, low, high) == (1.0, 1.0, 1.0)
    reverse = within_item_tau(scores, np.ones((5, 2)), -proxy, ["a", "b"], n_boot=200)
    assert reverse[:3] == (-1.0, -1.0, -1.0)
