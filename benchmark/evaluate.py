"""Every metric of every generated image, from CLIP embeddings (and LPIPS distances when enabled).

Input: the cached images of each model for each (prompt, seed), the culture's community images
(the held-out test split for closeness, the training split for memorisation) and the texts
(prompts, their culture-free versions, identification classes, framings). Output: long-format
rows (model, prompt, seed, metric, value) for per-image and per-prompt metrics, and one value per
model for the set-level metrics. Which direction is better is in `METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark import metrics as M
from benchmark.metric_rows import MetricRow


@dataclass(frozen=True)
class MetricSpec:
    level: str  # image, prompt or set
    higher_is_better: bool
    summary: str  # one line for tables


METRICS: dict[str, MetricSpec] = {
    "clip_score": MetricSpec("image", True, "prompt alignment, 100 * max(cos(image, prompt), 0)"),
    "relevance_margin": MetricSpec("image", True, "cos(image, prompt) - cos(image, prompt without the culture)"),
    "target_probability": MetricSpec("image", True, "zero-shot probability of the target culture among its neighbours"),
    "identified": MetricSpec("image", True, "share identified as the target culture (accuracy)"),
    "confused": MetricSpec("image", False, "share identified as another culture (confusion rate)"),
    "framing_margin": MetricSpec("image", False, "cos to degrading framings - cos to neutral framings of the scene"),
    "nearest_training_clip": MetricSpec("image", False, "highest CLIP cosine to any training image (memorisation)"),
    "nearest_training_lpips": MetricSpec("image", True, "smallest LPIPS distance to any training image (memorisation)"),
    "homogeneity": MetricSpec("prompt", False, "mean pairwise CLIP cosine of a prompt's images"),
    "vendi": MetricSpec("prompt", True, "Vendi score of a prompt's images (CLIP, cosine kernel)"),
    "lpips_diversity": MetricSpec("prompt", True, "mean pairwise LPIPS of a prompt's images"),
    "cmmd": MetricSpec("set", False, "CMMD to the community's held-out images (CLIP, Gaussian kernel)"),
    "kid": MetricSpec("set", False, "KID on CLIP features to the community's held-out images"),
    "copy_rate": MetricSpec("set", False, "share of images with CLIP cosine >= copy threshold to a training image"),
}


@dataclass
class Inputs:
    models: list[str]  # "base" first
    prompts: list  # benchmark.prompts.Prompt
    seeds: list[int]
    # (model, prompt id, seed) -> image. A generated benchmark has every key; images made elsewhere
    # (benchmark/external.py) may lack some: each model is scored on the (prompt, seed) it has.
    images: dict[tuple[str, str, int], Path]
    culture_classes: list[str]  # target first, then neighbours (slugs)
    class_texts: list[list[str]]  # templates filled per class
    framings: dict[str, tuple[list[str], list[str]]]  # prompt id -> (degrading, neutral)
    reference: list[Path]  # held-out community images
    training: list[Path]  # training images

    def seeds_of(self, model: str, prompt_id: str) -> list[int]:
        """The seeds of `model`'s images of a prompt, in `seeds` order."""
        return [s for s in self.seeds if (model, prompt_id, s) in self.images]


@dataclass
class Scores:
    rows: list[MetricRow] = field(default_factory=list)
    sets: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> model -> value
    notes: list[str] = field(default_factory=list)

    def add(self, model: str, prompt: str, seed: int | None, metric: str, value: float) -> None:
        self.rows.append(MetricRow(model=model, prompt=prompt, seed=seed, metric=metric, value=float(value)))


def evaluate(inputs: Inputs, embed_images: Callable[[list[Path]], np.ndarray],
             embed_texts: Callable[[list[str]], np.ndarray], lpips: Callable | None, *, logit_scale: float,
             copy_threshold: float, kid_subset_size: int,
             lpips_progress: Callable[[int], None] | None = None) -> Scores:
    """Every metric; `lpips_progress(images done)` as the LPIPS metrics advance, prompt by prompt."""
    scores = Scores()
    keys = [(m, p.id, s) for m in inputs.models for p in inputs.prompts for s in inputs.seeds_of(m, p.id)]
    image_emb = embed_images([inputs.images[k] for k in keys])
    row_of = {k: i for i, k in enumerate(keys)}
    prompt_emb = embed_texts([p.text for p in inputs.prompts])
    generic_emb = embed_texts([p.generic for p in inputs.prompts])
    classes = M.class_embeddings_from_templates(
        np.stack([embed_texts(texts) for texts in inputs.class_texts]))
    training_emb = embed_images(inputs.training) if inputs.training else None
    framing_emb = _embed_framings(inputs.framings, embed_texts)
    for pi, prompt in enumerate(inputs.prompts):
        for model in inputs.models:
            seeds = inputs.seeds_of(model, prompt.id)
            if not seeds:
                continue
            emb = image_emb[[row_of[(model, prompt.id, s)] for s in seeds]]
            _image_metrics(scores, model, prompt, seeds, emb, prompt_emb[pi], generic_emb[pi], classes,
                           framing_emb[prompt.id], training_emb, logit_scale)
            scores.add(model, prompt.id, None, "homogeneity", M.homogeneity(emb))
            scores.add(model, prompt.id, None, "vendi", M.vendi_score(emb))
    _set_metrics(scores, inputs, image_emb, row_of, embed_images, training_emb, copy_threshold, kid_subset_size)
    if lpips is not None:
        _lpips_metrics(scores, inputs, lpips, lpips_progress)
    else:
        scores.notes.append("LPIPS diversity and memorisation: not computed (lpips disabled or its VGG16 weights "
                            "are not available)")
    return scores


