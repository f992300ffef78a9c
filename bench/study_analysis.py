"""Seconds of the study analysis' Bradley-Terry bootstrap: all resamples fitted at once vs one fit each.

The participant bootstrap refits Bradley-Terry 2,000 times per question. ccub fits every
resample in lockstep (one batched Newton iteration for all of them); the reference fits them one at
a time with the same Newton step, as a plain loop would. Both run in this process on the same
simulated rankings (Plackett-Luce, planted strengths), and the bench checks they agree.

    python bench/study_analysis.py                                  # the SCoFT study's size
    python bench/study_analysis.py --participants 200 --items 100 --models 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmark.study import stats


def simulated_rankings(participants: int, items: int, models: int, seed: int) -> dict[str, list[tuple[str, ...]]]:
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(models)]
    utility = np.linspace(0, 1.5, models)
    return {f"p{p}": [tuple(names[i] for i in np.argsort(-(utility + rng.gumbel(size=models))))
                      for _ in range(items)] for p in range(participants)}


def one_fit_each(rankings: dict, n_boot: int, seed: int, prior: float) -> np.ndarray:
    """The reference: the same resamples, each fitted on its own."""
    participants = list(rankings)
    models = sorted({m for rs in rankings.values() for r in rs for m in r})
    index = {m: i for i, m in enumerate(models)}
    per = np.stack([stats._win_matrix(stats.rankings_to_pairs(rankings[p]), index) for p in participants])
    pseudo = prior * (1 - np.eye(len(models)))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(participants), (n_boot, len(participants)))
    return np.stack([stats._fit_many((per[pick].sum(axis=0) + pseudo)[None], 100, 1e-10)[0][0] for pick in picks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=51)  # the SCoFT study's
    parser.add_argument("--items", type=int, default=20, help="rankings per participant and question")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    rankings = simulated_rankings(args.participants, args.items, args.models, seed=0)
    start = time.perf_counter()
    _, _, fast = stats.bt_bootstrap_draws(rankings, args.bootstrap, seed=1, prior=0.5)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    slow = one_fit_each(rankings, args.bootstrap, seed=1, prior=0.5)
    looped = time.perf_counter() - start
    print(f"{args.participants} participants x {args.items} rankings of {args.models} models, "
          f"{args.bootstrap} bootstrap resamples (one question)")
    print(f"{'fit':<34}{'seconds':>9}{'vs loop':>9}")
    print(f"{'one fit per resample (reference)':<34}{looped:>9.3f}{1.0:>8.2f}x")
    print(f"{'all resamples at once (ccub)':<34}{batched:>9.3f}{looped / batched:>8.2f}x")
    print(f"largest difference between the two: {np.max(np.abs(fast - slow)):.2e} (log-strength)")


if __name__ == "__main__":
    main()
