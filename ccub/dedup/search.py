"""Radius search over 256-bit perceptual hashes with their 8 dihedral variants.

Every image carries one 256-bit hash per dihedral variant (identity, three rotations, the mirror
image and its three rotations), packed as ``uint64`` words in an array of shape ``(n, 8, 4)``;
variant 0 is the identity. The distance between images ``i < j`` is

    d(i, j) = min over v of Hamming(hashes[i, 0], hashes[j, v])

which the hasher makes symmetric (the identity of ``j`` against the variants of ``i`` gives the
same value); this module always evaluates it in that orientation, the smaller index's identity
against the larger index's variants, so that every mode returns the same number for a pair.

Two engines answer "all pairs within ``radius``":

* **exact** (small problems): blocks of identity hashes against tiles of variant hashes. Bits are
  expanded to +-1 float32 vectors, so that ``Hamming = (256 - dot) / 2`` and one BLAS matrix
  product scores a whole block against a whole tile (2-3x faster than numpy popcounts here).
  Each block's temporaries are ~50 MB whatever ``n``.
* **LSH** (large problems): bit-sampling locality-sensitive hashing. Each of ``L`` tables samples
  ``k`` bit positions (uniformly, with replacement); two hashes collide in a table when they agree
  on every sampled bit. Per table, all ``8 n`` variant hashes (identities included) are keyed, one
  sort brings equal keys together, and the identity of each image ``i`` is paired with every
  variant of every image ``j > i`` in its bucket (``np.repeat`` expansion, in bounded chunks). A
  candidate is kept when the Hamming distance to *that* variant is within the radius; survivors
  are deduplicated and scored with the full min-over-variants distance. ``pairs_between`` keys
  the old images' variants and the new images' identities the same way.

Recall model (LSH). For a fixed pair at distance ``d`` (reached through its best variant ``v``),
one table makes ``hashes[i, 0]`` and ``hashes[j, v]`` collide with probability exactly
``(1 - d/256) ** k`` (positions are drawn independently, so no assumption on the data is needed
for this part), and tables are independent, so the pair is reported with probability at least::

    lsh_recall(d, L, k) = 1 - (1 - (1 - d/256) ** k) ** L

With the defaults (``k = 18``, ``L = 82``): d <= 16 is missed with probability < 1e-13, d = 40 is
found with probability > 0.98, d = 48 ~ 0.86, d = 64 ~ 0.37 (raise ``tables`` for a
review band that far out: recall at 64 needs ~500 tables for 0.95). The *cost* depends on the
data: under a uniform-bit model a random pair collides in a table with probability
``2 ** -k``, so each table expands about ``4 n**2 / 2**k`` candidates (150k at n = 100k), on top
of a sort of ``8 n`` keys; at n = 100k that is ~4 s on one core and ~120 MB of peak memory.

Giant buckets. Correlated images (blank or near-uniform pictures all hashing alike) would make
one bucket expand quadratically in every table. A bucket whose expansion exceeds
``HEAVY_BUCKET`` candidates is not expanded; its member images are instead linked together, and
after the last table every connected set of such members is searched exactly (blocked, so memory
stays bounded). This never loses a pair: any pair that bucket would have produced lies inside one
such set. Links are reduced to one per image whenever they pile up, so their memory is O(n).
Time for those sets is quadratic in their size, as is the number of pairs they usually yield:
m identical images are m (m - 1) / 2 pairs, which the caller receives in full (three int64
arrays; peak memory is ~40 bytes per reported pair, e.g. ~260 MB for 6.5 million pairs). Collapse
byte- or pixel-identical copies before searching when such clusters are expected.
"""

from __future__ import annotations

import math

import numpy as np

BITS = 256
WORDS = 4
VARIANTS = 8

