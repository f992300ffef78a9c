"""Paired benchmark statistics: corrections, pairing, the difference, the interval and the p-value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.stats import (
    INTERVAL_METHOD,
    Comparison,
    _bootstrap,
    _intervals,
    adjust,
    benjamini_hochberg,
    compare,
    holm,
    paired_differences,
    to_rows,
)

P = [0.01, 0.04, 0.03, 0.005]


# --- multiple-comparison corrections -------------------------------------------------------


def test_holm_hand_worked():
    # Sorted: 0.005, 0.01, 0.03, 0.04 (m = 4) -> times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum -> 0.02, 0.03, 0.06, 0.06; back in input order -> [0.03, 0.06, 0.06, 0.02].
    np.testing.assert_allclose(holm(P), [0.03, 0.06, 0.06, 0.02])


def test_bh_hand_worked():
    # Sorted: 0.005, 0.01, 0.03, 0.04 -> times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04;
    # running minimum from the largest down changes nothing; back in input order -> [0.02, 0.04, 0.04, 0.02].
    np.testing.assert_allclose(benjamini_hochberg(P), [0.02, 0.04, 0.04, 0.02])


def test_bh_step_up_minimum():
    # Sorted 0.01, 0.02, 0.021 (m = 3) -> 0.03, 0.03, 0.021; running minimum from the top -> 0.021 for all.
    np.testing.assert_allclose(benjamini_hochberg([0.021, 0.01, 0.02]), [0.021, 0.021, 0.021])


@pytest.mark.parametrize("fn", [holm, benjamini_hochberg])
def test_corrections_monotone_clipped_nan(fn):
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 50) ** 3
    adj = fn(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)  # ordering of the raw p-values is kept
    assert np.all(adj >= p) and np.all(adj <= 1)
    # Holm: 3 * 0.5 = 1.5 -> clipped to 1, then the running maximum keeps 1. BH's largest factor is
    # m / m = 1, so with valid p-values it never exceeds 1; the clip there is only a guard.
    np.testing.assert_allclose(holm([0.5, 0.9, 0.7]), [1.0, 1.0, 1.0])
    # NaN stays NaN and is left out of the family size (m = 4 here, as in the hand-worked case).
    with_nan = fn([0.01, np.nan, 0.04, 0.03, 0.005])
    assert math.isnan(with_nan[1])
    np.testing.assert_allclose(np.delete(with_nan, 1), fn(P))
    assert fn([]).shape == (0,)


@pytest.mark.parametrize("seed", range(5))
def test_against_statsmodels(seed):
    multitest = pytest.importorskip("statsmodels.stats.multitest", reason="statsmodels (the test extra) not installed")
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 40))
    # Small p-values, exact ties and exact 0 and 1 included.
    p = np.concatenate([rng.uniform(0, 0.2, m) ** 2, [0.01, 0.01, 0.0, 1.0]])
    rng.shuffle(p)
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1])
    np.testing.assert_allclose(benjamini_hochberg(p), multitest.multipletests(p, method="fdr_bh")[1])


@pytest.mark.parametrize("fn", [holm, benjamini_hochberg])
@pytest.mark.parametrize("bad", [1.5, -0.2, math.inf, -math.inf])
def test_corrections_refuse_p_outside_unit_interval(fn, bad):
    with pytest.raises(ValueError, match=r"^p must hold p-values in \[0, 1\]"):
        fn([bad, 0.01, 0.2])
    # NaN is the one non-p-value allowed: "no test", kept NaN and left out of the family.
    out = fn([np.nan, 0.01, 0.2])
    assert math.isnan(out[0]) and np.all((out[1:] >= 0) & (out[1:] <= 1))


def test_bh_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "false_discovery_control"):  # scipy < 1.11
        pytest.skip("scipy.stats.false_discovery_control not available")
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, 30)
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))


def _cmp(p: float, metric: str = "m") -> Comparison:
    nan = float("nan")
    return Comparison(metric, "ft", "base", 5, 10, nan, nan, nan, nan, nan, 0.95, nan, p)


def test_adjust_returns_new_objects_and_skips_nan():
    table = [_cmp(0.01), _cmp(0.04), _cmp(float("nan")), _cmp(0.03), _cmp(0.005)]
    holm_adj = adjust(table, "holm")
    assert all(c.p_adjusted is None for c in table)  # inputs untouched
    got = [c.p_adjusted for c in holm_adj]
    assert math.isnan(got[2])
    np.testing.assert_allclose([g for i, g in enumerate(got) if i != 2], [0.03, 0.06, 0.06, 0.02])
    bh = [c.p_adjusted for c in adjust(table, "bh")]
    np.testing.assert_allclose([g for i, g in enumerate(bh) if i != 2], [0.02, 0.04, 0.04, 0.02])
    with pytest.raises(ValueError):
        adjust(table, "bonferroni")


# --- pairing ---------------------------------------------------------------------------------


def test_pairing_regardless_of_order_and_nan_dropped():
    prompts = ["a", "a", "b", "b", "b", "c"]
    seeds = [1, 0, 0, 2, 1, 0]
    base = [1.0, 2.0, 3.0, 4.0, np.nan, np.nan]
    model = [1.5, 2.0, 5.0, 3.0, 9.0, 1.0]
    d = paired_differences(prompts, seeds, base, model)
    assert list(d) == ["a", "b"]  # c lost its only pair to a NaN
    np.testing.assert_allclose(d["a"], [0.0, 0.5])  # ordered by seed: seed 0, seed 1
    np.testing.assert_allclose(d["b"], [2.0, -1.0])  # seed 1 of b dropped (NaN base)
    perm = [5, 3, 0, 4, 2, 1]
    shuffled = paired_differences(*([x[i] for i in perm] for x in (prompts, seeds, base, model)))
    assert list(shuffled) == list(d)
    for k in d:
        np.testing.assert_array_equal(shuffled[k], d[k])


def test_non_finite_values_dropped_like_nan():
    # +-inf is unusable like NaN: the pair is dropped and n_pairs counts only the pairs kept.
    d = paired_differences(["a", "a", "b", "c"], [0, 1, 0, 0], [0.0, np.inf, 1.0, 2.0], [1.0, 2.0, -np.inf, 3.0])
    assert list(d) == ["a", "c"]
    np.testing.assert_allclose(d["a"], [1.0])
    c = compare("m", "ft", "base", ["a", "b", "c", "d", "e"], None, [0] * 5, [np.inf, 1, 2, 3, 4])
    assert (c.n_prompts, c.n_pairs) == (4, 4)
    assert c.difference == pytest.approx(2.5)
    assert c.p_value == 2 / 16  # exact over the 4 prompts kept: never below the floor 2**-n
    assert math.isfinite(c.ci_low) and math.isfinite(c.ci_high)


def test_mixed_seed_types_are_ordered_not_an_error():
    prompts, seeds = ["a", "a", "a", "b"], [2, "1", 0, "x"]
    d = paired_differences(prompts, seeds, [0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.5, 3.0])
    # Ordered by (type name, value): int 0, int 2, then str "1".
    np.testing.assert_allclose(d["a"], [0.5, 2.0, 1.0])
    perm = [3, 1, 0, 2]
    again = paired_differences([prompts[i] for i in perm], [seeds[i] for i in perm], [0.0] * 4,
                               [[2.0, 1.0, 0.5, 3.0][i] for i in perm])
    np.testing.assert_array_equal(again["a"], d["a"])
    a = compare("m", "ft", "base", prompts, seeds, [0.0] * 4, [2.0, 1.0, 0.5, 3.0], n_boot=100)
    assert (a.n_prompts, a.n_pairs) == (2, 4)


def test_unorderable_seeds_refused_naming_the_argument():
    with pytest.raises(ValueError, match="^seeds cannot be ordered"):
        paired_differences(["a", "a"], [(0,), (None,)], [0.0, 0.0], [1.0, 1.0])


def test_pairing_rejects_duplicates_and_length_mismatch():
    with pytest.raises(ValueError, match="duplicated"):
        paired_differences(["a", "a"], [0, 0], [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="duplicated"):  # even when one of them would be dropped as NaN
        paired_differences(["a", "a"], [0, 0], [1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="length"):
        paired_differences(["a", "b"], [0, 0], [1.0, 2.0], [1.0])


def test_per_prompt_metric_seeds_none():
    d = paired_differences(["x", "y"], None, [1.0, 2.0], [2.0, 2.5])
    np.testing.assert_allclose([d["x"][0], d["y"][0]], [1.0, 0.5])
    with pytest.raises(ValueError, match="duplicated"):
        paired_differences(["x", "x"], None, [1.0, 2.0], [2.0, 2.5])


# --- compare ---------------------------------------------------------------------------------


def test_difference_weights_prompts_equally():
    # Prompt a: 3 seeds, differences 1, 2, 3 -> mean 2.  Prompt b: 1 seed, difference -4 -> mean -4.
    # Per prompt: (2 + -4) / 2 = -1 (pooled over pairs it would be 2/4 = 0.5).
    prompts = ["a", "a", "a", "b"]
    seeds = [0, 1, 2, 0]
    base = [10.0, 10.0, 10.0, 20.0]
    model = [11.0, 12.0, 13.0, 16.0]
    c = compare("clip", "ft", "base", prompts, seeds, base, model, n_boot=200)
    assert c.difference == pytest.approx(-1.0)
    assert c.base_mean == pytest.approx(15.0)  # (10 + 20) / 2
    assert c.model_mean == pytest.approx(14.0)  # (12 + 16) / 2
    assert c.model_mean - c.base_mean == pytest.approx(c.difference)
    assert (c.n_prompts, c.n_pairs) == (2, 4)
    assert c.win_rate == 0.5


def test_win_rate_with_ties():
    # Per-prompt mean differences: a +1, b 0, c 0, d (+1 and -1 over two seeds) exactly 0, e -2.
    prompts = ["a", "b", "c", "d", "d", "e"]
    seeds = [0, 0, 0, 0, 1, 0]
    base = [0.0, 1.0, 2.0, 0.0, 0.0, 5.0]
    model = [1.0, 1.0, 2.0, 1.0, -1.0, 3.0]
    c = compare("m", "ft", "base", prompts, seeds, base, model, n_boot=100)
    # a: +1 win, b: tie, c: tie, d: tie, e: -2 loss -> (1 + 0.5 * 3) / 5.
    assert c.win_rate == pytest.approx(2.5 / 5)


def test_exact_p_value_three_prompts():
    # Mean differences 1, 2, 3: of the 8 sign patterns only (+,+,+) and (-,-,-) reach |sum| = 6 -> p = 2/8.
    c = compare("m", "ft", "base", ["a", "b", "c"], [0, 0, 0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0], n_boot=500)
    assert c.p_value == 0.25
    # Exact enumeration does not depend on the random seed.
    assert compare("m", "ft", "base", ["a", "b", "c"], None, [0, 0, 0], [1, 2, 3], seed=7).p_value == 0.25
    # Mean differences 1, -1, 3 (observed |sum| 3): the 8 signed sums are {1-1+3, 1+1+3, -1-1+3, -1+1+3} =
    # {3, 5, 1, 3} and their negatives; |sum| >= 3 for 6 of 8 -> p = 0.75.
    c = compare("m", "ft", "base", ["a", "b", "c"], None, [0.0, 0.0, 0.0], [1.0, -1.0, 3.0])
    assert c.p_value == 0.75
    # All differences zero: every pattern ties the observed 0 -> p = 1.
    assert compare("m", "ft", "base", ["a", "b"], None, [1.0, 2.0], [1.0, 2.0]).p_value == 1.0


@pytest.mark.parametrize("n", [2, 5, 9, 12])
def test_sign_flip_p_against_scipy_exact(n):
    # scipy's paired permutation test of one sample flips signs; with n_resamples=inf it enumerates all 2**n
    # patterns, and its two-sided p (twice the smaller tail) equals P(|sum| >= |observed|) for this symmetric null.
    stats = pytest.importorskip("scipy.stats", reason="scipy (the models extra) not installed")
    rng = np.random.default_rng(n)
    d = np.round(rng.normal(0.3, 1, n), 3)  # rounded: ties between patterns happen and must count alike
    c = compare("m", "ft", "base", [f"p{i}" for i in range(n)], None, np.zeros(n), d, n_boot=50)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", alternative="two-sided",
                                 n_resamples=np.inf)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_fewer_than_two_prompts_gives_nan_not_error():
    one = compare("m", "ft", "base", ["a", "a"], [0, 1], [1.0, 2.0], [2.0, 4.0])
    assert (one.n_prompts, one.n_pairs) == (1, 2)
    assert one.difference == pytest.approx(1.5) and one.win_rate == 1.0
    assert math.isnan(one.ci_low) and math.isnan(one.ci_high) and math.isnan(one.p_value)
    none = compare("m", "ft", "base", ["a"], [0], [np.nan], [1.0])
    assert (none.n_prompts, none.n_pairs) == (0, 0)
    assert all(math.isnan(x) for x in (none.difference, none.base_mean, none.win_rate, none.p_value))
    empty = compare("m", "ft", "base", [], [], [], [])
    assert empty.n_prompts == 0 and math.isnan(empty.ci_low)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        compare("m", "ft", "base", ["a", "b"], None, [0.0, 1.0], [1.0, 2.0], n_boot=0)
    with pytest.raises(ValueError):
        compare("m", "ft", "base", ["a", "b"], None, [0.0, 1.0], [1.0, 2.0], confidence=1.0)


def _dataset(rng, n_prompts, n_seeds, delta, prompt_sd=0.5, noise_sd=1.0):
    """Base and model values for n_prompts x n_seeds pairs with true mean difference delta."""
    prompt_level = rng.normal(0, 2.0, n_prompts)[:, None]  # shared by both models: cancels in the pair
    effect = delta + rng.normal(0, prompt_sd, n_prompts)[:, None]  # prompt-level random effect of fine-tuning
    base = prompt_level + rng.normal(0, noise_sd, (n_prompts, n_seeds))
    model = prompt_level + effect + rng.normal(0, noise_sd, (n_prompts, n_seeds))
    prompts = np.repeat([f"p{i:03d}" for i in range(n_prompts)], n_seeds)
    seeds = np.tile(np.arange(n_seeds), n_prompts)
    return list(prompts), list(seeds), base.ravel(), model.ravel()


def test_planted_effect_detected():
    rng = np.random.default_rng(3)
    c = compare("m", "ft", "base", *_dataset(rng, 30, 4, delta=2.0), n_boot=2000, higher_is_better=True)
    assert c.ci_low > 0 and c.ci_low < c.difference < c.ci_high
    assert c.p_value < 0.01
    assert c.p_value >= 1 / 2001  # the +1 correction: a Monte Carlo p-value is never 0
    assert c.win_rate > 0.9 and c.higher_is_better is True


def test_null_ci_contains_zero_and_p_not_too_small():
    rng = np.random.default_rng(4)
    runs = [compare("m", "ft", "base", *_dataset(rng, 25, 3, delta=0.0), n_boot=1000, seed=i) for i in range(60)]
    contains = np.mean([c.ci_low <= 0 <= c.ci_high for c in runs])
    rejects = np.mean([c.p_value < 0.05 for c in runs])
    assert contains >= 0.85
    assert rejects <= 0.15


def test_cluster_bootstrap_resamples_prompts():
    # Repeating each prompt's single pair over 5 seeds adds no information: with a cluster bootstrap the
    # interval and p-value are identical; a pair-level bootstrap would shrink the interval by about sqrt(5).
    rng = np.random.default_rng(5)
    n = 20
    names = [f"p{i}" for i in range(n)]
    base, model = rng.normal(0, 1, n), rng.normal(0.3, 1, n)
    single = compare("m", "ft", "base", names, None, base, model, n_boot=3000)
    rep = compare("m", "ft", "base", list(np.repeat(names, 5)), list(np.tile(range(5), n)),
                  np.repeat(base, 5), np.repeat(model, 5), n_boot=3000)
    assert (rep.n_prompts, rep.n_pairs) == (20, 100)
    assert rep.ci_low == pytest.approx(single.ci_low) and rep.ci_high == pytest.approx(single.ci_high)
    assert rep.p_value == single.p_value


def test_reproducible_and_order_invariant():
    rng = np.random.default_rng(6)
    prompts, seeds, base, model = _dataset(rng, 40, 3, delta=0.3)
    a = compare("m", "ft", "base", prompts, seeds, base, model, n_boot=1000, seed=11)
    perm = rng.permutation(len(prompts))
    b = compare("m", "ft", "base", [prompts[i] for i in perm], [seeds[i] for i in perm], base[perm], model[perm],
                n_boot=1000, seed=11)
    assert (a.ci_low, a.ci_high, a.p_value) == (b.ci_low, b.ci_high, b.p_value)
    assert a.difference == pytest.approx(b.difference)
    c = compare("m", "ft", "base", prompts, seeds, base, model, n_boot=1000, seed=12)
    assert (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high)


def test_coverage_on_synthetic_data():
    # 200 datasets of 40 prompts x 4 seeds with a known true mean difference, end to end through compare(); the
    # 95% interval should cover it close to 95% of the time (a loose bound: 200 datasets give a standard error of
    # 1.5 points; bench/interval_coverage.py measures coverage precisely).
    rng = np.random.default_rng(2024)
    delta = 0.4
    covered = []
    for i in range(200):
        c = compare("m", "ft", "base", *_dataset(rng, 40, 4, delta=delta), n_boot=2000, seed=i)
        covered.append(c.ci_low <= delta <= c.ci_high)
    coverage = float(np.mean(covered))
    assert 0.88 <= coverage <= 0.99, coverage


def test_to_rows_columns():
    rows = to_rows(adjust([_cmp(0.02), _cmp(0.5)], "bh"))
    assert list(rows[0]) == [
        "metric", "model", "baseline", "n_prompts", "n_pairs", "base_mean", "model_mean", "difference",
        "ci_low", "ci_high", "confidence", "win_rate", "p_value", "p_adjusted", "higher_is_better",
        "interval_method", "pairing",
    ]
    assert rows[0]["interval_method"] == INTERVAL_METHOD and rows[0]["pairing"] == "paired"
    assert rows[0]["p_adjusted"] == pytest.approx(0.04) and rows[1]["p_adjusted"] == pytest.approx(0.5)


# --- the interval method (chosen by bench/interval_coverage.py) --------------------------------


def _boot_draws(d: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """The resampled prompt indices compare() draws: one block of (n_boot, n) from the first spawned stream."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    return rng.integers(0, len(d), size=(n_boot, len(d)))


