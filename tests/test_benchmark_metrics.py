"""Benchmark metrics against hand computations, naive loop implementations and planted truths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from benchmark import metrics as M


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def naive_cos(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def basis(d: int, *indices: int) -> np.ndarray:
    return np.eye(d)[list(indices)]


# --------------------------------------------------------------------------- CLIPScore and relevance


def test_clip_score_known_values():
    e = np.eye(3)
    sixty = [0.5, math.sqrt(3) / 2, 0.0]  # cos 60 degrees with e0 = 0.5
    images = np.array([e[0], e[0], e[0], e[0], 3.0 * e[1]])
    texts = np.array([7.0 * e[0], -e[0], sixty, e[2], e[1]])
    score = M.clip_score(images, texts)
    assert score.dtype == np.float64 and score.shape == (5,)
    np.testing.assert_allclose(score, [100.0, 0.0, 50.0, 0.0, 100.0], atol=1e-12)
    np.testing.assert_allclose(M.clip_score(images[:1], texts[:1], weight=2.5), [2.5])


def test_clip_score_matches_torch_cosine_similarity():
    torch = pytest.importorskip("torch", reason="the peer cosine is torch.nn.functional.cosine_similarity")
    rng = np.random.default_rng(1)
    images, texts = rng.normal(size=(6, 10)), rng.normal(size=(6, 10)).astype(np.float32)
    cos = torch.nn.functional.cosine_similarity(torch.from_numpy(images), torch.from_numpy(texts).double(), dim=1)
    np.testing.assert_allclose(M.clip_score(images, texts), 100 * np.maximum(cos.numpy(), 0), atol=1e-6)


def test_relevance_margin_by_hand_and_sign():
    e = np.eye(3)
    images = np.array([e[0], e[0] + e[1]])
    cultural = np.array([e[0], e[0] + e[1]])
    generic = np.array([e[0] + e[1], e[0]])
    # image e0: cos(e0, e0) - cos(e0, e0+e1) = 1 - 1/sqrt2; image e0+e1: 1 - 1/sqrt2 as well
    np.testing.assert_allclose(M.relevance_margin(images, cultural, generic), [1 - 1 / math.sqrt(2)] * 2)
    # swapping the descriptions flips the sign
    np.testing.assert_allclose(M.relevance_margin(images, generic, cultural), [1 / math.sqrt(2) - 1] * 2)
    rng = np.random.default_rng(2)
    x, c, g = rng.normal(size=(3, 4, 5))
    expected = [naive_cos(x[i], c[i]) - naive_cos(x[i], g[i]) for i in range(4)]
    np.testing.assert_allclose(M.relevance_margin(x, c, g), expected, atol=1e-12)


# --------------------------------------------------------------------------- identification


def naive_softmax(row):
    exps = [math.exp(v - max(row)) for v in row]
    return [v / sum(exps) for v in exps]


def test_identify_matches_a_naive_softmax_and_picks_the_planted_class():
    rng = np.random.default_rng(3)
    classes = rng.normal(size=(4, 8))
    images = 5.0 * classes[[2, 0, 3]] + 0.3 * rng.normal(size=(3, 8))  # planted: classes 2, 0, 3
    probs = M.identify(images, classes, logit_scale=10.0)
    expected = [naive_softmax([10.0 * naive_cos(img, cls) for cls in classes]) for img in images]
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert list(np.argmax(M.identify(images, classes), axis=1)) == [2, 0, 3]
    # a huge logit scale does not overflow
    assert np.all(np.isfinite(M.identify(images, classes, logit_scale=1e6)))


def test_identify_hand_value():
    e = np.eye(2)
    probs = M.identify(e[[0]], e, logit_scale=2.0)  # cos 1 and 0: softmax(2, 0)
    np.testing.assert_allclose(probs, [[math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]])


def test_class_embeddings_from_templates_by_hand():
    e = np.eye(3)
    # class 0: templates 2*e0 and e1 -> normalised e0, e1 -> mean (e0+e1)/2 -> renormalised (e0+e1)/sqrt2
    # class 1: templates e2 and 5*e2 -> e2
    emb = np.array([[2 * e[0], e[1]], [e[2], 5 * e[2]]])
    out = M.class_embeddings_from_templates(emb)
    np.testing.assert_allclose(out, [[1 / math.sqrt(2), 1 / math.sqrt(2), 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    with pytest.raises(ValueError, match="3-D"):
        M.class_embeddings_from_templates(e)
    with pytest.raises(ValueError, match="cancel"):
        M.class_embeddings_from_templates(np.array([[e[0], -e[0]]]))


def test_accuracy_helpers_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(M.target_probability(probs, 0), [0.7, 0.1, 0.4])
    np.testing.assert_allclose(M.target_probability(probs, [0, 2, 1]), [0.7, 0.6, 0.4])
    assert M.is_identified(probs, 0).tolist() == [True, False, True]  # a tie goes to the lowest index
    assert M.is_identified(probs, np.array([0, 2, 1])).tolist() == [True, True, False]
    assert M.confused_with_other(probs, 0).tolist() == [False, True, False]
    assert M.confused_with_other(probs, 0).dtype == bool
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        M.is_identified(probs, 3)
    with pytest.raises(ValueError, match="2 entries for 3 rows"):
        M.target_probability(probs, [0, 1])
    with pytest.raises(ValueError, match="int"):
        M.target_probability(probs, 0.5)


# --------------------------------------------------------------------------- stereotype proxies


def test_framing_margin_against_loops():
    rng = np.random.default_rng(4)
    images, degrading, neutral = rng.normal(size=(3, 6)), rng.normal(size=(2, 6)), rng.normal(size=(4, 6))
    expected = [sum(naive_cos(x, t) for t in degrading) / 2 - sum(naive_cos(x, t) for t in neutral) / 4
                for x in images]
    np.testing.assert_allclose(M.framing_margin(images, degrading, neutral), expected, atol=1e-12)
    e = np.eye(3)
    np.testing.assert_allclose(M.framing_margin(e[[0]], e[[0]], e[[1, 2]]), [1.0])


def test_homogeneity_known_values():
    e = np.eye(3)
    assert M.homogeneity(np.array([e[0], 2 * e[0], 9 * e[0]])) == pytest.approx(1.0)
    assert M.homogeneity(e) == pytest.approx(0.0)
    # three images e0, e0, e0+e1: distinct pairs have cos 1, 1/sqrt2, 1/sqrt2
    x = np.array([e[0], e[0], e[0] + e[1]])
    expected = (1 + 1 / math.sqrt(2) + 1 / math.sqrt(2)) / 3
    assert M.homogeneity(x) == pytest.approx(expected)
    rng = np.random.default_rng(5)
    y = rng.normal(size=(5, 4))
    pairs = [naive_cos(y[i], y[j]) for i, j in itertools.permutations(range(5), 2)]
    assert M.homogeneity(y) == pytest.approx(sum(pairs) / len(pairs))
    assert math.isnan(M.homogeneity(e[[0]]))


# --------------------------------------------------------------------------- CMMD and KID


def naive_mmd(x, y, kernel, unbiased: bool) -> float:
    x, y = unit(x), unit(y)

    def mean(a, b, skip_diagonal):
        values = [kernel(a[i], b[j]) for i in range(len(a)) for j in range(len(b)) if not (skip_diagonal and i == j)]
        return sum(values) / len(values)

    return mean(x, x, unbiased) + mean(y, y, unbiased) - 2 * mean(x, y, False)


def rbf(sigma):
    return lambda a, b: math.exp(-sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) / (2 * sigma**2))


def poly(gamma, coef0=1.0, degree=3):
    return lambda a, b: (gamma * sum(p * q for p, q in zip(a, b, strict=True)) + coef0) ** degree


def clouds(seed: int, n: int, shift: float = 0.0, d: int = 8) -> np.ndarray:
    """A Gaussian cloud around 3*e0, moved by `shift` along e1."""
    rng = np.random.default_rng(seed)
    centre = 3.0 * np.eye(d)[0] + shift * np.eye(d)[1]
    return centre + rng.normal(size=(n, d))


@pytest.mark.parametrize("block_entries", [2**22, 10])  # whole matrices, and blocks of one or two rows
def test_cmmd_against_a_naive_loop(monkeypatch, block_entries):
    monkeypatch.setattr(M, "_BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(9, 5)) + 0.5
    for sigma in (10.0, 0.7):
        for unbiased in (False, True):
            expected = 1000 * naive_mmd(x, y, rbf(sigma), unbiased)
            assert M.cmmd(x, y, sigma=sigma, unbiased=unbiased) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert M.cmmd(x, y, scale=1.0) == pytest.approx(M.cmmd(x, y) / 1000)


def test_cmmd_of_a_set_with_itself():
    x = clouds(7, 30)
    assert M.cmmd(x, x) == pytest.approx(0.0, abs=1e-12)  # the reference (biased) estimator: exactly 0
    assert M.cmmd(x, 4.0 * x) == pytest.approx(0.0, abs=1e-12)  # scale does not matter: rows are normalised
    # the unbiased estimator of a set with itself is 2 * (mean off-diagonal kernel - mean kernel) < 0
    u = unit(x)
    k = np.exp(-((u[:, None] - u[None]) ** 2).sum(-1) / 200)
    off = (k.sum() - np.trace(k)) / (30 * 29)
    assert M.cmmd(x, x, unbiased=True) == pytest.approx(1000 * 2 * (off - k.mean()))
    assert M.cmmd(x, x, unbiased=True) < 0


def test_cmmd_and_kid_larger_for_a_shifted_distribution():
    reference, same, shifted = clouds(8, 200), clouds(9, 200), clouds(10, 200, shift=1.5)
    assert 0 <= M.cmmd(reference, same) < M.cmmd(reference, shifted) / 5
    same_kid, same_std = M.kid(reference, same, subsets=20, subset_size=100)
    shifted_kid, shifted_std = M.kid(reference, shifted, subsets=20, subset_size=100)
    assert shifted_kid > 0 and abs(same_kid) < shifted_kid / 5
    assert shifted_kid > 3 * shifted_std and same_std > 0


def test_kid_full_subsets_against_a_naive_loop():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.4
    expected = naive_mmd(x, y, poly(1 / 5), unbiased=True)
    mean, std = M.kid(x, y, subsets=5, subset_size=1000)  # every subset is the whole of both sets, reordered
    assert mean == pytest.approx(expected, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)
    expected = naive_mmd(x, y, poly(0.5, coef0=0.2, degree=2), unbiased=True)
    assert M.kid(x, y, subsets=2, degree=2, gamma=0.5, coef0=0.2)[0] == pytest.approx(expected, rel=1e-9)


def test_kid_of_a_set_with_itself_is_slightly_negative_not_zero():
    x = clouds(12, 40)
    u = unit(x)
    k = (u @ u.T / u.shape[1] + 1) ** 3
    off = (k.sum() - np.trace(k)) / (40 * 39)
    mean, _ = M.kid(x, x, subsets=3)
    assert mean == pytest.approx(2 * (off - k.mean()), rel=1e-9)
    assert mean < 0  # the diagonal k(a, a) is the largest kernel value and the unbiased terms leave it out


def test_kid_subsets_are_seeded_and_the_cache_does_not_change_results(monkeypatch):
    x, y = clouds(13, 50), clouds(14, 60, shift=0.5)
    first = M.kid(x, y, subsets=10, subset_size=20, seed=3)
    assert M.kid(x, y, subsets=10, subset_size=20, seed=3) == first
    assert M.kid(x, y, subsets=10, subset_size=20, seed=4) != first
    monkeypatch.setattr(M, "_KERNEL_CACHE_ENTRIES", 0)
    uncached = M.kid(x, y, subsets=10, subset_size=20, seed=3)
    np.testing.assert_allclose(uncached, first, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- diversity


def test_vendi_known_values():
    e = np.eye(6)
    assert M.vendi_score(np.repeat(e[[0]], 5, axis=0) * np.arange(1, 6)[:, None]) == pytest.approx(1.0)
    assert M.vendi_score(e[:4]) == pytest.approx(4.0)
    assert M.vendi_score(e) == pytest.approx(6.0)
    assert M.vendi_score(np.array([e[0], e[0], e[0], e[1], e[1], e[1]])) == pytest.approx(2.0)
    assert M.vendi_score(e[[2]]) == pytest.approx(1.0)
    # two equal clusters at cosine c: eigenvalues of K/m are (1 + c)/2 and (1 - c)/2
    c = 0.6
    x = np.array([e[0], e[0], [c, math.sqrt(1 - c * c), 0, 0, 0, 0], [c, math.sqrt(1 - c * c), 0, 0, 0, 0]])
    lam = [(1 + c) / 2, (1 - c) / 2]
    assert M.vendi_score(x) == pytest.approx(math.exp(-sum(v * math.log(v) for v in lam)))


def test_vendi_against_singular_values():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(9, 4)) * rng.uniform(0.5, 3, size=(9, 1))
    # eigenvalues of K/m are the squared singular values of the normalised rows / sqrt(m)
    s = np.linalg.svd(unit(x) / math.sqrt(9), compute_uv=False) ** 2
    s = s[s > 1e-15]
    assert M.vendi_score(x) == pytest.approx(math.exp(-float(np.sum(s * np.log(s)))), rel=1e-9)
    assert 1 <= M.vendi_score(x) <= 4 + 1e-9


def test_mean_pairwise_reads_the_strict_upper_triangle():
    d = np.array([[0.0, 0.2, 0.4], [9.0, 0.0, 0.6], [9.0, 9.0, 0.0]])
    assert M.mean_pairwise(d) == pytest.approx(0.4)
    assert math.isnan(M.mean_pairwise([[0.0]]))
    with pytest.raises(ValueError, match="square"):
        M.mean_pairwise(np.zeros((2, 3)))


# --------------------------------------------------------------------------- memorisation


def test_nearest_training_against_loops(monkeypatch):
    rng = np.random.default_rng(16)
    generated, training = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    sims = [[naive_cos(g, t) for t in training] for g in generated]
    best, index = M.nearest_training(generated, training)
    np.testing.assert_allclose(best, [max(row) for row in sims], atol=1e-12)
    assert index.tolist() == [row.index(max(row)) for row in sims]
    monkeypatch.setattr(M, "_BLOCK_ENTRIES", 20)  # blocks of one or two rows
    blocked = M.nearest_training(generated, training)
    np.testing.assert_allclose(blocked[0], best)
    assert blocked[1].tolist() == index.tolist()


def test_copy_rate_and_nearest_by_distance_by_hand():
    assert M.copy_rate([0.99, 0.95, 0.5, 0.949], 0.95) == pytest.approx(0.5)
    assert M.copy_rate(np.array([0.1]), 0.95) == 0.0
    dist = np.array([[0.3, 0.1, 0.2], [0.05, 0.5, 0.5]])
    best, index = M.nearest_by_distance(dist)
    np.testing.assert_allclose(best, [0.1, 0.05])
    assert index.tolist() == [1, 0]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.clip_score(np.ones((3, 4)), np.ones((2, 4))), "3 vs 2 rows"),
    (lambda: M.clip_score(np.ones((3, 4)), np.ones((3, 5))), "dimensions: 4 vs 5"),
    (lambda: M.clip_score(np.ones(4), np.ones(4)), "2-D"),
    (lambda: M.clip_score(np.ones((0, 4)), np.ones((0, 4))), "empty"),
    (lambda: M.clip_score(np.zeros((1, 4)), np.ones((1, 4))), "row 0 has zero norm"),
    (lambda: M.relevance_margin(np.ones((2, 3)), np.ones((2, 3)), np.ones((1, 3))), "rows"),
    (lambda: M.identify(np.ones((2, 3)), np.ones((4, 2))), "dimensions"),
    (lambda: M.framing_margin(np.ones((2, 3)), np.ones((1, 3)), np.full((1, 3), np.nan)), "NaN"),
    (lambda: M.cmmd(np.ones((2, 3)), np.ones((2, 3)), sigma=0), "sigma"),
    (lambda: M.cmmd(np.ones((1, 3)), np.ones((2, 3)), unbiased=True), "at least 2"),
    (lambda: M.kid(np.ones((1, 3)), np.ones((5, 3))), "at least 2 rows"),
    (lambda: M.kid(np.ones((4, 3)), np.ones((5, 3)), subsets=0), "subsets"),
    (lambda: M.nearest_training(np.ones((2, 3)), np.ones((2, 4))), "dimensions"),
    (lambda: M.copy_rate([], 0.9), "non-empty"),
    (lambda: M.nearest_by_distance(np.ones((2, 0))), "empty"),
    (lambda: M.target_probability(np.ones(3), 0), "2-D"),
])
def test_invalid_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_raw_embeddings_are_normalised():
    rng = np.random.default_rng(17)
    x, t, g = rng.normal(size=(3, 6, 5))
    scales = rng.uniform(0.1, 10, size=(6, 1))
    np.testing.assert_allclose(M.clip_score(x * scales, t), M.clip_score(x, t))
    np.testing.assert_allclose(M.relevance_margin(x * scales, t, g * scales), M.relevance_margin(x, t, g))
    np.testing.assert_allclose(M.identify(x * scales, t[:3] * 4), M.identify(x, t[:3]))
    assert M.vendi_score(x * scales) == pytest.approx(M.vendi_score(x))
    assert M.homogeneity(x * scales) == pytest.approx(M.homogeneity(x))
    assert M.kid(x * scales, t, subsets=2) == pytest.approx(M.kid(x, t, subsets=2))
    assert M.clip_score(x.astype(np.float32), t.astype(np.float32)).dtype == np.float64


# --------------------------------------------------------------------------- planted truth


class StubCLIP:
    """An "encoder" whose embeddings are known: words are basis directions, images are planted vectors.

    Texts embed as the sum of their known words' directions plus a fixed "photo" template direction; an image is a
    record (model, prompt, seed) whose embedding a stub model planted. Outputs are deliberately unnormalised.
    """

    d = 32
    words = {"wedding": 0, "ghanaian": 1, "nigerian": 2, "indian": 3, "mexican": 4,
             "dirty": 5, "primitive": 6, "joyful": 7, "elegant": 8}
    template = 31

    def __init__(self) -> None:
        self.planted: dict[tuple[str, str, int], np.ndarray] = {}

    def direction(self, *words: str) -> np.ndarray:
        return sum(np.eye(self.d)[self.words[w]] for w in words)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            v = 0.3 * np.eye(self.d)[self.template]
            for word in text.lower().replace(",", " ").split():
                if word in self.words:
                    v = v + np.eye(self.d)[self.words[word]]
            out.append(2.0 * v)
        return np.array(out)

    def encode_images(self, records: list[tuple[str, str, int]]) -> np.ndarray:
        return np.array([self.planted[r] for r in records])


def community_sample(clip: StubCLIP, rng: np.random.Generator, n: int) -> np.ndarray:
    """The community's own wedding photos: the Ghanaian wedding direction plus varied content in free dimensions."""
    centre = clip.direction("wedding", "ghanaian")
    noise = np.zeros((n, clip.d))
    noise[:, 9:31] = 0.35 * rng.normal(size=(n, 22))
    return centre + noise