LSH_BITS = 18
"""Sampled bit positions per LSH table (k)."""
LSH_TABLES = 82
"""LSH tables (L): d <= 16 missed with probability < 1e-13, d = 40 found with probability > 0.98."""
EXACT_LIMIT = 5000
"""Default problem size up to which the exact engine runs (n images, or the same work between
two sets). Exact work grows as n**2 (~1 s at 5,000 images on 2 cores, ~12 s at 20,000), LSH's
about as n**1.2 (~0.2 s at 5,000, ~4 s at 100,000), but exact returns every pair of the review
band too (LSH recall at d = 48 is ~0.86)."""
HEAVY_BUCKET = 1 << 16
"""Candidate pairs above which one LSH bucket is searched exactly instead of expanded."""

_BLOCK = 1024  # identities per exact block (and images per tile): (1024 x 8192) float32 = 32 MB
_CHUNK = 1 << 20  # LSH candidates expanded and filtered at once (~100 MB of temporaries)
_VERIFY = 1 << 16  # pairs scored at once against all 8 variants
_DEDUPE = 1 << 22  # accepted LSH candidates kept before an intermediate np.unique
_DIST_BITS = 9  # distances 0..256 packed under the pair code
_LINKS = 1 << 22  # heavy-bucket links kept before they are reduced to one per node


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance between packed ``uint64`` hashes: popcount of xor over the last axis.

    ``a`` and ``b`` broadcast against each other; the result drops the last axis (int64).
    """
    return _popsum(np.bitwise_xor(_unsigned(a), _unsigned(b))).astype(np.int64)


def _unsigned(x: np.ndarray) -> np.ndarray:
    """Signed words viewed as unsigned: np.bitwise_count counts the bits of |x| for signed ints."""
    x = np.asarray(x)
    return x.view(f"u{x.dtype.itemsize}") if x.dtype.kind == "i" else x


def _popsum(x: np.ndarray) -> np.ndarray:
    """Popcount summed over the last axis (one strided add per word: faster than a short-axis sum)."""
    pop = np.bitwise_count(x)
    words = pop.shape[-1]
    out = pop[..., 0].astype(np.uint16 if words <= 1023 else np.int64)
    for w in range(1, words):
        out += pop[..., w]
    return out


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; numpy's hash-based np.unique is slower on int64 here)."""
    x = np.sort(x)
    keep = np.ones(len(x), dtype=bool)
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def lsh_recall(distance: float | np.ndarray, L: int = LSH_TABLES, k: int = LSH_BITS) -> float | np.ndarray:
    """Probability that the LSH engine reports a pair at ``distance`` bits: ``1-(1-(1-d/256)^k)^L``."""
    p = (1.0 - np.asarray(distance, dtype=np.float64) / BITS) ** k
    with np.errstate(divide="ignore"):  # p = 1 (d = 0): log1p(-1) = -inf, recall exactly 1
        out = -np.expm1(L * np.log1p(-p))
    return float(out) if np.ndim(out) == 0 else out


# ---------------------------------------------------------------------------------------------
# Public searches
# ---------------------------------------------------------------------------------------------