def _skewed_dataset():
    rng = np.random.default_rng(8)
    n = 23
    names = [f"p{i:02d}" for i in range(n)]
    base = rng.normal(0, 1, n)
    return names, base, base + np.exp(rng.normal(0, 1, n)) - 1.5


def test_interval_is_symmetric_bootstrap_t_independent_computation():
    # The method the coverage bench chose. Computed here from its definition, one resample at a time:
    # t* = (mean* - mean) / (sd* / sqrt(n)) over resampled per-prompt means, q = 95% quantile of |t*|,
    # interval = mean -+ q * sd / sqrt(n).
    assert INTERVAL_METHOD == "studentized-symmetric"
    names, base, model = _skewed_dataset()
    c = compare("m", "ft", "base", names, None, base, model, n_boot=999, seed=4)
    assert c.interval_method == "studentized-symmetric"
    d = model - base
    n = len(d)
    se = d.std(ddof=1) / math.sqrt(n)
    t_abs = [abs(d[i].mean() - d.mean()) / (d[i].std(ddof=1) / math.sqrt(n)) for i in _boot_draws(d, 999, 4)]
    q = np.quantile(t_abs, 0.95)
    assert c.ci_low == pytest.approx(d.mean() - q * se, rel=1e-12, abs=1e-12)
    assert c.ci_high == pytest.approx(d.mean() + q * se, rel=1e-12, abs=1e-12)


