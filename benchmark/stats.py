"""Paired statistics for the benchmark: a fine-tuned model against its base model.

Both models generate images for the same prompts with the same seeds, so every image
of the fine-tuned model has a twin from the base model: the pair is keyed by
(prompt, seed). The unit of replication is the prompt, not the image: images of one
prompt share its content and are correlated, so treating them as independent would
make intervals too narrow. Everything below therefore works on per-prompt means of
the paired differences, and every prompt weighs the same whatever its number of seeds.

Per-image metrics (e.g. CLIPScore) give one value per (prompt, seed); per-prompt
metrics (e.g. the diversity of a prompt's images) give one value per prompt: pass any
constant seed (or ``seeds=None``) and each prompt then has a single pair.

- ``difference``: mean over prompts of the per-prompt mean of (model - base).
- Confidence interval: symmetric bootstrap-t (``INTERVAL_METHOD``) resampling prompts with
  replacement (a cluster bootstrap: a resampled prompt brings all its pairs). As the
  statistic is a mean of per-prompt means, this is resampling the per-prompt means
  themselves: each resample's t* = (mean* - mean) / (sd* / sqrt(n)), and the interval is
  mean +- q * sd / sqrt(n) with q the ``confidence`` quantile of |t*|. Chosen over the
  percentile, BCa and asymmetric bootstrap-t intervals and the t-interval by measured
  coverage (bench/interval_coverage.py; the table is in docs/benchmark.md).
- p-value: two-sided sign-flip permutation test over prompts. Under the null that each
  prompt's mean difference is symmetric about zero, flipping its sign leaves the
  distribution unchanged, so the test is valid (exact when enumerated) without any
  normality assumption. The bootstrap is only used for the interval: a bootstrap
  "p-value" has no such finite-sample guarantee.
- Multiple comparisons: ``adjust`` applies Holm (family-wise error) or
  Benjamini-Hochberg (false discovery rate) across the whole table passed to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Up to this many prompts the sign-flip test enumerates all 2**n sign patterns (65,536 at 16).
EXACT_MAX_PROMPTS = 16
# Interval methods _intervals knows; INTERVAL_METHOD is the one compare() uses (chosen by
# bench/interval_coverage.py, see docs/benchmark.md).
INTERVAL_METHODS = ("percentile", "bca", "studentized", "studentized-symmetric")
INTERVAL_METHOD = "studentized-symmetric"
# The interval of compare_unpaired: a Welch-type symmetric bootstrap-t over each model's prompts.
UNPAIRED_INTERVAL_METHOD = "welch-studentized-symmetric"
# Resampling draws are generated in blocks of about this many numbers, to bound memory.
_BLOCK = 1 << 20

__all__ = [
    "Comparison",
    "EXACT_MAX_PROMPTS",
    "INTERVAL_METHOD",
    "INTERVAL_METHODS",
    "adjust",
    "benjamini_hochberg",
    "compare",
    "compare_unpaired",
    "holm",
    "paired_differences",
    "to_rows",
]


@dataclass
class Comparison:
    """One cell of the results table: one metric, one fine-tuned model against the baseline.

    ``difference``, ``win_rate`` and the interval are always model minus base in the metric's
    own units; ``higher_is_better`` is only carried through so tables can say which way is good.
    """

    metric: str
    model: str
    baseline: str
    n_prompts: int  # prompts with at least one usable pair
    n_pairs: int  # usable (prompt, seed) pairs
    base_mean: float  # mean over prompts of the per-prompt base mean (same weighting as difference)
    model_mean: float
    difference: float  # model_mean - base_mean: mean over prompts of the per-prompt mean paired difference
    ci_low: float
    ci_high: float
    confidence: float
    win_rate: float  # share of prompts whose mean paired difference is > 0; exact ties count 0.5
    p_value: float  # two-sided sign-flip permutation test over prompts
    p_adjusted: float | None = None  # filled by adjust()
    higher_is_better: bool | None = None
    # How ci_low and ci_high were computed: one of INTERVAL_METHODS (compare() uses INTERVAL_METHOD).
    interval_method: str = INTERVAL_METHOD
    # "paired": by (prompt, seed) (``compare``); "unpaired": the two models' images share no
    # (prompt, seed), each model's prompts resampled on their own (``compare_unpaired``).
    pairing: str = "paired"


def _pairs(
    prompts: Sequence[str],
    seeds: Sequence[Hashable] | None,
    base: Sequence[float],
    model: Sequence[float],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per prompt (sorted), the base and model values of its usable pairs, ordered by seed."""
    base = np.asarray(base, dtype=float).ravel()
    model = np.asarray(model, dtype=float).ravel()
    if seeds is None:
        seeds = [0] * len(prompts)
    lengths = {len(prompts), len(seeds), len(base), len(model)}
    if len(lengths) != 1:
        raise ValueError(
            f"prompts, seeds, base and model must have the same length, got "
            f"{len(prompts)}, {len(seeds)}, {len(base)}, {len(model)}"
        )
    rows: dict[str, list[tuple[Hashable, float, float]]] = {}
    seen: set[tuple[str, Hashable]] = set()
    for prompt, seed, b, m in zip(prompts, seeds, base, model, strict=True):
        key = (prompt, seed)
        # A duplicated key means the pairing is ambiguous: refuse rather than guess.
        if key in seen:
            raise ValueError(f"duplicated (prompt, seed) pair: {key!r}")
        seen.add(key)
        # NaN (a failed generation or metric) or +-inf on either side: the pair is unusable and is
        # dropped; n_pairs of a Comparison counts only the pairs kept.
        if not (np.isfinite(b) and np.isfinite(m)):
            continue
        rows.setdefault(prompt, []).append((seed, b, m))
    out = {}
    # Sorting makes the result, and so the bootstrap draws, independent of the input row order.
    for prompt in _sorted(rows, lambda p: p, "prompts"):
        ordered = _sorted(rows[prompt], lambda r: r[0], "seeds")
        out[prompt] = (np.array([r[1] for r in ordered]), np.array([r[2] for r in ordered]))
    return out