def test_planted_truth_every_metric_ranks_models_the_planted_way():
    clip = StubCLIP()
    rng = np.random.default_rng(1800)  # not one of the image seeds below, or A would copy training[0]
    prompt, seeds = "a photo of a Ghanaian wedding", list(range(40))
    training = community_sample(clip, rng, 60)  # the fine-tuning set
    reference = community_sample(clip, rng, 120)  # held-out community images
    collapsed = 0.05 * rng.normal(size=clip.d)
    copied = rng.integers(0, len(training), size=len(seeds))
    planters = {
        # A: the community's distribution (diverse, culture-specific)
        "A": lambda s: community_sample(clip, np.random.default_rng(s), 1)[0],
        # B: a generic wedding, the same picture whatever the seed
        "B": lambda s: clip.direction("wedding") + collapsed + 0.01 * np.random.default_rng(s).normal(size=clip.d),
        # C: copies of fine-tuning images
        "C": lambda s: training[copied[s]] + 0.01 * np.random.default_rng(s).normal(size=clip.d),
        # D: culture-specific but framed by the degrading words
        "D": lambda s: (community_sample(clip, np.random.default_rng(s), 1)[0]
                        + 0.8 * clip.direction("dirty", "primitive")),
    }
    for model, planter in planters.items():
        for s in seeds:
            clip.planted[(model, prompt, s)] = planter(s) * (1 + s % 3)  # raw scales vary

    cultures = ["Ghanaian", "Nigerian", "Indian", "Mexican"]
    templates = ["a photo of a {} wedding", "a {} wedding ceremony", "{} wedding guests"]
    class_text = np.array([clip.encode_text([t.format(c) for t in templates]) for c in cultures])
    classes = M.class_embeddings_from_templates(class_text)
    cultural = clip.encode_text([prompt] * len(seeds))
    generic = clip.encode_text(["a photo of a wedding"] * len(seeds))
    degrading = clip.encode_text(["a dirty wedding", "a primitive wedding"])
    neutral = clip.encode_text(["a joyful wedding", "an elegant wedding"])

    scores = {}
    for model in planters:
        images = clip.encode_images([(model, prompt, s) for s in seeds])
        probs = M.identify(images, classes)
        similarity, _ = M.nearest_training(images, training)
        distances = np.linalg.norm(unit(images)[:, None] - unit(training)[None], axis=-1)
        own_distances = np.linalg.norm(unit(images)[:, None] - unit(images)[None], axis=-1)
        scores[model] = {
            "clip": M.clip_score(images, cultural).mean(),
            "margin": M.relevance_margin(images, cultural, generic).mean(),
            "target": M.target_probability(probs, 0).mean(),
            "identified": M.is_identified(probs, 0).mean(),
            "confused": M.confused_with_other(probs, 0).mean(),
            "framing": M.framing_margin(images, degrading, neutral).mean(),
            "homogeneity": M.homogeneity(images),
            "vendi": M.vendi_score(images),
            "lpips_like": M.mean_pairwise(own_distances),
            "cmmd": M.cmmd(images, reference),
            "kid": M.kid(images, reference, subsets=20)[0],
            "nearest": similarity.mean(),
            "copy": M.copy_rate(similarity, 0.95),
            "nearest_distance": M.nearest_by_distance(distances)[0].mean(),
        }
    a, b, c, d = (scores[k] for k in "ABCD")
    assert a["margin"] > 0 > b["margin"]
    # CLIPScore alone does not separate A from B (here it even prefers B): A's diversity costs it as much as B's
    # genericness, since B's image is still a wedding. That is the limitation the relevance margin addresses.
    assert min(a["clip"], b["clip"]) > 50
    assert a["target"] > b["target"] and a["identified"] > b["identified"] and a["confused"] < b["confused"]
    assert a["identified"] == 1.0
    assert b["homogeneity"] > a["homogeneity"] and b["homogeneity"] > 0.99
    assert a["vendi"] > 5 * b["vendi"] and b["vendi"] < 1.1
    assert a["lpips_like"] > b["lpips_like"]
    assert d["framing"] > max(a["framing"], b["framing"], c["framing"])
    assert c["nearest"] == max(s["nearest"] for s in scores.values())
    assert c["copy"] == 1.0 and a["copy"] == 0.0 and b["copy"] == 0.0
    assert c["nearest_distance"] == min(s["nearest_distance"] for s in scores.values())
    assert a["cmmd"] < b["cmmd"] and a["cmmd"] < d["cmmd"]
    assert a["kid"] < b["kid"] and a["kid"] < d["kid"]