def test_cluster_interval_on_per_prompt_means():
    # Two prompts with 3 seeds and one with 1: the interval is the same as on the three per-prompt means.
    prompts, seeds = ["a", "a", "a", "b", "c", "c", "c", "d"], [0, 1, 2, 0, 0, 1, 2, 0]
    model = [1.0, 2.0, 6.0, -1.0, 0.5, 0.5, 2.0, 4.0]
    full = compare("m", "ft", "base", prompts, seeds, [0.0] * 8, model, n_boot=500, seed=2)
    means = compare("m", "ft", "base", ["a", "b", "c", "d"], None, [0.0] * 4, [3.0, -1.0, 1.0, 4.0], n_boot=500,
                    seed=2)
    assert (full.ci_low, full.ci_high) == pytest.approx((means.ci_low, means.ci_high), rel=1e-12)


def test_bca_matches_scipy_on_the_same_resamples():
    # The BCa candidate of the coverage bench against scipy.stats.bootstrap(method="BCa") fed the same draws.
    stats = pytest.importorskip("scipy.stats", reason="scipy (the models extra) not installed")
    names, base, model = _skewed_dataset()
    d = model - base
    means, sds = _bootstrap(d[None, :], 1500, np.random.default_rng(np.random.SeedSequence(4).spawn(2)[0]))
    low, high = _intervals(d[None, :], "bca", 0.9, means, sds)
    ref = stats.bootstrap((d,), np.mean, method="BCa", n_resamples=1500, confidence_level=0.9,
                          rng=np.random.default_rng(np.random.SeedSequence(4).spawn(2)[0]))
    assert (low[0], high[0]) == pytest.approx(tuple(ref.confidence_interval), rel=1e-10)


