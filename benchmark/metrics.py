"""The benchmark's metrics, as pure functions on embeddings.

Embedding happens elsewhere (a CLIP model for images and texts, LPIPS for perceptual distances); every function here
takes numpy arrays of embeddings, one row per image or text, and returns float64 numpy arrays or Python floats.

Every function that takes embeddings L2-normalises each row itself, so callers may pass raw CLIP outputs; each row is
divided by its largest absolute entry before its norm is taken, so rows of any finite magnitude (1e200, 1e-200,
subnormals) keep their direction. A row of zeros (no direction) or a NaN or infinite value is a ValueError naming the
argument and the row, as are empty inputs and mismatched shapes; scalar parameters must be finite numbers (positive
where a scale, integers where a count) and are refused with a ValueError naming the parameter. "cos" below means the
cosine similarity of two embeddings, i.e. the dot product of the normalised rows.

These scores are proxies measured through one embedding model: they can rank models against each other on the same
prompts, seeds and embedder, but they inherit that model's blind spots and biases and are not a substitute for the
community's own judgement.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "class_embeddings_from_templates",
    "clip_score",
    "cmmd",
    "confused_with_other",
    "copy_rate",
    "framing_margin",
    "homogeneity",
    "identify",
    "is_identified",
    "kid",
    "mean_pairwise",
    "nearest_by_distance",
    "nearest_training",
    "relevance_margin",
    "target_probability",
    "vendi_score",
]

# Above this many kernel entries, KID computes the kernel per subset instead of once for the whole sets.
_KERNEL_CACHE_ENTRIES = 2**23
# Entries of a similarity or kernel matrix held at once by nearest_training and cmmd (which work in row blocks).
_BLOCK_ENTRIES = 2**22


# --------------------------------------------------------------------------- helpers


def _first_bad_row(bad: np.ndarray) -> int:
    """Index of the first row of a boolean (rows, ...) array with any True entry."""
    return int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])


def _matrix(x, name: str) -> np.ndarray:
    """`x` as a non-empty, finite float64 (rows, dim) array; a non-finite value is refused naming its row."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dim), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} row {_first_bad_row(bad)} contains NaN or infinite values")
    return a


def _normalise_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the finite array `a` (rows, dim) scaled to unit L2 norm without overflow or underflow.

    Each row is first divided by its largest absolute entry, so the squares summed for the norm lie in [0, 1] with
    at least one equal to 1 (a row of 1e200s or of 1e-200s keeps its direction; squaring it directly would give
    inf or 0). Returns the unit rows and a boolean mask of the rows that are zero and have no direction.
    """
    peak = np.max(np.abs(a), axis=-1, keepdims=True)
    zero = peak[..., 0] == 0
    scaled = a / np.where(peak == 0, 1.0, peak)
    norms = np.linalg.norm(scaled, axis=-1, keepdims=True)
    return scaled / np.where(norms == 0, 1.0, norms), zero


def _unit(x, name: str) -> np.ndarray:
    """Rows of `x` scaled to unit L2 norm; a zero row has no direction and is an error naming the row."""
    u, zero = _normalise_rows(_matrix(x, name))
    if zero.any():
        raise ValueError(f"{name} row {_first_bad_row(zero)} has zero norm and cannot be normalised")
    return u


def _real(value, name: str, *, positive: bool = False, minimum: float | None = None) -> float:
    """A finite real scalar parameter (bools are not numbers here); positive or at least `minimum` if asked."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {value!r}")
    return v