def _sorted(items, key, argument: str) -> list:
    """items sorted by key; keys of types that do not compare (seeds 0 and "1") are ordered by
    (type name, value) instead, so the order never depends on the input order. Raises ValueError
    naming `argument` if even that fails."""
    with contextlib.suppress(TypeError):
        return sorted(items, key=key)
    try:
        return sorted(items, key=lambda x: (type(key(x)).__name__, key(x)))
    except TypeError:
        kinds = sorted({type(key(x)).__name__ for x in items})
        raise ValueError(f"{argument} cannot be ordered: values of types {kinds} do not compare with each "
                         f"other; use one type (e.g. all int) for {argument}") from None


def paired_differences(
    prompts: Sequence[str],
    seeds: Sequence[Hashable] | None,
    base: Sequence[float],
    model: Sequence[float],
) -> dict[str, np.ndarray]:
    """Model minus base per (prompt, seed) pair, grouped by prompt.

    Row i of the four inputs is the pair (prompts[i], seeds[i]) with its base and model
    values; rows may come in any order. Pairs with a NaN or +-inf on either side are dropped,
    and a prompt left without pairs is absent from the result (``n_pairs`` of a Comparison
    counts the pairs kept). Prompts are returned sorted, each
    with its differences ordered by seed. ``seeds=None`` means one value per prompt.

    Seeds of types that do not compare (0 and "1") are ordered by (type name, value).
    Raises ValueError if the lengths differ or a (prompt, seed) key appears twice.
    """
    return {p: m - b for p, (b, m) in _pairs(prompts, seeds, base, model).items()}