def pairs_within(hashes: np.ndarray, radius: int, *, exact_limit: int = EXACT_LIMIT, seed: int = 0,
                 tables: int = LSH_TABLES, bits: int = LSH_BITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of ``hashes`` (shape ``(n, 8, 4)``, uint64) with ``d(i, j) <= radius``.

    Returns ``(i, j, d)`` int64 arrays sorted by ``(i, j)``. Up to ``exact_limit`` images the search
    is exact; above it, LSH with ``tables`` tables of ``bits`` sampled bits (see the module
    docstring for the recall model; ``seed`` draws the sampled bits). Reported pairs and distances
    are always exact; LSH can only miss pairs.
    """
    h = _as_hashes(hashes)
    n = len(h)
    radius = math.floor(radius)  # distances are integers
    if n < 2 or radius < 0:
        return _empty()
    if n <= exact_limit:
        return _unpack(_exact(h[:, 0], h, radius, n, triangle=True), n)
    return _lsh_within(h, radius, seed, tables, bits)


def pairs_between(new: np.ndarray, old: np.ndarray, radius: int, *, exact_limit: int = EXACT_LIMIT, seed: int = 0,
                  tables: int = LSH_TABLES, bits: int = LSH_BITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of a ``new`` and an ``old`` image with ``d <= radius``: ``(i_new, j_old, d)``.

    ``d = min over v of Hamming(new[i, 0], old[j, v])`` (by symmetry the same as ``old[j, 0]``
    against ``new[i]``'s variants). Sorted by ``(i_new, j_old)``. Exact when
    ``len(new) * len(old)`` is at most the work of ``pairs_within`` at ``exact_limit`` images,
    LSH otherwise.
    """
    a, b = _as_hashes(new), _as_hashes(old)
    radius = math.floor(radius)
    if len(a) == 0 or len(b) == 0 or radius < 0:
        return _empty()
    if len(a) * len(b) <= exact_limit * (exact_limit - 1) // 2:
        return _unpack(_exact(a[:, 0], b, radius, len(b), triangle=False), len(b))
    return _lsh_between(a, b, radius, seed, tables, bits)


def connected_groups(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the graph on ``n`` nodes with edges ``(i[e], j[e])``.

    Returns one label per node, ``0 .. g-1``, numbered in the order of each group's smallest
    member (node 0 is always in group 0; singletons are their own groups).
    """
    i = np.asarray(i, dtype=np.int64).ravel()
    j = np.asarray(j, dtype=np.int64).ravel()
    if i.shape != j.shape:
        raise ValueError("i and j must have the same length")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise ValueError("edge endpoint out of range")
    try:
        from scipy.sparse import coo_array
        from scipy.sparse.csgraph import connected_components
    except ImportError:  # pragma: no cover - scipy is optional
        labels = _union_find(n, i, j)
    else:
        graph = coo_array((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
        labels = connected_components(graph, directed=False)[1].astype(np.int64)
    return _relabel(labels)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _as_hashes(hashes: np.ndarray) -> np.ndarray:
    h = np.asarray(hashes)
    if h.ndim != 3 or h.shape[1:] != (VARIANTS, WORDS):
        raise ValueError(f"hashes must have shape (n, {VARIANTS}, {WORDS}), got {h.shape}")
    if h.dtype == np.int64:
        h = h.view(np.uint64)
    if h.dtype != np.uint64:
        raise ValueError(f"hashes must be uint64, got {h.dtype}")
    return np.ascontiguousarray(h)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    return z, z.copy(), z.copy()


def _pack(code: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Pair code ``i * m + j`` and distance (<= 256) in one int64, so one plain sort orders pairs."""
    return (code << _DIST_BITS) | d


def _unpack(packed: np.ndarray, m: int, dedupe: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort packed pairs (in place, consumed) and split them into (i, j, d); ``dedupe`` drops
    repeats (a pair found twice carries the same exact distance, so repeats are equal values)."""
    packed.sort()
    if dedupe and len(packed):
        first = np.ones(len(packed), dtype=bool)
        np.not_equal(packed[1:], packed[:-1], out=first[1:])
        packed = packed[first]
    d = packed & ((1 << _DIST_BITS) - 1)
    packed >>= _DIST_BITS
    i = packed // m
    np.remainder(packed, m, out=packed)
    return i, packed, d


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber labels in order of first appearance (= smallest member)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def _union_find(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Min-label propagation with pointer jumping (numpy only): labels[x] = smallest node reachable."""
    labels = np.arange(n, dtype=np.int64)
    while True:
        lo = np.minimum(labels[i], labels[j])
        new = labels.copy()
        np.minimum.at(new, labels[i], lo)
        np.minimum.at(new, labels[j], lo)
        while True:  # pointer jumping: follow labels to their roots
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            return labels
        labels = new


def _signs(h: np.ndarray) -> np.ndarray:
    """(..., 4) uint64 -> (..., 256) float32 of +-1, one per bit (a fixed bit order)."""
    bits = np.unpackbits(np.ascontiguousarray(h).view(np.uint8), axis=-1)
    out = bits.astype(np.float32)
    out *= 2
    out -= 1
    return out


def _exact(queries: np.ndarray, targets: np.ndarray, radius: int, stride: int, triangle: bool,
           q_ids: np.ndarray | None = None, t_ids: np.ndarray | None = None) -> np.ndarray:
    """Pairs (q, t) with min_v Hamming(queries[q], targets[t, v]) <= radius, exactly, packed
    (unsorted) as ``_pack(q_ids[q] * stride + t_ids[t], d)`` (ids default to the positions).

    ``triangle``: queries are targets[:, 0] and only q < t is wanted.
    """
    nq, nt = len(queries), len(targets)
    threshold = BITS - 2 * radius  # Hamming <= r  <=>  dot of +-1 vectors >= 256 - 2r
    out = []
    upper = np.triu(np.ones((_BLOCK, _BLOCK), dtype=bool), k=1) if triangle else None
    for u in range(0, nt, _BLOCK):
        e = min(u + _BLOCK, nt)
        m = e - u
        # Variant-major rows (v, t) so the min over variants is a max over a middle axis.
        tile = _signs(targets[u:e].transpose(1, 0, 2)).reshape(VARIANTS * m, BITS)
        stop = min(e, nq) if triangle else nq
        for s in range(0, stop, _BLOCK):
            f = min(s + _BLOCK, stop)
            dots = _signs(queries[s:f]) @ tile.T
            best = dots.reshape(f - s, VARIANTS, m).max(axis=1)
            hit = best >= threshold
            if triangle and s == u:
                hit &= upper[: f - s, :m]
            qi, tj = np.nonzero(hit)
            if len(qi):
                d = ((BITS - best[qi, tj]) / 2).round().astype(np.int64)
                qi = qi + s if q_ids is None else q_ids[qi + s]
                tj = tj + u if t_ids is None else t_ids[tj + u]
                out.append(_pack(qi.astype(np.int64) * stride + tj, d))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _min_distance(q: np.ndarray, t: np.ndarray, qi: np.ndarray, tj: np.ndarray) -> np.ndarray:
    """min_v Hamming(q[qi, 0], t[tj, v]) for paired index arrays, in bounded chunks."""
    out = np.empty(len(qi), dtype=np.int64)
    for s in range(0, len(qi), _VERIFY):
        x = np.take(t, tj[s:s + _VERIFY], axis=0)
        x ^= np.take(q[:, 0], qi[s:s + _VERIFY], axis=0)[:, None, :]
        d = _popsum(x)
        best = d[:, 0].copy()
        for v in range(1, VARIANTS):
            np.minimum(best, d[:, v], out=best)
        out[s:s + _VERIFY] = best
    return out


def _finish(codes: np.ndarray, m: int, q: np.ndarray, t: np.ndarray, radius: int,
            exact: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score LSH survivors ``codes`` (= i * m + j), merge the packed pairs found exactly, sort,
    dedupe."""
    d = _min_distance(q, t, codes // m, codes % m)
    keep = d <= radius
    packed = _pack(codes[keep], d[keep])
    if exact:
        packed = np.concatenate([packed, *exact])
        exact.clear()  # free the parts before the sort
    return _unpack(packed, m, dedupe=True)


def _tables(seed: int, tables: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per table: the word masks of ``bits`` positions drawn with replacement, and odd multipliers."""
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, BITS, size=(tables, bits))
    masks = np.zeros((tables, WORDS), dtype=np.uint64)
    for t in range(tables):
        for p in positions[t]:
            masks[t, p // 64] |= np.uint64(1) << np.uint64(p % 64)
    mult = rng.integers(0, 2**64, size=(tables, WORDS), dtype=np.uint64, endpoint=False) | np.uint64(1)
    return masks, mult


class _Join:
    """Bit-sampling LSH tables over packed entries (one 256-bit hash per row of ``rows``).

    Each table keys every entry by a multiply-xor hash of its masked words (equal sampled bits ->
    equal key; unequal -> equal with probability ~2^-(64 - index bits), which only adds a
    candidate), packs key (high bits) and entry index (low bits) into one uint64 and sorts, so
    buckets become runs, ordered by entry index within a run.
    """

    def __init__(self, rows: np.ndarray, radius: int):
        self.rows = rows
        self.columns = [np.ascontiguousarray(rows[:, w]) for w in range(WORDS)]
        self.radius = radius
        self.size = len(rows)
        self.index_bits = max(1, int(self.size - 1).bit_length())
        self.index_mask = np.uint64((1 << self.index_bits) - 1)
        self.key_mask = ~self.index_mask
        self.index = np.arange(self.size, dtype=np.uint64)

    def sorted_table(self, mask: np.ndarray, mult: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(entry index in sorted order, run starts, run ends) for one table."""
        acc = np.zeros(self.size, dtype=np.uint64)
        tmp = np.empty(self.size, dtype=np.uint64)
        empty = True
        for w in range(WORDS):
            if mask[w]:
                np.bitwise_and(self.columns[w], mask[w], out=acc if empty else tmp)
                if empty:
                    acc *= mult[w]
                    empty = False
                else:
                    tmp *= mult[w]
                    acc ^= tmp
        acc &= self.key_mask
        acc |= self.index
        acc.sort()
        np.bitwise_and(acc, self.key_mask, out=tmp)
        breaks = np.flatnonzero(tmp[1:] != tmp[:-1]) + 1
        acc &= self.index_mask
        idx = acc.view(np.int64)  # indices < 2^63
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [self.size]))
        return idx, starts, ends

    def close(self, q_entries: np.ndarray, counts: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates within the radius: query entry ``q_entries[k]`` repeated ``counts[k]`` times
        against the target entries ``te``. Returns the kept (query entries, target entries)."""
        x = np.repeat(np.take(self.rows, q_entries, axis=0), counts, axis=0)
        x ^= np.take(self.rows, te, axis=0)
        pop = np.bitwise_count(x)
        d = pop[:, 0].astype(np.uint16)
        for w in range(1, WORDS):
            d += pop[:, w]
        kept = np.flatnonzero(d <= self.radius)
        owner = np.searchsorted(np.cumsum(counts), kept, side="right")
        return q_entries[owner], te[kept]


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges [starts[k], starts[k] + counts[k])."""
    total = int(counts.sum())
    offsets = np.arange(total, dtype=np.int64)
    offsets -= np.repeat(np.cumsum(counts) - counts, counts)
    offsets += np.repeat(starts, counts)
    return offsets


def _chunks(counts: np.ndarray, budget: int):
    """Slices of ``counts`` whose sums stay near ``budget`` (one item may exceed it alone)."""
    bounds = np.cumsum(counts)
    s = 0
    while s < len(counts):
        base = bounds[s - 1] if s else 0
        f = max(s + 1, int(np.searchsorted(bounds, base + budget, side="right")))
        yield slice(s, f)
        s = f


def _run_join(join: _Join, is_query, spans, code, heavy_nodes, masks, mults):
    """Drive all tables: return accepted candidate codes and the edges linking heavy-bucket members.

    ``is_query(idx)`` -> bool mask over sorted entries; ``spans(idx, starts, ends, qpos, run)`` ->
    (first sorted position, count) of each query's targets; ``code(qe, te)`` -> (pair code, keep
    mask); ``heavy_nodes(entries)`` -> graph node per entry.
    """
    accepted, pending, link_a, link_b = [], 0, [], []
    for mask, mult in zip(masks, mults, strict=True):
        idx, starts, ends = join.sorted_table(mask, mult)
        qpos = np.flatnonzero(is_query(idx))
        run = np.searchsorted(starts, qpos, side="right") - 1
        first, counts = spans(idx, starts, ends, qpos, run)
        heavy = np.bincount(run, weights=counts, minlength=len(starts)) > HEAVY_BUCKET
        if heavy.any():
            hr = np.flatnonzero(heavy)
            sizes = ends[hr] - starts[hr]
            members = heavy_nodes(idx[_expand(starts[hr], sizes)])
            link_a.append(np.repeat(members[np.cumsum(sizes) - sizes], sizes))
            link_b.append(members)
            if sum(map(len, link_b)) > _LINKS:  # the same giant bucket recurs in every table
                link_a, link_b = _forest(link_a, link_b)
        live = (counts > 0) & ~heavy[run]
        qpos, first, counts = qpos[live], first[live], counts[live]
        for part in _chunks(counts, _CHUNK):
            c = counts[part]
            qe, te = join.close(idx[qpos[part]], c, idx[_expand(first[part], c)])
            codes, keep = code(qe, te)
            hits = codes[keep]
            if len(hits):
                accepted.append(hits)
                pending += len(hits)
        if pending > _DEDUPE:
            accepted = [_unique(np.concatenate(accepted))]
            pending = len(accepted[0])
    codes = _unique(np.concatenate(accepted)) if accepted else np.zeros(0, dtype=np.int64)
    return codes, (link_a, link_b)


def _link_groups(link_a: list[np.ndarray], link_b: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct nodes, group label per node) of the graph with edges link_a[k] - link_b[k]."""
    a, b = np.concatenate(link_a), np.concatenate(link_b)
    nodes = _unique(np.concatenate((a, b)))
    return nodes, connected_groups(len(nodes), np.searchsorted(nodes, a), np.searchsorted(nodes, b))


def _forest(link_a: list[np.ndarray], link_b: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The same grouping with one edge per node (to its group's smallest node): O(distinct nodes)."""
    nodes, labels = _link_groups(link_a, link_b)
    roots = np.full(labels.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(roots, labels, nodes)
    return [roots[labels]], [nodes]


def _heavy_components(links: tuple[list[np.ndarray], list[np.ndarray]]) -> list[np.ndarray]:
    """Node sets (sorted) of the connected groups formed by heavy-bucket links, size >= 2."""
    if not links[0]:
        return []
    nodes, labels = _link_groups(*links)
    order = np.argsort(labels, kind="stable")
    groups = np.split(nodes[order], np.cumsum(np.bincount(labels))[:-1])
    return [g for g in groups if len(g) >= 2]


def _lsh_within(h: np.ndarray, radius: int, seed: int, tables: int, bits: int):
    n = len(h)
    join = _Join(h.reshape(n * VARIANTS, WORDS), radius)
    masks, mults = _tables(seed, tables, bits)

    def is_query(idx):
        return (idx & (VARIANTS - 1)) == 0

    def spans(idx, starts, ends, qpos, run):
        # A run lists its entries by index, i.e. by image: the identity of image i meets the
        # variants of every image j > i in its bucket by looking only at the entries after it.
        return qpos + 1, ends[run] - qpos - 1

    def code(qe, te):
        qi, tj = qe >> 3, te >> 3
        return qi * n + tj, qi != tj  # qi <= tj; equal for the image's own other variants

    def heavy_nodes(entries):
        return entries >> 3

    codes, links = _run_join(join, is_query, spans, code, heavy_nodes, masks, mults)
    exact = []
    for members in _heavy_components(links):
        exact.append(_exact(h[members, 0], h[members], radius, n, True, members, members))
    return _finish(codes, n, h, h, radius, exact)


def _lsh_between(a: np.ndarray, b: np.ndarray, radius: int, seed: int, tables: int, bits: int):
    nb = len(b)
    nt = nb * VARIANTS  # entries [0, nt): old variants; [nt, nt + len(a)): new identities
    join = _Join(np.concatenate((b.reshape(nt, WORDS), a[:, 0])), radius)
    masks, mults = _tables(seed, tables, bits)

    def is_query(idx):
        return idx >= nt

    def spans(idx, starts, ends, qpos, run):
        # Old variants have the lower entry indices, so they lead each run: count them by cumsum.
        before = np.concatenate(([0], np.cumsum(idx < nt)))
        return starts[run], (before[ends] - before[starts])[run]

    def code(qe, te):
        return (qe - nt) * nb + (te >> 3), np.ones(len(qe), dtype=bool)

    def heavy_nodes(entries):
        # Graph nodes: old image j -> j, new image i -> nb + i.
        return np.where(entries < nt, entries >> 3, entries - nt + nb)

    codes, links = _run_join(join, is_query, spans, code, heavy_nodes, masks, mults)
    exact = []
    for members in _heavy_components(links):
        olds, news = members[members < nb], members[members >= nb] - nb
        if len(olds) and len(news):
            exact.append(_exact(a[news, 0], b[olds], radius, nb, False, news, olds))
    return _finish(codes, nb, a, b, radius, exact)