def test_bca_independent_computation():
    # Efron and Tibshirani (1993) 14.3 written out: z0 from the share of bootstrap means below the estimate
    # (ties half), acceleration from the leave-one-prompt-out means, ends at the adjusted percentiles.
    from statistics import NormalDist

    nd = NormalDist()
    names, base, model = _skewed_dataset()
    d = model - base
    boot = np.array([d[i].mean() for i in _boot_draws(d, 800, 6)])
    means, _ = _bootstrap(d[None, :], 800, np.random.default_rng(np.random.SeedSequence(6).spawn(2)[0]))
    np.testing.assert_allclose(means[0], boot, rtol=1e-12)
    z0 = nd.inv_cdf((np.sum(boot < d.mean()) + np.sum(boot <= d.mean())) / (2 * len(boot)))
    jack = np.array([np.delete(d, i).mean() for i in range(len(d))])
    u = jack.mean() - jack
    a = np.sum(u**3) / (6 * np.sum(u**2) ** 1.5)
    ends = [np.quantile(boot, nd.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
            for z in (nd.inv_cdf(0.025), nd.inv_cdf(0.975))]
    low, high = _intervals(d[None, :], "bca", 0.95, means, None)
    assert (low[0], high[0]) == pytest.approx(tuple(ends), rel=1e-12)


def test_coverage_smoke_deterministic():
    # Not a precision check (bench/interval_coverage.py is): a fixed set of 100 normal datasets of 20 prompts,
    # all methods from the same draws. Guards against a method that is badly off or no longer deterministic.
    rng = np.random.default_rng(11)
    d = 0.4 + rng.normal(0, 0.7, (100, 20))
    means, sds = _bootstrap(d, 400, rng)
    covered = {}
    for method in ("percentile", "bca", "studentized", "studentized-symmetric"):
        low, high = _intervals(d, method, 0.95, means, sds)
        covered[method] = int(np.count_nonzero((low <= 0.4) & (high >= 0.4)))
        assert np.all(low < d.mean(axis=1)) and np.all(d.mean(axis=1) < high)
    assert 88 <= covered[INTERVAL_METHOD] <= 100, covered
    assert covered == {"percentile": 92, "bca": 94, "studentized": 94, "studentized-symmetric": 96}, covered


def test_interval_with_degenerate_resamples_is_nan_not_infinite():
    # Two prompts: half the resamples draw one prompt twice (sd* = 0, t* infinite), so no finite bootstrap-t
    # interval exists; it is NaN like the interval of a single prompt, and the p-value is still computed.
    c = compare("m", "ft", "base", ["a", "b"], None, [0.0, 0.0], [1.0, 3.0], n_boot=200)
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)
    assert c.p_value == 0.5
    # Every prompt with the same mean difference: the interval is that value.
    same = compare("m", "ft", "base", ["a", "b", "c"], None, [0.0] * 3, [2.0] * 3, n_boot=200)
    assert (same.ci_low, same.ci_high) == (2.0, 2.0)