# --------------------------------------------------------------------------- numerically extreme rows


@pytest.mark.filterwarnings("error")  # an overflow or underflow warning fails the test
@pytest.mark.parametrize("size", [1e200, 1e-200, 5e-324, 1e308])
def test_huge_and_tiny_rows_keep_their_direction(size):
    e = np.eye(3)
    same = np.full((1, 3), size)
    np.testing.assert_allclose(M.clip_score(same, same), [100.0])
    np.testing.assert_allclose(M.clip_score(size * e[[0, 1]], size * e[[0, 0]]), [100.0, 0.0], atol=1e-12)
    assert M.vendi_score(size * e[[0, 1]]) == pytest.approx(2.0)
    assert M.vendi_score(size * e[[0, 0, 0]]) == pytest.approx(1.0)
    assert M.homogeneity(size * e[[0, 1]]) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(M.relevance_margin(size * e[[0]], size * e[[0]], size * e[[1]]), [1.0])
    np.testing.assert_allclose(M.identify(size * e[[0]], size * e[[0, 1]], logit_scale=2.0),
                               M.identify(e[[0]], e[[0, 1]], logit_scale=2.0))
    np.testing.assert_allclose(M.class_embeddings_from_templates(size * np.array([[e[0], e[1]]])),
                               [[1 / math.sqrt(2), 1 / math.sqrt(2), 0]])
    assert M.nearest_training(size * e[[0]], size * e[[1, 0]])[1].tolist() == [1]
    x = np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]])  # exact multiples even of 5e-324
    assert M.cmmd(size * x, x) == pytest.approx(0.0, abs=1e-12)
    assert M.kid(size * x, x, subsets=2) == pytest.approx(M.kid(x, x, subsets=2), rel=1e-9)
    assert M.kid(size * x, x[::-1], subsets=1)[0] == pytest.approx(naive_mmd(x, x[::-1], poly(1 / 3), True), abs=1e-12)


