"""Time `ccub.dedup.search.pairs_within` on synthetic dihedral perceptual hashes.

    python bench/dedup.py [--sizes 1000 10000 100000] [--radius 48] [--no-memory]

For each n: n random 256-bit identity hashes, each expanded to its 8 dihedral variants (the 8
symmetries of the 16 x 16 bit grid, so the min-over-variants distance is symmetric as for real
pHashes), with ~1% of images replaced by a rotated or mirrored near copy of another image at a
planted distance drawn uniformly from 0..radius. Prints, per n: the engine (exact up to
`EXACT_LIMIT` images, LSH above), wall time, pairs found, recall of the planted pairs (overall,
and for d <= 16), and the peak traced memory of a second, traced run (numpy's allocations via
tracemalloc); then the growth exponent of time in n between the two largest sizes, the process's
peak RSS, and the LSH recall model.

Target: n = 100,000 in <= 10 s on a 2-core laptop CPU, with memory in the low hundreds of MB.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccub.dedup.search import EXACT_LIMIT, LSH_BITS, LSH_TABLES, lsh_recall, pairs_within  # noqa: E402


def dihedral(identity: np.ndarray) -> np.ndarray:
    """(n, 4) uint64 -> (n, 8, 4): rotations and mirrors of the 16 x 16 bit grid."""
    n = len(identity)
    grid = np.unpackbits(np.ascontiguousarray(identity).view(np.uint8), axis=-1).reshape(n, 16, 16)
    variants = [np.rot90(g, r, axes=(1, 2)) for g in (grid, grid[:, :, ::-1]) for r in range(4)]
    packed = [np.packbits(np.ascontiguousarray(v).reshape(n, 256), axis=-1).view(np.uint64) for v in variants]
    return np.ascontiguousarray(np.stack(packed, axis=1))


def corpus(n: int, radius: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hashes plus planted pairs (a, b, distance), a < b, ~n/100 of them on distinct images."""
    rng = np.random.default_rng(seed)
    identity = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64, endpoint=False)
    planted = max(1, n // 100)
    order = rng.permutation(n)[: 2 * planted]
    src, dst = order[:planted], order[planted:]
    dist = rng.integers(0, radius + 1, size=planted)
    # Copy: flip `dist` distinct bits of the source, then store it as a random dihedral variant.
    near = identity[src].copy()
    bits = np.unpackbits(near.view(np.uint8), axis=-1)
    for row, k in enumerate(dist):
        cols = rng.choice(256, size=int(k), replace=False)
        bits[row, cols] ^= 1
    near = np.packbits(bits, axis=-1).view(np.uint64)
    choice = rng.integers(0, 8, size=planted)
    identity[dst] = dihedral(near)[np.arange(planted), choice]
    hashes = dihedral(identity)
    return hashes, np.minimum(src, dst), np.maximum(src, dst), dist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--radius", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the traced (second) runs")
    args = parser.parse_args()

    print(f"pairs_within(radius={args.radius}); exact up to {EXACT_LIMIT} images, "
          f"LSH above (L={LSH_TABLES} tables x k={LSH_BITS} bits)")
    header = (f"{'n':>8} {'mode':>6} {'seconds':>8} {'pairs':>8} {'planted':>8} {'recall':>7} {'rec<=16':>8} "
              f"{'peak MB':>8}")
    print(header)
    print("-" * len(header))
    times: dict[int, float] = {}
    pairs_within(corpus(64, args.radius, args.seed)[0], args.radius)  # warm-up (BLAS threads)
    for n in args.sizes:
        hashes, pa, pb, pd = corpus(n, args.radius, args.seed)
        start = time.perf_counter()
        i, j, d = pairs_within(hashes, args.radius)
        seconds = time.perf_counter() - start
        times[n] = seconds
        found = np.isin(pa * n + pb, i * n + j)
        close = pd <= 16
        peak = "-"
        if not args.no_memory:
            tracemalloc.start()
            pairs_within(hashes, args.radius)
            peak = f"{tracemalloc.get_traced_memory()[1] / 2**20:.0f}"
            tracemalloc.stop()
        mode = "exact" if n <= EXACT_LIMIT else "LSH"
        print(f"{n:>8} {mode:>6} {seconds:>8.2f} {len(i):>8} {len(pa):>8} {found.mean():>7.3f} "
              f"{found[close].mean():>8.3f} {peak:>8}")
    sizes = sorted(times)
    if len(sizes) >= 2:
        lo, hi = sizes[-2], sizes[-1]
        slope = math.log(times[hi] / times[lo]) / math.log(hi / lo)
        print(f"growth exponent (log time / log n, {lo} -> {hi}): {slope:.2f}")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"LSH recall model 1-(1-(1-d/256)^k)^L, L={LSH_TABLES}, k={LSH_BITS}:")
    for dist in (8, 16, 24, 32, 40, 48, 56, 64):
        print(f"  d={dist:>3}: {lsh_recall(dist):.6f}   (miss {1 - lsh_recall(dist):.1e})")


if __name__ == "__main__":
    main()
