"""Hamming radius search over dihedral perceptual hashes (ccub.dedup.search)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from ccub.dedup.search import (
    LSH_BITS,
    LSH_TABLES,
    _relabel,
    _union_find,
    connected_groups,
    hamming,
    lsh_recall,
    pairs_between,
    pairs_within,
)


def dihedral(identity: np.ndarray) -> np.ndarray:
    """(n, 4) uint64 identity hashes -> (n, 8, 4): the 8 symmetries of the 16 x 16 bit grid.

    Rotations and mirrors permute the grid, and they form a group, so the min-over-variants
    distance is symmetric, as for real dihedral pHashes.
    """
    n = len(identity)
    grid = np.unpackbits(np.ascontiguousarray(identity).view(np.uint8), axis=-1).reshape(n, 16, 16)
    mirror = grid[:, :, ::-1]
    variants = [np.rot90(g, r, axes=(1, 2)) for g in (grid, mirror) for r in range(4)]
    packed = [np.packbits(np.ascontiguousarray(v).reshape(n, 256), axis=-1).view(np.uint64) for v in variants]
    return np.ascontiguousarray(np.stack(packed, axis=1))


def random_hashes(n: int, rng: np.random.Generator) -> np.ndarray:
    return dihedral(rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64, endpoint=False))


def flip(word: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of one (4,) hash with k distinct random bits flipped."""
    out = word.copy()
    for p in rng.choice(256, size=k, replace=False):
        out[p // 64] ^= np.uint64(1) << np.uint64(p % 64)
    return out


def plant(h: np.ndarray, pairs: list[tuple[int, int, int]], rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Make image b a rotated/mirrored copy of image a at distance k; returns (min, max, k)."""
    out = []
    for a, b, k in pairs:
        near = dihedral(flip(h[a, 0], k, rng)[None])[0]
        v = int(rng.integers(0, 8))  # the copy is stored as some variant of the near hash
        h[b] = dihedral(near[v][None])[0]
        out.append((min(a, b), max(a, b), k))
    return out


def as_int(word: np.ndarray) -> int:
    return sum(int(x) << (64 * w) for w, x in enumerate(word))


def reference_pairs(h: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
    """Plain Python: every pair, every variant, Python integer popcounts."""
    ints = [[as_int(h[i, v]) for v in range(8)] for i in range(len(h))]
    out = []
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            d = min((ints[i][0] ^ ints[j][v]).bit_count() for v in range(8))
            if d <= radius:
                out.append((i, j, d))
    return out


def as_list(result) -> list[tuple[int, int, int]]:
    return list(zip(*(x.tolist() for x in result), strict=True))


def test_hamming_matches_python():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, size=(5, 1, 4), dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, size=(1, 7, 4), dtype=np.uint64, endpoint=False)
    b[0, 0] = a[0, 0]
    b[0, 1] = ~a[1, 0]
    got = hamming(a, b)
    assert got.shape == (5, 7) and got.dtype == np.int64
    for x in range(5):
        for y in range(7):
            want = sum(bin(int(p) ^ int(q)).count("1") for p, q in zip(a[x, 0], b[0, y], strict=True))
            assert got[x, y] == want
    assert got[0, 0] == 0 and got[1, 1] == 256
    assert np.array_equal(hamming(a.view(np.int64), b.view(np.int64)), got)  # signed words too


def test_lsh_recall_model():
    assert LSH_BITS == 18 and LSH_TABLES == 82
    assert lsh_recall(16) > 1 - 1e-9
    assert lsh_recall(40) > 0.98
    assert lsh_recall(0) == 1.0
    d = np.array([8, 24, 48])
    want = 1 - (1 - (1 - d / 256) ** 10) ** 3
    assert np.allclose(lsh_recall(d, 3, 10), want)


def test_exact_matches_reference_with_planted_pairs():
    rng = np.random.default_rng(1)
    n = 300
    h = random_hashes(n, rng)
    idx = rng.permutation(n)
    wanted = [(int(idx[2 * t]), int(idx[2 * t + 1]), k) for t, k in enumerate([0, 1, 3, 8, 12, 16, 20, 33, 40, 47,
                                                                                 48, 49, 60, 5, 14, 30])]
    planted = plant(h, wanted, rng)
    got = as_list(pairs_within(h, 48))
    assert got == reference_pairs(h, 48)
    within = {(a, b): k for a, b, k in planted if k <= 48}
    assert {(i, j): d for i, j, d in got} == within  # nothing else is that close among random hashes
    # Some planted copies are only close through a rotation or mirror, not their identity hash.
    via_variant = [(a, b) for a, b, k in planted if k <= 48 and hamming(h[a, 0], h[b, 0]) > 48]
    assert len(via_variant) >= 5
    # Orientation does not matter: each pair's distance is symmetric under this construction.
    for a, b, k in planted:
        assert hamming(h[b, 0][None], h[a]).min() == hamming(h[a, 0][None], h[b]).min() == k
    assert as_list(pairs_within(h, 10)) == [p for p in got if p[2] <= 10]


def test_lsh_finds_close_pairs_among_20000():
    rng = np.random.default_rng(2)
    n = 20000
    h = random_hashes(n, rng)
    idx = rng.permutation(n)
    close = [(int(idx[2 * t]), int(idx[2 * t + 1]), t % 17) for t in range(170)]
    far = [(int(idx[2 * t]), int(idx[2 * t + 1]), 40) for t in range(170, 370)]
    planted = plant(h, close + far, rng)
    start = time.perf_counter()
    i, j, d = pairs_within(h, 40, exact_limit=0)
    assert time.perf_counter() - start < 15
    found = {(a, b): c for a, b, c in zip(i.tolist(), j.tolist(), d.tolist(), strict=True)}
    for a, b, k in planted[:170]:
        assert found.get((a, b)) == k
    recall_40 = np.mean([(a, b) in found for a, b, _ in planted[170:]])
    assert recall_40 >= 0.95
    assert np.all(i < j) and np.all(d <= 40)
    assert np.array_equal(d, hamming(h[i, 0][:, None], h[j]).min(axis=1))  # exact distances
    assert np.all(np.diff(i * n + j) > 0)  # sorted by (i, j), no duplicates


def test_exact_and_lsh_agree():
    rng = np.random.default_rng(3)
    n = 2500
    h = random_hashes(n, rng)
    idx = rng.permutation(n)
    plant(h, [(int(idx[2 * t]), int(idx[2 * t + 1]), int(rng.integers(0, 49))) for t in range(150)], rng)
    exact = as_list(pairs_within(h, 48))
    lsh = as_list(pairs_within(h, 48, exact_limit=0, seed=7))
    assert len(exact) >= 140
    assert set(lsh) <= set(exact)
    assert {p for p in exact if p[2] <= 16} <= set(lsh)
    assert len(lsh) >= 0.85 * len(exact)
    assert as_list(pairs_within(h, 48, exact_limit=0, seed=7)) == lsh  # deterministic for a seed


def test_pairs_between():
    rng = np.random.default_rng(4)
    old, new = random_hashes(2500, rng), random_hashes(200, rng)
    wanted = []
    for t in range(60):
        k = int(rng.integers(0, 49))
        near = dihedral(flip(old[t * 7, 0], k, rng)[None])[0]
        new[t * 3] = dihedral(near[int(rng.integers(0, 8))][None])[0]
        wanted.append((t * 3, t * 7, k))
    # Reference: pairs_within on the union (old first), keeping only old-new pairs.
    both = np.concatenate((old, new))
    ref = sorted((j - 2500, i, d) for i, j, d in as_list(pairs_within(both, 48)) if i < 2500 <= j)
    got = as_list(pairs_between(new, old, 48))
    assert got == ref
    assert {(a, b): k for a, b, k in wanted} == {(a, b): k for a, b, k in got}
    lsh = as_list(pairs_between(new, old, 48, exact_limit=0))
    assert set(lsh) <= set(got) and {p for p in got if p[2] <= 16} <= set(lsh)
    assert lsh == sorted(lsh)
    empty = pairs_between(new[:0], old, 48)
    assert all(len(x) == 0 for x in empty)


def test_pairs_between_giant_bucket():
    rng = np.random.default_rng(8)
    old, new = random_hashes(3000, rng), random_hashes(400, rng)
    old[1000:1300] = old[0]  # 300 blank-like old images
    new[100:250] = old[0]  # and 150 new ones exactly like them
    i, j, d = pairs_between(new, old, 16, exact_limit=0)
    assert len(i) == 150 * 301 and np.all(d == 0)
    assert set(i.tolist()) == set(range(100, 250))
    assert set(j.tolist()) == {0} | set(range(1000, 1300))


def test_connected_groups():
    labels = connected_groups(7, np.array([5, 1, 6]), np.array([1, 3, 4]))
    assert labels.tolist() == [0, 1, 2, 1, 3, 1, 3]
    assert connected_groups(3, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).tolist() == [0, 1, 2]
    assert connected_groups(0, [], []).tolist() == []
    with pytest.raises(ValueError):
        connected_groups(3, [0], [3])
    # The numpy fallback agrees with scipy on a random forest of chains.
    rng = np.random.default_rng(5)
    n = 2000
    i, j = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    assert np.array_equal(_relabel(_union_find(n, i, j)), connected_groups(n, i, j))
    chain = np.arange(999)
    assert np.array_equal(_relabel(_union_find(1000, chain[::-1], chain[::-1] + 1)), np.zeros(1000, dtype=np.int64))


def test_giant_bucket_stays_bounded():
    """Blank-like images that all hash alike must not expand quadratically in every table."""
    rng = np.random.default_rng(6)
    n = 12000
    h = random_hashes(n, rng)
    h[:1500] = h[0]  # 1500 identical hashes
    base = rng.integers(0, 2**64, size=4, dtype=np.uint64, endpoint=False)
    cluster = np.arange(1500, 2300)  # 800 near-identical ones: pairwise distance <= 8
    h[cluster] = dihedral(np.stack([flip(base, 4, rng) for _ in cluster]))
    tracemalloc.start()
    try:
        start = time.perf_counter()
        i, j, d = pairs_within(h, 16, exact_limit=0)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 15
    assert peak < 400e6
    same = (j < 1500)
    assert same.sum() == 1500 * 1499 // 2 and np.all(d[same] == 0)
    near = (i >= 1500) & (j < 2300)
    ci, cj, cd = pairs_within(h[cluster], 16)
    assert np.array_equal(i[near], ci + 1500) and np.array_equal(j[near], cj + 1500)
    assert np.array_equal(d[near], cd)
    assert len(i) == same.sum() + near.sum()


def test_small_and_invalid_inputs():
    rng = np.random.default_rng(7)
    h = random_hashes(3, rng)
    assert all(len(x) == 0 for x in pairs_within(h[:1], 64))
    assert all(len(x) == 0 for x in pairs_within(h, -1))
    assert all(len(x) == 0 for x in pairs_within(h, -0.5))
    i, j, d = pairs_within(h, 256)
    assert i.tolist() == [0, 0, 1] and j.tolist() == [1, 2, 2]
    assert np.array_equal(as_list(pairs_within(h.view(np.int64), 256)), as_list((i, j, d)))
    with pytest.raises(ValueError):
        pairs_within(h[:, :4], 10)
    with pytest.raises(ValueError):
        pairs_within(h.astype(np.float64), 10)