@pytest.mark.filterwarnings("error")
def test_rows_mixing_huge_and_tiny_entries():
    # the tiny entry is negligible next to the huge one, but a row of tiny entries with one larger still counts
    a = np.array([[1e300, 1e-300, 0.0], [3e-310, 4e-310, 0.0]])
    np.testing.assert_allclose(M.clip_score(a, np.array([[1.0, 0, 0], [3.0, 4.0, 0]])), [100.0, 100.0])
    np.testing.assert_allclose(M.clip_score(a[[1]], np.array([[1.0, 0, 0]])), [60.0])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.clip_score(np.ones((3, 4)), np.array([[1.0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])),
     "texts row 2 has zero norm"),
    (lambda: M.relevance_margin(np.ones((2, 3)), np.ones((2, 3)), np.array([[1.0, 1, 1], [0, 0, 0]])),
     "generic row 1 has zero norm"),
    (lambda: M.vendi_score(np.array([[1.0, 0], [0, 0]])), "x row 1 has zero norm"),
    (lambda: M.homogeneity(np.array([[0.0, 0], [1, 0]])), "images row 0 has zero norm"),
    (lambda: M.cmmd(np.ones((2, 3)), np.array([[1.0, 0, 0], [0, 0, 0]])), "y row 1 has zero norm"),
    (lambda: M.kid(np.array([[1.0, 0, 0], [-0.0, 0, 0]]), np.ones((2, 3))), "x row 1 has zero norm"),
    (lambda: M.nearest_training(np.ones((2, 3)), np.zeros((3, 3))), "training row 0 has zero norm"),
    (lambda: M.identify(np.ones((2, 3)), np.array([[1.0, 0, 0], [0, 0, 0]])), "class_embeddings row 1"),
    (lambda: M.class_embeddings_from_templates(np.array([[[1.0, 0], [1, 1]], [[1, 0], [0, 0]]])),
     r"text_embeddings\[class 1, template 1\] has zero norm"),
])
def test_zero_rows_are_refused_naming_the_argument_and_row(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("call", "message"), [
    (lambda v: M.clip_score(np.ones((3, 2)), [[1, 1], [1, 1], [1, v]]), "texts row 2 contains NaN or infinite"),
    (lambda v: M.clip_score([[v, 1], [1, 1]], np.ones((2, 2))), "images row 0 contains NaN or infinite"),
    (lambda v: M.vendi_score([[1, 0], [0, 1], [v, 0]]), "x row 2 contains"),
    (lambda v: M.cmmd(np.ones((2, 2)), [[1, 0], [0, v]]), "y row 1 contains"),
    (lambda v: M.kid([[1, 0], [0, v]], np.ones((2, 2))), "x row 1 contains"),
    (lambda v: M.nearest_training(np.ones((2, 2)), [[1, 0], [v, 1]]), "training row 1 contains"),
    (lambda v: M.framing_margin(np.ones((1, 2)), [[1, 0]], [[1, 0], [v, v]]), "neutral row 1 contains"),
    (lambda v: M.class_embeddings_from_templates([[[1, 0], [1, 1]], [[v, 0], [1, 1]]]),
     r"text_embeddings\[class 1, template 0\] contains"),
    (lambda v: M.nearest_by_distance([[0.1, 0.2], [0.3, v]]), "distances row 1 contains"),
    (lambda v: M.target_probability([[0.5, 0.5], [v, 0.5]], 0), "probs row 1 contains"),
    (lambda v: M.copy_rate([0.1, 0.2, v], 0.9), "similarities entry 2"),
    (lambda v: M.mean_pairwise([[0, 1, 1], [1, 0, v], [1, 1, 0]]), "distance_matrix row 1 contains"),
])
def test_non_finite_values_are_refused_naming_the_argument_and_row(call, message, bad):
    with pytest.raises(ValueError, match=message):
        call(bad)