def _embed_framings(framings: dict[str, tuple[list[str], list[str]]], embed_texts) -> dict:
    """Every prompt's degrading and neutral framings, embedded in one call."""
    texts = list(dict.fromkeys(t for deg, neu in framings.values() for t in (*deg, *neu)))
    emb = embed_texts(texts)
    at = {t: i for i, t in enumerate(texts)}
    return {pid: (emb[[at[t] for t in deg]], emb[[at[t] for t in neu]]) for pid, (deg, neu) in framings.items()}


def _image_metrics(scores: Scores, model: str, prompt, seeds: list[int], emb: np.ndarray, prompt_emb, generic_emb,
                   classes: np.ndarray, framing, training_emb, logit_scale: float) -> None:
    n = len(seeds)
    clip = M.clip_score(emb, np.repeat(prompt_emb[None], n, 0))
    margin = M.relevance_margin(emb, np.repeat(prompt_emb[None], n, 0), np.repeat(generic_emb[None], n, 0))
    probs = M.identify(emb, classes, logit_scale=logit_scale)
    target = M.target_probability(probs, 0)
    identified = M.is_identified(probs, 0)
    confused = M.confused_with_other(probs, 0)
    framing_margin = M.framing_margin(emb, framing[0], framing[1])
    nearest = M.nearest_training(emb, training_emb)[0] if training_emb is not None else None
    for i, seed in enumerate(seeds):
        scores.add(model, prompt.id, seed, "clip_score", clip[i])
        scores.add(model, prompt.id, seed, "relevance_margin", margin[i])
        scores.add(model, prompt.id, seed, "target_probability", target[i])
        scores.add(model, prompt.id, seed, "identified", float(identified[i]))
        scores.add(model, prompt.id, seed, "confused", float(confused[i]))
        scores.add(model, prompt.id, seed, "framing_margin", framing_margin[i])
        if nearest is not None:
            scores.add(model, prompt.id, seed, "nearest_training_clip", nearest[i])


def _set_metrics(scores: Scores, inputs: Inputs, image_emb: np.ndarray, row_of: dict, embed_images, training_emb,
                 copy_threshold: float, kid_subset_size: int) -> None:
    reference = embed_images(inputs.reference) if inputs.reference else None
    if reference is None or len(reference) < 2:
        scores.notes.append("CMMD and KID: not computed (the dataset has no held-out test split with 2 or more "
                            "images; make one with `ccub validate --test-fraction 0.2`)")
    for model in inputs.models:
        # A generated benchmark gives every model the same number of images: equal sample sizes.
        rows = [row_of[(model, p.id, s)] for p in inputs.prompts for s in inputs.seeds_of(model, p.id)]
        emb = image_emb[rows]
        if reference is not None and len(reference) >= 2:
            scores.sets.setdefault("cmmd", {})[model] = M.cmmd(emb, reference)
            scores.sets.setdefault("kid", {})[model] = M.kid(emb, reference, subset_size=kid_subset_size)[0]
        if training_emb is not None:
            scores.sets.setdefault("copy_rate", {})[model] = M.copy_rate(
                M.nearest_training(emb, training_emb)[0], copy_threshold)


def _lpips_metrics(scores: Scores, inputs: Inputs, lpips: Callable,
                   progress: Callable[[int], None] | None = None) -> None:
    """`lpips(paths_a, paths_b)` -> (len(a), len(b)) distance matrix."""
    done = 0
    for model in inputs.models:
        for prompt in inputs.prompts:
            seeds = inputs.seeds_of(model, prompt.id)
            paths = [inputs.images[(model, prompt.id, s)] for s in seeds]
            if not paths:
                continue
            if len(paths) >= 2:
                scores.add(model, prompt.id, None, "lpips_diversity", M.mean_pairwise(lpips(paths, paths)))
            if inputs.training:
                nearest = M.nearest_by_distance(lpips(paths, inputs.training))[0]
                for seed, value in zip(seeds, nearest, strict=True):
                    scores.add(model, prompt.id, seed, "nearest_training_lpips", value)
            done += len(paths)
            if progress:
                progress(done)
