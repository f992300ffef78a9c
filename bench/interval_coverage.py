"""Coverage of the benchmark's confidence intervals on synthetic paired data.

    python bench/interval_coverage.py [--reps 4000] [--n-boot 2000] [--prompts 20 40 80] [--seeds 4]
                                      [--confidence 0.95] [--seed 0] [--markdown]

Simulates `--reps` datasets per (distribution, number of prompts). A dataset has n prompts x
`--seeds` seeds of paired differences (fine-tuned minus base)

    d[i, j] = delta + 0.5 * u[i] + e[i, j]

with a prompt-level effect u (shared by the prompt's seeds: the reason the interval is a cluster
interval over prompts) and a per-image noise e, both drawn from one standardised family (mean 0,
variance 1):

- normal: N(0, 1);
- heavy-tailed: Student t with 3 degrees of freedom, divided by sqrt(3);
- skewed: lognormal exp(N(0, 1)), centred and scaled (skewness 6.2; the per-prompt means keep a
  skewness of about 3.3).

Every method is computed from the per-prompt means by the code `compare()` uses
(`benchmark.stats._bootstrap` and `_intervals`; all methods share one set of bootstrap draws per
dataset), except the t-interval (mean +- t(n-1) * sd / sqrt(n)), computed here with scipy. A
dataset is covered when ci_low <= delta <= ci_high. Prints coverage per method x distribution x
number of prompts with its Monte Carlo standard error sqrt(c (1 - c) / reps), the mean interval
width, and the largest distance from nominal per method. `--markdown` prints the table as in
docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.stats import INTERVAL_METHOD, INTERVAL_METHODS, _bootstrap, _intervals  # noqa: E402

DELTA = 0.4
PROMPT_SD = 0.5
METHODS = (*INTERVAL_METHODS, "t")


def _draw(rng: np.random.Generator, family: str, shape: tuple[int, ...]) -> np.ndarray:
    if family == "normal":
        return rng.standard_normal(shape)
    if family == "heavy-tailed":
        return rng.standard_t(3, shape) / math.sqrt(3)
    if family == "skewed":
        return (np.exp(rng.standard_normal(shape)) - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)
    raise ValueError(family)


def per_prompt_means(rng: np.random.Generator, family: str, k: int, n: int, seeds: int) -> np.ndarray:
    """k datasets of n per-prompt mean differences, shape (k, n)."""
    u = _draw(rng, family, (k, n, 1))
    e = _draw(rng, family, (k, n, seeds))
    return (DELTA + PROMPT_SD * u + e).mean(axis=2)


def t_interval(d: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy import stats

    n = d.shape[1]
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(axis=1, ddof=1) / math.sqrt(n)
    return d.mean(axis=1) - half, d.mean(axis=1) + half


def simulate(reps: int, n_boot: int, prompts: list[int], seeds: int, confidence: float, seed: int,
             chunk: int = 250) -> list[dict]:
    rows = []
    for family in ("normal", "heavy-tailed", "skewed"):
        for n in prompts:
            rng = np.random.default_rng([seed, n, ("normal", "heavy-tailed", "skewed").index(family)])
            covered = {m: 0 for m in METHODS}
            width = {m: 0.0 for m in METHODS}
            for start in range(0, reps, chunk):
                k = min(chunk, reps - start)
                d = per_prompt_means(rng, family, k, n, seeds)
                means, sds = _bootstrap(d, n_boot, rng)
                for m in METHODS:
                    low, high = t_interval(d, confidence) if m == "t" else _intervals(d, m, confidence, means, sds)
                    covered[m] += int(np.count_nonzero((low <= DELTA) & (high >= DELTA)))
                    width[m] += float(np.sum(high - low))
            for m in METHODS:
                c = covered[m] / reps
                rows.append({"method": m, "family": family, "n_prompts": n, "coverage": c,
                             "se": math.sqrt(c * (1 - c) / reps), "width": width[m] / reps})
    return rows


def table(rows: list[dict], prompts: list[int], confidence: float, markdown: bool) -> str:
    cells = {(r["method"], r["family"], r["n_prompts"]): r for r in rows}
    header = ["method"] + [f"{f} {n}" for f in ("normal", "heavy-tailed", "skewed") for n in prompts] + ["worst"]
    lines = []
    for m in METHODS:
        row = [m + (" (used)" if m == INTERVAL_METHOD else "")]
        gaps = []
        for f in ("normal", "heavy-tailed", "skewed"):
            for n in prompts:
                r = cells[(m, f, n)]
                row.append(f"{r['coverage']:.3f} ± {r['se']:.3f}")
                gaps.append(r["coverage"] - confidence)
        worst = max(gaps, key=abs)
        row.append(f"{worst:+.3f}")
        lines.append(row)
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in lines]
        return "\n".join(out)
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=4000, help="simulated datasets per cell (precision vs time)")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples per dataset")
    ap.add_argument("--prompts", type=int, nargs="+", default=[20, 40, 80])
    ap.add_argument("--seeds", type=int, default=4, help="seeds per prompt")
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true", help="print the coverage table as Markdown")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = simulate(args.reps, args.n_boot, args.prompts, args.seeds, args.confidence, args.seed)
    print(f"coverage at nominal {args.confidence} (± Monte Carlo standard error); {args.reps} datasets per cell, "
          f"{args.n_boot} bootstrap resamples, {args.seeds} seeds per prompt; columns: distribution and prompts")
    print(table(rows, args.prompts, args.confidence, args.markdown))
    print("\nmean interval width (the sd of a per-prompt mean is 0.71 in every family)")
    for m in METHODS:
        print(f"  {m:22s}", "  ".join(f"{r['family'][:5]} {r['n_prompts']}: {r['width']:.3f}"
                                      for r in rows if r["method"] == m))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