def _bootstrap(d: np.ndarray, n_boot: int, rng: np.random.Generator, sds: bool = True) -> tuple[np.ndarray, ...]:
    """Means (and standard deviations, ddof=1) of n_boot resamples of each row of d.

    d has shape (k, n): k datasets of n per-prompt means each (one row in ``compare``, many in
    bench/interval_coverage.py). A resample draws n values of its row with replacement: a prompt
    drawn brings its mean, which is all of its pairs. Returns arrays of shape (k, n_boot),
    generated in blocks of about _BLOCK draws to bound memory.
    """
    k, n = d.shape
    rows = max(1, _BLOCK // (k * n))
    means = np.empty((k, n_boot))
    spread = np.empty((k, n_boot)) if sds else None
    offset = (np.arange(k) * n)[:, None, None]
    flat = d.ravel()
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        sample = flat[rng.integers(0, n, size=(k, stop - start, n)) + offset]
        means[:, start:stop] = sample.mean(axis=2)
        if sds:
            spread[:, start:stop] = sample.std(axis=2, ddof=1) if n > 1 else 0.0
    return (means, spread) if sds else (means,)


def _quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise quantile of values (k, B) at probability q[i] for row i (numpy's default linear method)."""
    ordered = np.sort(values, axis=1)
    h = (ordered.shape[1] - 1) * np.clip(q, 0.0, 1.0)
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, ordered.shape[1] - 1)
    frac = h - lo
    a = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
    b = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        # Written so that an infinite neighbour gives an infinite end, never inf - inf = NaN.
        return np.where((frac == 0) | (a == b), a, a * (1 - frac) + b * frac)


_NORMAL = NormalDist()
_cdf = np.vectorize(_NORMAL.cdf, otypes=[float])
_ppf = np.vectorize(_NORMAL.inv_cdf, otypes=[float])


def _intervals(
    d: np.ndarray, method: str, confidence: float, means: np.ndarray, sds: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Interval ends for each row of d (k, n) from its bootstrap means and sds (k, B).

    - "percentile": the alpha/2 and 1 - alpha/2 quantiles of the bootstrap means.
    - "bca": bias-corrected and accelerated percentile interval (Efron and Tibshirani 1993,
      14.3): z0 from the share of bootstrap means below the estimate (ties count half), the
      acceleration from the jackknife over prompts, which for a mean is
      sum(e^3) / (6 * sum(e^2)^1.5) with e the deviations of the per-prompt means from their mean.
    - "studentized": bootstrap-t. Each resample gives t* = (mean* - mean) / (sd* / sqrt(n)); the
      interval is mean - q(1 - alpha/2) * se, mean - q(alpha/2) * se with se = sd / sqrt(n).
    - "studentized-symmetric": symmetric bootstrap-t (Hall 1988): mean +- q * se with q the
      `confidence` quantile of |t*|.

    An end that comes out infinite (with very few prompts, resamples that drew one prompt n times
    have sd* = 0 and t* = +-inf) makes both ends NaN: the interval cannot be computed.
    """
    k, n = d.shape
    alpha = 1 - confidence
    theta = d.mean(axis=1)
    if method == "percentile":
        return (_quantiles(means, np.full(k, alpha / 2)), _quantiles(means, np.full(k, 1 - alpha / 2)))
    if method == "bca":
        b = means.shape[1]
        share = (np.count_nonzero(means < theta[:, None], axis=1) + np.count_nonzero(means <= theta[:, None], axis=1))
        # Kept strictly inside (0, 1) so that z0 is finite even with very few resamples.
        z0 = _ppf(np.clip(share / (2 * b), 0.5 / b, 1 - 0.5 / b))
        e = d - theta[:, None]
        ss = (e**2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            accel = np.where(ss > 0, (e**3).sum(axis=1) / (6 * ss**1.5), 0.0)
        ends = []
        for z in (_NORMAL.inv_cdf(alpha / 2), _NORMAL.inv_cdf(1 - alpha / 2)):
            ends.append(_quantiles(means, _cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))))
        return ends[0], ends[1]
    if method in ("studentized", "studentized-symmetric"):
        se = d.std(axis=1, ddof=1) / np.sqrt(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (means - theta[:, None]) / (sds / np.sqrt(n))
        # A resample of identical prompts has sd* = 0: its t* is 0 when its mean is the estimate, else +-inf.
        t = np.where(sds > 0, t, np.where(means > theta[:, None], np.inf, -np.inf))
        t = np.where((sds > 0) | (means != theta[:, None]), t, 0.0)
        if method == "studentized":
            upper_t, lower_t = _quantiles(t, np.full(k, 1 - alpha / 2)), _quantiles(t, np.full(k, alpha / 2))
        else:
            upper_t = _quantiles(np.abs(t), np.full(k, confidence))
            lower_t = -upper_t
        with np.errstate(invalid="ignore"):
            # se = 0 (every prompt has the same mean difference): the interval is that single value.
            low = np.where(se > 0, theta - upper_t * se, theta)
            high = np.where(se > 0, theta - lower_t * se, theta)
        finite = np.isfinite(low) & np.isfinite(high)
        return np.where(finite, low, np.nan), np.where(finite, high, np.nan)
    raise ValueError(f"interval method must be one of {INTERVAL_METHODS}, got {method!r}")


def _sign_flip_p(d: np.ndarray, n_flips: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip p-value for the mean of d (exact up to EXACT_MAX_PROMPTS values)."""
    n = len(d)
    observed = abs(d.sum())  # the sum orders sign patterns exactly as the mean does
    # Sign patterns that reproduce |sum| up to rounding must count as "as extreme".
    tol = 1e-9 * max(np.abs(d).sum(), np.finfo(float).tiny)
    if n <= EXACT_MAX_PROMPTS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        sums = (1 - 2 * bits) @ d  # row 0 is the observed pattern, so the p-value is at least 2**-n
        return float(np.mean(np.abs(sums) >= observed - tol))
    count = 0
    rows = max(1, _BLOCK // n)
    for start in range(0, n_flips, rows):
        k = min(n_flips, start + rows) - start
        signs = 1 - 2 * rng.integers(0, 2, size=(k, n))
        count += int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
    # +1 counts the observed pattern itself: a valid (never zero) Monte Carlo p-value.
    return (1 + count) / (1 + n_flips)


def compare(
    metric: str,
    model: str,
    baseline: str,
    prompts: Sequence[str],
    seeds: Sequence[Hashable] | None,
    base_values: Sequence[float],
    model_values: Sequence[float],
    *,
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = None,
) -> Comparison:
    """Paired comparison of ``model`` against ``baseline`` on one metric.

    Rows are pairs as in ``paired_differences``. With no usable prompt the means, the
    difference and the win rate are NaN; with fewer than 2 prompts the interval and the
    p-value are NaN (one prompt says nothing about prompt-to-prompt variation); the
    interval is also NaN when too many resamples repeat a single prompt for a finite
    bootstrap-t interval (2 or 3 prompts at 95%). No exception is raised for any of
    these. ``n_boot`` is both the number of bootstrap resamples and, above
    EXACT_MAX_PROMPTS prompts, the number of random sign flips. Pairs with NaN or +-inf
    on either side are dropped (see ``paired_differences``).
    Results are reproducible for a given ``seed``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    pairs = _pairs(prompts, seeds, base_values, model_values)
    n_prompts = len(pairs)
    n_pairs = sum(len(b) for b, _ in pairs.values())
    nan = float("nan")
    base_mean = model_mean = difference = win_rate = ci_low = ci_high = p_value = nan
    if n_prompts:
        base_by_prompt = np.array([b.mean() for b, _ in pairs.values()])
        model_by_prompt = np.array([m.mean() for _, m in pairs.values()])
        d = np.array([(m - b).mean() for b, m in pairs.values()])
        base_mean, model_mean = float(base_by_prompt.mean()), float(model_by_prompt.mean())
        difference = float(d.mean())
        win_rate = float(np.mean((d > 0) + 0.5 * (d == 0)))
    if n_prompts >= 2:
        # Independent streams, so the flip test does not depend on how many bootstrap draws came first.
        boot_rng, flip_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        boot = _bootstrap(d[None, :], n_boot, boot_rng, sds=INTERVAL_METHOD.startswith("studentized"))
        low, high = _intervals(d[None, :], INTERVAL_METHOD, confidence, boot[0], boot[1] if len(boot) > 1 else None)
        ci_low, ci_high = float(low[0]), float(high[0])
        p_value = _sign_flip_p(d, n_boot, flip_rng)
    return Comparison(
        metric=metric,
        model=model,
        baseline=baseline,
        n_prompts=n_prompts,
        n_pairs=n_pairs,
        base_mean=base_mean,
        model_mean=model_mean,
        difference=difference,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        win_rate=win_rate,
        p_value=p_value,
        higher_is_better=higher_is_better,
        interval_method=INTERVAL_METHOD,
    )


def _prompt_means(prompts: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Mean of each prompt's finite values, prompts sorted; a prompt with none is absent."""
    if len(prompts) != len(values):
        raise ValueError(f"prompts and values must have the same length, got {len(prompts)}, {len(values)}")
    rows: dict[str, list[float]] = {}
    for prompt, value in zip(prompts, values, strict=True):
        if np.isfinite(value):
            rows.setdefault(prompt, []).append(float(value))
    return {p: float(np.mean(rows[p])) for p in _sorted(rows, lambda p: p, "prompts")}


def unpaired_intervals(a: np.ndarray, b: np.ndarray, n_boot: int, rng: np.random.Generator,
                       confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch-type symmetric bootstrap-t interval of mean(b) - mean(a), row by row.

    a (k, n) and b (k, m) hold k datasets of per-prompt means of the baseline and the model. Each
    model's prompts are resampled on their own (two independent cluster bootstraps); a resample
    gives t* = ((mean_b* - mean_a*) - (mean_b - mean_a)) / sqrt(sd_a*^2 / n + sd_b*^2 / m), and the
    interval is the difference +- q * se with se = sqrt(sd_a^2 / n + sd_b^2 / m) and q the
    `confidence` quantile of |t*|. A resample with se* = 0 gives t* = +-inf (0 when it hits the
    estimate); an infinite end makes both ends NaN, as in `_intervals`.
    """
    n, m = a.shape[1], b.shape[1]
    mean_a, sd_a = _bootstrap(a, n_boot, rng)
    mean_b, sd_b = _bootstrap(b, n_boot, rng)
    theta = b.mean(axis=1) - a.mean(axis=1)
    se = np.sqrt(a.var(axis=1, ddof=1) / n + b.var(axis=1, ddof=1) / m)
    diff = mean_b - mean_a - theta[:, None]
    se_star = np.sqrt(sd_a**2 / n + sd_b**2 / m)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(se_star > 0, np.abs(diff) / se_star, np.where(diff != 0, np.inf, 0.0))
    q = _quantiles(t, np.full(len(theta), confidence))
    with np.errstate(invalid="ignore"):
        low = np.where(se > 0, theta - q * se, theta)
        high = np.where(se > 0, theta + q * se, theta)
    finite = np.isfinite(low) & np.isfinite(high)
    return np.where(finite, low, np.nan), np.where(finite, high, np.nan)


def _permutation_p(a: np.ndarray, b: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided two-sample permutation p-value for mean(b) - mean(a) (labels shuffled over the
    pooled per-prompt means; Monte Carlo, counting the observed split, so never 0)."""
    pooled = np.concatenate([a, b])
    n = len(a)
    observed = abs(b.mean() - a.mean())
    tol = 1e-9 * max(np.abs(pooled).max(), np.finfo(float).tiny)
    count = 0
    rows = max(1, _BLOCK // len(pooled))
    for start in range(0, n_perm, rows):
        k = min(n_perm, start + rows) - start
        order = np.argsort(rng.random((k, len(pooled))), axis=1)
        shuffled = pooled[order]
        stat = np.abs(shuffled[:, n:].mean(axis=1) - shuffled[:, :n].mean(axis=1))
        count += int(np.count_nonzero(stat >= observed - tol))
    return (1 + count) / (1 + n_perm)


def compare_unpaired(
    metric: str,
    model: str,
    baseline: str,
    base_prompts: Sequence[str],
    base_values: Sequence[float],
    model_prompts: Sequence[str],
    model_values: Sequence[float],
    *,
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = None,
) -> Comparison:
    """Comparison of two models whose images share no (prompt, seed): made elsewhere, with other seeds.

    Each model's values are averaged per prompt over its own seeds (NaN and +-inf dropped), and only
    the prompts both models have are kept, so the difference estimates the same quantity as
    ``compare``: the mean over prompts of (model mean - base mean). The interval resamples each
    model's prompts independently (``unpaired_intervals``); as both models drew the same prompts
    this ignores what the prompts share, which makes it wider (conservative) where ``compare`` could
    pair. The p-value is a two-sample permutation test of the per-prompt means. ``n_pairs`` is 0
    (there are no pairs); ``win_rate`` is the share of prompts where the model's mean is above the
    baseline's. NaN where fewer than 2 prompts are shared, as ``compare``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    base_by, model_by = _prompt_means(base_prompts, base_values), _prompt_means(model_prompts, model_values)
    shared = [p for p in base_by if p in model_by]
    nan = float("nan")
    base_mean = model_mean = difference = win_rate = ci_low = ci_high = p_value = nan
    a = np.array([base_by[p] for p in shared])
    b = np.array([model_by[p] for p in shared])
    if shared:
        base_mean, model_mean = float(a.mean()), float(b.mean())
        difference = model_mean - base_mean
        win_rate = float(np.mean((b > a) + 0.5 * (b == a)))
    if len(shared) >= 2:
        boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        low, high = unpaired_intervals(a[None, :], b[None, :], n_boot, boot_rng, confidence)
        ci_low, ci_high = float(low[0]), float(high[0])
        p_value = _permutation_p(a, b, n_boot, perm_rng)
    return Comparison(
        metric=metric, model=model, baseline=baseline, n_prompts=len(shared), n_pairs=0, base_mean=base_mean,
        model_mean=model_mean, difference=difference, ci_low=ci_low, ci_high=ci_high, confidence=confidence,
        win_rate=win_rate, p_value=p_value, higher_is_better=higher_is_better,
        interval_method=UNPAIRED_INTERVAL_METHOD, pairing="unpaired")


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (controls the family-wise error rate).

    Sorted ascending, the i-th smallest of m p-values (i from 1) becomes (m - i + 1) * p(i),
    made non-decreasing along the sorted order and clipped to 1. NaN entries stay NaN and
    are not counted in m. Raises ValueError if a p-value is outside [0, 1].
    """
    return _adjusted(p, lambda ranked, m: np.maximum.accumulate((m - np.arange(m)) * ranked))


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate).

    Sorted ascending, the i-th smallest of m p-values becomes m / i * p(i), made
    non-decreasing along the sorted order by a running minimum from the largest down, and
    clipped to 1. NaN entries stay NaN and are not counted in m. Raises ValueError if a
    p-value is outside [0, 1].
    """
    return _adjusted(p, lambda ranked, m: np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1])


def _adjusted(p: Sequence[float], correct) -> np.ndarray:
    """Apply `correct(sorted non-NaN p-values, m)` and put the results back in input order, clipped to 1.

    NaN means "no test" (e.g. a comparison with fewer than 2 prompts): it stays NaN and is not
    counted in m. Any other value outside [0, 1] (negative, above 1, +-inf) is refused.
    """
    p = np.asarray(p, dtype=float)
    ok = ~np.isnan(p)
    bad = p[ok & ~((p >= 0) & (p <= 1))]
    if bad.size:
        raise ValueError(f"p must hold p-values in [0, 1] (or NaN for no test), got {bad.tolist()[:5]}")
    out = np.full(p.shape, np.nan)
    m = int(ok.sum())
    if m:
        order = np.argsort(p[ok], kind="stable")
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, correct(p[ok][order], m))
        out[ok] = adjusted
    return out


_METHODS = {"holm": holm, "bh": benjamini_hochberg}


def adjust(comparisons: Sequence[Comparison], method: str = "holm") -> list[Comparison]:
    """Multiple-comparison adjustment across all the comparisons given (pass the whole table).

    ``method`` is "holm" or "bh". Returns new Comparison objects with ``p_adjusted`` filled,
    in the same order; the inputs are not modified. A NaN p-value gets a NaN adjusted
    p-value and does not count in the family size.
    """
    try:
        fn = _METHODS[method.lower()]
    except KeyError:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}") from None
    adjusted = fn([c.p_value for c in comparisons])
    return [dataclasses.replace(c, p_adjusted=float(a)) for c, a in zip(comparisons, adjusted, strict=True)]


def to_rows(comparisons: Sequence[Comparison]) -> list[dict]:
    """Flat dicts (field order = column order) for CSV or Markdown tables."""
    return [dataclasses.asdict(c) for c in comparisons]