X2, Y2 = np.eye(3)[[0, 1, 2, 0]], np.eye(3)[[1, 2, 0, 1]]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: M.clip_score(X2, Y2, weight=math.nan), "weight must be a finite number"),
    (lambda: M.clip_score(X2, Y2, weight=math.inf), "weight must be a finite number"),
    (lambda: M.clip_score(X2, Y2, weight=0.0), "weight must be positive"),
    (lambda: M.clip_score(X2, Y2, weight="100"), "weight must be a number"),
    (lambda: M.identify(X2, Y2, logit_scale=math.nan), "logit_scale must be a finite number"),
    (lambda: M.identify(X2, Y2, logit_scale=-1.0), "logit_scale must be positive"),
    (lambda: M.cmmd(X2, Y2, sigma=math.nan), "sigma must be a finite number"),
    (lambda: M.cmmd(X2, Y2, sigma=math.inf), "sigma must be a finite number"),
    (lambda: M.cmmd(X2, Y2, sigma=-1.0), "sigma must be positive"),
    (lambda: M.cmmd(X2, Y2, scale=math.nan), "scale must be a finite number"),
    (lambda: M.cmmd(X2, Y2, scale=0.0), "scale must be positive"),
    (lambda: M.cmmd(X2, Y2, unbiased="yes"), "unbiased must be True or False"),
    (lambda: M.kid(X2, Y2, subsets=2.5), "subsets must be an integer"),
    (lambda: M.kid(X2, Y2, subset_size=math.nan), "subset_size must be an integer"),
    (lambda: M.kid(X2, Y2, subset_size=1), "subset_size must be at least 2"),
    (lambda: M.kid(X2, Y2, degree=0), "degree must be at least 1"),
    (lambda: M.kid(X2, Y2, degree=True), "degree must be an integer"),
    (lambda: M.kid(X2, Y2, gamma=math.nan), "gamma must be a finite number"),
    (lambda: M.kid(X2, Y2, gamma=0.0), "gamma must be positive"),
    (lambda: M.kid(X2, Y2, coef0=math.inf), "coef0 must be a finite number"),
    (lambda: M.kid(X2, Y2, coef0=-0.5), "coef0 must be at least 0"),
    (lambda: M.kid(X2, Y2, seed=-1), "seed must be at least 0"),
    (lambda: M.kid(X2, Y2, seed=1.5), "seed must be an integer"),
    (lambda: M.kid(X2, Y2, gamma=1e300), "KID overflowed"),
    (lambda: M.copy_rate([0.99], math.nan), "threshold must be a finite number"),
    (lambda: M.copy_rate([0.99], -math.inf), "threshold must be a finite number"),
])
def test_invalid_scalar_parameters_are_refused_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_valid_scalar_parameters_of_numpy_types_are_accepted():
    assert M.copy_rate([0.99], np.float32(0.95)) == 1.0
    assert M.kid(X2, Y2, subsets=np.int64(2), subset_size=np.int32(3), seed=np.uint8(1))[0] == pytest.approx(
        M.kid(X2, Y2, subsets=2, subset_size=3, seed=1)[0])
    assert M.kid(X2, Y2, coef0=0.0, subsets=1)[0] == pytest.approx(naive_mmd(X2, Y2, poly(1 / 3, 0.0), True))
    assert math.isfinite(M.cmmd(X2, Y2, sigma=1e-200))  # a kernel that is 0 off the diagonal, no 1 / 0