def _integer(value, name: str, minimum: int) -> int:
    """An integer scalar parameter (Python or numpy int, not bool) of at least `minimum`."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def _same_dim(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} have different embedding dimensions: {a.shape[1]} vs {b.shape[1]}")


def _same_rows(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{names} must have one row each per sample: {a.shape[0]} vs {b.shape[0]} rows")


def _pairwise_cos(a, b, names: tuple[str, str]) -> np.ndarray:
    """(n, m) cosine similarities of every row of `a` with every row of `b`."""
    ua, ub = _unit(a, names[0]), _unit(b, names[1])
    _same_dim(ua, ub, f"{names[0]} and {names[1]}")
    return ua @ ub.T


def _rowwise_cos(a, b, names: tuple[str, str]) -> np.ndarray:
    """(n,) cosine similarity of row i of `a` with row i of `b`."""
    ua, ub = _unit(a, names[0]), _unit(b, names[1])
    _same_dim(ua, ub, f"{names[0]} and {names[1]}")
    _same_rows(ua, ub, f"{names[0]} and {names[1]}")
    return np.einsum("ij,ij->i", ua, ub)


def _block_sum(a: np.ndarray, b: np.ndarray, kernel) -> float:
    """Sum of kernel(a, b) over all row pairs, `_BLOCK_ENTRIES` entries at a time (large sets stay in memory)."""
    block = max(1, _BLOCK_ENTRIES // b.shape[0])
    return float(sum(kernel(a[i:i + block], b).sum() for i in range(0, a.shape[0], block)))


def _off_diagonal_mean(k: np.ndarray) -> float:
    m = k.shape[0]
    return float((k.sum() - np.trace(k)) / (m * (m - 1)))


def _probabilities(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty 2-D array (images, classes), got shape {p.shape}")
    return _matrix(p, "probs")


def _targets(target_index, n: int, c: int) -> np.ndarray:
    """`target_index` (one int, or one per row) as an (n,) int array within [0, c)."""
    t = np.asarray(target_index)
    if t.dtype.kind not in "iu" or t.ndim > 1:
        raise ValueError(f"target_index must be an int or a 1-D array of ints, got {target_index!r}")
    t = np.broadcast_to(t, (n,)) if t.ndim == 0 else t
    if t.shape != (n,):
        raise ValueError(f"target_index has {t.shape[0]} entries for {n} rows of probabilities")
    if np.any(t < 0) or np.any(t >= c):
        raise ValueError(f"target_index must lie in [0, {c}), got {target_index!r}")
    return t.astype(np.int64)


# --------------------------------------------------------------------------- prompt adherence


def clip_score(images, texts, weight: float = 100.0) -> np.ndarray:
    """CLIPScore of each image with its own prompt: ``weight * max(cos(image_i, text_i), 0)``, shape (n,).

    Row i of `images` is scored against row i of `texts` (n, d each; normalised here). With the default weight of 100
    this is the common "CLIP score" of text-to-image papers (0..100); Hessel et al. (2021) define CLIP-S with w = 2.5.
    Each image's cosine is clamped at 0 before any averaging (as Hessel et al. do per image); torchmetrics' CLIPScore
    instead clamps the batch mean, ``max(100 * mean(cos), 0)``, which is lower whenever some cosines are negative.

    Shows: how well the image matches the prompt's text *as CLIP reads it*. Cannot show: whether details CLIP does
    not attend to (or has biased notions of) are right; scores depend on the CLIP model, are not calibrated across
    models, and high values can come from stereotyped depictions that CLIP associates with the words.
    """
    weight = _real(weight, "weight", positive=True)
    return weight * np.maximum(_rowwise_cos(images, texts, ("images", "texts")), 0.0)


def relevance_margin(images, cultural, generic) -> np.ndarray:
    """Cultural relevance margin per image: ``cos(image_i, cultural_i) - cos(image_i, generic_i)``, shape (n,).

    `cultural` row i embeds the culture-specific description (e.g. "a wedding in Ghana"), `generic` row i the same
    description without the culture ("a wedding"); all (n, d), normalised here. Positive: the image is closer to the
    culture-specific text than to the generic one.

    Shows: whether the culture-specific words move the image towards them beyond the generic content, removing
    most of what plain prompt adherence rewards. Cannot show: that the cultural content is accurate or respectful;
    CLIP may tie the culture's name to stereotyped cues, which would raise the margin too.
    """
    return (_rowwise_cos(images, cultural, ("images", "cultural")) -
            _rowwise_cos(images, generic, ("images", "generic")))


# --------------------------------------------------------------------------- identification


def class_embeddings_from_templates(text_embeddings) -> np.ndarray:
    """Prompt-template ensembling as in CLIP's zero-shot classifier: (c, t, d) -> (c, d).

    For each class: ``normalise(mean_t(normalise(text_embeddings[class, t])))``, i.e. every template's embedding is
    normalised, the t templates are averaged and the average is normalised again. Shows/cannot show: see `identify`.
    """
    e = np.asarray(text_embeddings, dtype=np.float64)
    if e.ndim != 3 or 0 in e.shape:
        raise ValueError(f"text_embeddings must be a non-empty 3-D array (classes, templates, dim), got {e.shape}")
    bad = ~np.isfinite(e)
    if bad.any():
        c, t = np.argwhere(bad)[0][:2]
        raise ValueError(f"text_embeddings[class {c}, template {t}] contains NaN or infinite values")
    units, zero = _normalise_rows(e)
    if zero.any():
        c, t = np.argwhere(zero)[0]
        raise ValueError(f"text_embeddings[class {c}, template {t}] has zero norm and cannot be normalised")
    mean = units.mean(axis=1)
    return _unit(mean, "template-averaged class embeddings (templates cancel out)")


def identify(images, class_embeddings, logit_scale: float = 100.0) -> np.ndarray:
    """Zero-shot identification probabilities: ``softmax_c(logit_scale * cos(image_i, class_c))``, shape (n, c).

    `class_embeddings` (c, d) are one text embedding per candidate culture (see `class_embeddings_from_templates`);
    both inputs are normalised here. 100 is CLIP's learned logit scale. Use with `target_probability`,
    `is_identified` and `confused_with_other`.

    Shows: whether CLIP can tell which culture an image was prompted for, among the candidates given. Cannot show:
    correctness against cultures not in the candidate list; CLIP may identify an image from stereotyped cues (a
    flag, a costume) rather than faithful content, and probabilities depend strongly on the chosen candidate set.
    """
    logit_scale = _real(logit_scale, "logit_scale", positive=True)
    logits = logit_scale * _pairwise_cos(images, class_embeddings, ("images", "class_embeddings"))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def target_probability(probs, target_index) -> np.ndarray:
    """Probability each image gives its target class: ``probs[i, target_i]``, shape (n,).

    `target_index` is one class index for all rows or one per row.
    """
    p = _probabilities(probs)
    return p[np.arange(p.shape[0]), _targets(target_index, *p.shape)]


def is_identified(probs, target_index) -> np.ndarray:
    """Top-1 identification: ``argmax_c probs[i, c] == target_i``, shape (n,) bool (ties go to the lowest index)."""
    p = _probabilities(probs)
    return np.argmax(p, axis=1) == _targets(target_index, *p.shape)


def confused_with_other(probs, target_index) -> np.ndarray:
    """Confusion proxy: ``argmax_c probs[i, c] != target_i``, shape (n,) bool; its mean is the confusion rate.

    Shows: how often an image for one culture reads, to CLIP, as another candidate culture. Cannot show: which
    confusions are harmful; inspect the argmax classes for that.
    """
    return ~is_identified(probs, target_index)


# --------------------------------------------------------------------------- stereotype proxies


def framing_margin(images, degrading, neutral) -> np.ndarray:
    """Stereotype-framing margin: ``mean_k cos(image_i, degrading_k) - mean_k cos(image_i, neutral_k)``, shape (n,).

    `degrading` (k1, d) embeds texts with a degrading or stereotyped framing of the subject (e.g. "a poor, dirty
    village"), `neutral` (k2, d) neutral framings of the same subject; all normalised here.

    Shows: whether images lean towards the degrading framings more than the neutral ones, as CLIP reads them; useful
    as a relative comparison between models on the same prompts. Cannot show: harm that the chosen texts do not
    name, or harm CLIP does not perceive; CLIP itself carries such associations, and the value depends on the
    wording of both text lists.
    """
    return (_pairwise_cos(images, degrading, ("images", "degrading")).mean(axis=1) -
            _pairwise_cos(images, neutral, ("images", "neutral")).mean(axis=1))


def homogeneity(images) -> float:
    """Mean pairwise cosine similarity among one prompt's images: ``mean_{i != j} cos(image_i, image_j)``.

    `images` (m, d), normalised here; NaN when m < 2. High values mean low diversity (1 = all identical).

    Shows: collapse of a model onto one depiction for a prompt (a homogenised, possibly stereotyped view). Cannot
    show: which depiction it collapsed to or whether variety is appropriate; CLIP ignores some visual differences.
    """
    u = _unit(images, "images")
    if u.shape[0] < 2:
        return math.nan
    return _off_diagonal_mean(u @ u.T)


# --------------------------------------------------------------------------- distribution distances


def cmmd(x, y, sigma: float = 10.0, scale: float = 1000.0, unbiased: bool = False) -> float:
    """CMMD (Jayasumana et al., CVPR 2024, "Rethinking FID"): ``scale * MMD^2`` with a Gaussian RBF kernel.

    ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))`` on L2-normalised embeddings (normalised here, as the reference
    implementation's CLIP embedder does); x (n, d) and y (m, d) may differ in size; kernel sums are accumulated in
    row blocks, so large reference sets fit in memory. The default is the biased (V-statistic) estimator that the
    reference implementation (google-research cmmd/distance.py) computes, ``mean(K_xx) + mean(K_yy) - 2 mean(K_xy)``
    with the diagonals included, so CMMD of a set with itself is exactly 0 and values are never negative (up to
    round-off). ``unbiased=True`` gives the U-statistic instead (diagonals of K_xx, K_yy left
    out; may be slightly negative; needs n, m >= 2). sigma = 10 and scale = 1000 are the paper's constants.

    Shows: how far the model's images are, as a distribution in CLIP space, from a reference set such as the
    community's own images; smaller is closer. Cannot show: which images or aspects differ; values are comparable
    only with the same embedding model, reference set and comparable sample sizes (the biased estimator grows as
    samples shrink), and CLIP space does not see everything that matters to the community.
    """
    sigma = _real(sigma, "sigma", positive=True)
    scale = _real(scale, "scale", positive=True)
    if not isinstance(unbiased, bool | np.bool_):
        raise ValueError(f"unbiased must be True or False, got {unbiased!r}")
    ux, uy = _unit(x, "x"), _unit(y, "y")
    _same_dim(ux, uy, "x and y")

    def gaussian(cos: np.ndarray) -> np.ndarray:
        # ||a - b||^2 = 2 - 2 cos for unit rows; divided by sigma twice, not by sigma^2, which underflows to 0
        with np.errstate(over="ignore"):  # a tiny sigma: distance / sigma^2 = inf, and exp(-inf) = 0 as it should
            return np.exp(-(np.maximum(2.0 - 2.0 * cos, 0.0) / sigma / sigma) / 2.0)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return gaussian(a @ b.T)

    n, m = ux.shape[0], uy.shape[0]
    s_xx, s_yy, s_xy = _block_sum(ux, ux, kernel), _block_sum(uy, uy, kernel), _block_sum(ux, uy, kernel)
    if unbiased:
        if n < 2 or m < 2:
            raise ValueError("the unbiased CMMD estimator needs at least 2 rows in x and in y")
        diag_x = gaussian(np.einsum("ij,ij->i", ux, ux)).sum()
        diag_y = gaussian(np.einsum("ij,ij->i", uy, uy)).sum()
        value = (s_xx - diag_x) / (n * (n - 1)) + (s_yy - diag_y) / (m * (m - 1)) - 2.0 * s_xy / (n * m)
    else:
        value = s_xx / (n * n) + s_yy / (m * m) - 2.0 * s_xy / (n * m)
    value = float(scale * value)
    if not math.isfinite(value):
        raise ValueError(f"CMMD overflowed to {value} with scale={scale}; use a smaller scale")
    return value


def _poly_kernel(a: np.ndarray, b: np.ndarray, gamma: float, coef0: float, degree: int) -> np.ndarray:
    return (gamma * (a @ b.T) + coef0) ** degree


def _unbiased_mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    return _off_diagonal_mean(k_xx) + _off_diagonal_mean(k_yy) - 2.0 * float(k_xy.mean())


def kid(x, y, subsets: int = 100, subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018) on CLIP features instead of Inception ones: ``(mean, std)`` over random subsets.

    Each of `subsets` draws s = min(subset_size, n, m) rows of x (n, d) and of y (m, d) without replacement (numpy
    generator seeded with `seed`) and computes the unbiased MMD^2 with the polynomial kernel
    ``k(a, b) = (gamma * a.b + coef0)^degree``, gamma = 1/d by default::

        sum_{i != j} k(x_i, x_j) / (s(s-1)) + sum_{i != j} k(y_i, y_j) / (s(s-1)) - 2 sum_{i,j} k(x_i, y_j) / s^2

    as torchmetrics and clean-fid do; std is the population std of the subset values (as torchmetrics). Rows are
    L2-normalised here, so with gamma = 1/d the kernel is close to linear and values are small.

    Shows: distance of the model's image distribution from a reference set, unbiased so a same-distribution sample
    scores about 0 (it can be slightly negative). Cannot show: which aspects differ. Equal sample sizes across the
    compared models are the caller's job (subset size and variance depend on them), and values are only comparable
    within one feature extractor (CLIP-KID is not Inception-KID).
    """
    subsets = _integer(subsets, "subsets", 1)
    subset_size = _integer(subset_size, "subset_size", 2)
    degree = _integer(degree, "degree", 1)
    g = None if gamma is None else _real(gamma, "gamma", positive=True)
    coef0 = _real(coef0, "coef0", minimum=0.0)
    seed = _integer(seed, "seed", 0)
    ux, uy = _unit(x, "x"), _unit(y, "y")
    _same_dim(ux, uy, "x and y")
    n, m = ux.shape[0], uy.shape[0]
    s = min(subset_size, n, m)
    if s < 2:
        raise ValueError(f"KID needs subsets of at least 2 rows; got n={n}, m={m}, subset_size={subset_size}")
    g = 1.0 / ux.shape[1] if g is None else g
    # an overflowing kernel (huge gamma or coef0) becomes inf or nan here and is refused below, without warnings
    with np.errstate(over="ignore", invalid="ignore"):
        rng = np.random.default_rng(seed)
        cached = n * n + m * m + n * m <= _KERNEL_CACHE_ENTRIES
        if cached:
            full_xx, full_yy = _poly_kernel(ux, ux, g, coef0, degree), _poly_kernel(uy, uy, g, coef0, degree)
            full_xy = _poly_kernel(ux, uy, g, coef0, degree)
        values = np.empty(subsets)
        for k in range(subsets):
            ix, iy = rng.choice(n, s, replace=False), rng.choice(m, s, replace=False)
            if cached:
                kxx, kyy, kxy = full_xx[np.ix_(ix, ix)], full_yy[np.ix_(iy, iy)], full_xy[np.ix_(ix, iy)]
            else:
                a, b = ux[ix], uy[iy]
                kxx, kyy = _poly_kernel(a, a, g, coef0, degree), _poly_kernel(b, b, g, coef0, degree)
                kxy = _poly_kernel(a, b, g, coef0, degree)
            values[k] = _unbiased_mmd2(kxx, kyy, kxy)
    mean, std = float(values.mean()), float(values.std())
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError(f"KID overflowed (mean {mean}, std {std}) with gamma={g}, coef0={coef0}, degree={degree}: "
                         "the kernel (gamma * a.b + coef0)^degree is too large for float64")
    return mean, std


# --------------------------------------------------------------------------- diversity


def vendi_score(x) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine-similarity kernel: an effective number of distinct samples.

    ``K_ij = cos(x_i, x_j)`` for x (m, d) (normalised here); lambda = eigenvalues of K / m (they sum to 1; tiny
    negative ones from round-off are clipped to 0); ``VS = exp(-sum_i lambda_i log lambda_i)`` with 0 log 0 = 0.
    m identical samples give 1, m mutually orthogonal ones give m.

    Shows: diversity of one prompt's images in CLIP space, between 1 and min(m, d). Cannot show: whether the
    variety is culturally meaningful, or differences CLIP does not encode; compare only equal m across models.
    """
    u = _unit(x, "x")
    lam = np.clip(np.linalg.eigvalsh(u @ u.T / u.shape[0]), 0.0, None)
    lam = lam[lam > 0]
    return float(np.exp(-np.sum(lam * np.log(lam))))


def mean_pairwise(distance_matrix) -> float:
    """Mean of a pairwise distance matrix over distinct pairs: ``mean_{i < j} D_ij`` (strict upper triangle).

    For mean pairwise LPIPS among one prompt's images (computed elsewhere); D is (m, m), NaN when m < 2. Only the
    upper triangle is read, so D need not be exactly symmetric. Higher = more perceptually diverse; LPIPS sees
    low-level appearance, not cultural content.
    """
    d = np.asarray(distance_matrix, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance_matrix must be square (m, m), got shape {d.shape}")
    if d.shape[0] < 2:
        return math.nan
    upper = np.triu(np.ones(d.shape, dtype=bool), k=1)
    bad = upper & ~np.isfinite(d)
    if bad.any():
        raise ValueError(f"distance_matrix row {_first_bad_row(bad)} contains NaN or infinite values above the "
                         "diagonal")
    return float(d[upper].mean())


# --------------------------------------------------------------------------- memorisation


def nearest_training(generated, training) -> tuple[np.ndarray, np.ndarray]:
    """Nearest training image per generated image: ``(max_j cos(g_i, t_j), argmax_j)``, shapes (n,) and (n,) int.

    generated (n, d) and training (m, d) are normalised here; computed in blocks, so large training sets are fine.

    Shows: how close each generated image comes to some fine-tuning image in CLIP space; near 1 suggests a copy.
    Cannot show: copying of parts, or of details CLIP ignores; two different photos of the same place can also be
    close. Inspect the pairs; see `copy_rate` for a share above a threshold.
    """
    ug, ut = _unit(generated, "generated"), _unit(training, "training")
    _same_dim(ug, ut, "generated and training")
    block = max(1, _BLOCK_ENTRIES // ut.shape[0])
    best = np.empty(ug.shape[0])
    index = np.empty(ug.shape[0], dtype=np.int64)
    for start in range(0, ug.shape[0], block):
        sims = ug[start:start + block] @ ut.T
        index[start:start + block] = np.argmax(sims, axis=1)
        best[start:start + block] = sims[np.arange(sims.shape[0]), index[start:start + block]]
    return best, index


def copy_rate(similarities, threshold: float) -> float:
    """Share of generated images whose nearest-training similarity is at or above `threshold`: ``mean(s_i >= t)``.

    The threshold is the caller's choice and must be stated with the result; it depends on the embedding model.
    """
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] == 0:
        raise ValueError(f"similarities must be a non-empty 1-D array, got shape {s.shape}")
    threshold = _real(threshold, "threshold")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"similarities entry {int(bad[0])} is NaN or infinite")
    return float(np.mean(s >= threshold))


def nearest_by_distance(distances) -> tuple[np.ndarray, np.ndarray]:
    """Nearest training image by a distance (e.g. LPIPS): ``(min_j D_ij, argmin_j D_ij)`` for D (n, m).

    Small = perceptually close to a training image; the same caveats as `nearest_training` apply.
    """
    d = _matrix(distances, "distances")
    index = np.argmin(d, axis=1)
    return d[np.arange(d.shape[0]), index], index