# --------------------------------------------------------------------------- the CLIPScore convention


def test_clip_score_clamps_each_image_not_the_mean():
    # cosines 0.6 and -0.4 (image e0 against texts at those angles); computed here independently of ccub
    cosines = np.array([0.6, -0.4, 0.2])
    images = np.tile(np.eye(2)[0], (3, 1))
    texts = np.stack([cosines, np.sqrt(1 - cosines**2)], axis=1)
    ccub_convention = np.mean(100 * np.maximum(cosines, 0))  # clamp each image, then average: (60 + 0 + 20) / 3
    batch_mean_clamp = max(100 * np.mean(cosines), 0)  # torchmetrics: average, then clamp: 40 / 3
    assert M.clip_score(images, texts).mean() == pytest.approx(ccub_convention) == pytest.approx(80 / 3)
    assert batch_mean_clamp == pytest.approx(40 / 3)
    # all negative: torchmetrics reports 0 for the batch, ccub 0 for every image; all positive: the two agree
    assert M.clip_score(images[:1], texts[[1]]).mean() == 0 == max(100 * cosines[1], 0)
    assert M.clip_score(images[:2], texts[[0, 2]]).mean() == pytest.approx(100 * np.mean(cosines[[0, 2]]))


class StubCLIPProcessor:
    """Stands in for a transformers CLIP processor: image i is a tensor filled with i, text i is the string "i"."""

    def __call__(self, images=None, text=None, return_tensors="pt", padding=True):
        import torch

        if images is not None:
            return {"pixel_values": torch.stack(images)}
        ids = torch.tensor([[int(t)] for t in text])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class StubCLIPModel:
    """Stands in for a transformers CLIP model whose features are given embeddings (looked up by index)."""

    config = object()

    def __init__(self, images: np.ndarray, texts: np.ndarray) -> None:
        import torch

        self.images, self.texts = torch.from_numpy(images), torch.from_numpy(texts)

    def to(self, device):
        return self

    def get_image_features(self, pixel_values):
        return self.images[pixel_values[:, 0, 0, 0].long()]

    def get_text_features(self, input_ids, attention_mask):
        return self.texts[input_ids[:, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_score_against_torchmetrics_on_the_same_embeddings(seed):
    """torchmetrics' clip_score, run on given embeddings through a stub model: it clamps the batch mean."""
    torch = pytest.importorskip("torch", reason="torchmetrics' CLIPScore needs torch")
    pytest.importorskip("torchmetrics", reason="the peer CLIPScore is torchmetrics' (pip install torchmetrics)")
    from torchmetrics.functional.multimodal import clip_score as tm_clip_score

    rng = np.random.default_rng(seed)
    images, texts = rng.normal(size=(7, 6)), rng.normal(size=(7, 6)) + 0.3
    stub = StubCLIPModel(images, texts)
    pixels = torch.arange(7, dtype=torch.float64).reshape(7, 1, 1, 1).expand(7, 3, 1, 1)
    peer = float(tm_clip_score(pixels, [str(i) for i in range(7)], lambda: (stub, StubCLIPProcessor())))
    ours = M.clip_score(images, texts)
    cos = np.array([naive_cos(a, b) for a, b in zip(images, texts, strict=True)])
    assert np.any(cos < 0) and np.any(cos > 0)
    assert peer == pytest.approx(max(100 * cos.mean(), 0.0), abs=1e-9)  # the peer: clamp the batch mean
    assert ours.mean() == pytest.approx(np.mean(100 * np.maximum(cos, 0)), abs=1e-9)  # ccub: clamp each image
    assert ours.mean() > peer  # clamping each negative cosine to 0 can only raise the mean
    # on the images with a positive cosine the two conventions are the same number
    positive = cos > 0
    stub = StubCLIPModel(images[positive], texts[positive])
    k = int(positive.sum())
    pixels = torch.arange(k, dtype=torch.float64).reshape(k, 1, 1, 1).expand(k, 3, 1, 1)
    peer = float(tm_clip_score(pixels, [str(i) for i in range(k)], lambda: (stub, StubCLIPProcessor())))
    assert M.clip_score(images[positive], texts[positive]).mean() == pytest.approx(peer, rel=1e-9)


# --------------------------------------------------------------------------- peers: KID and Vendi


def test_kid_against_torchmetrics_on_the_same_subsets():
    torch = pytest.importorskip("torch", reason="torchmetrics' KID needs torch")
    pytest.importorskip("torchmetrics", reason="the peer KID is torchmetrics' (pip install torchmetrics)")
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(21)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(25, 6)) + 0.3
    ux, uy = torch.from_numpy(unit(x)), torch.from_numpy(unit(y))  # torchmetrics does not normalise features
    for kwargs in ({}, {"degree": 2, "gamma": 0.5, "coef0": 0.25}):
        mean, std = M.kid(x, y, subsets=6, subset_size=12, seed=5, **kwargs)
        # the same subsets as ccub draws (its documented generator), each scored by torchmetrics' poly_mmd
        draw = np.random.default_rng(5)
        values = []
        for _ in range(6):
            ix, iy = draw.choice(30, 12, replace=False), draw.choice(25, 12, replace=False)
            values.append(float(poly_mmd(ux[ix], uy[iy], kwargs.get("degree", 3), kwargs.get("gamma"),
                                         kwargs.get("coef0", 1.0))))
        assert mean == pytest.approx(np.mean(values), rel=1e-9)
        assert std == pytest.approx(np.std(values), rel=1e-9)  # population std, as torchmetrics' compute


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save:UserWarning")
def test_kid_against_torchmetrics_kernel_inception_distance_on_whole_sets():
    """With subsets as large as the sets, every subset is the whole of both and random draws cannot differ."""
    torch = pytest.importorskip("torch", reason="torchmetrics' KID needs torch")
    pytest.importorskip("torchmetrics", reason="the peer KID is torchmetrics' (pip install torchmetrics)")
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(22)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) - 0.4
    peer = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=3, subset_size=20)
    peer.update(torch.from_numpy(unit(x)), real=True)
    peer.update(torch.from_numpy(unit(y)), real=False)
    peer_mean, peer_std = (float(v) for v in peer.compute())
    mean, std = M.kid(x, y, subsets=3, subset_size=20)
    assert mean == pytest.approx(peer_mean, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12) and peer_std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")  # vendi-score 0.0.3 on SciPy
@pytest.mark.parametrize(("m", "d"), [(9, 4), (5, 12), (30, 30)])
def test_vendi_against_the_vendi_score_package(m, d):
    vendi = pytest.importorskip("vendi_score.vendi", reason="the peer Vendi score is vendi-score's "
                                                            "(pip install vendi-score)")
    rng = np.random.default_rng(m * d)
    x = rng.normal(size=(m, d)) * rng.uniform(0.2, 5, size=(m, 1))
    x[1] = 3 * x[0]  # a duplicate direction
    u = unit(x)
    ours = M.vendi_score(x)
    assert ours == pytest.approx(float(vendi.score_K(u @ u.T)), rel=1e-9)
    assert ours == pytest.approx(float(vendi.score_dual(x)), rel=1e-9)  # the package normalises rows itself
