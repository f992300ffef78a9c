"""The evaluation wiring with a stub encoder whose embeddings are planted: each metric must rank
the models the planted way, through `evaluate` and the paired statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.evaluate import Inputs, evaluate
from benchmark.prompts import Prompt

D = 12
AXIS = {name: i for i, name in enumerate(
    ["culture", "generic", "neighbour", "degrading", "neutral", "train0", "train1", "spread0", "spread1", "spread2"])}
SEEDS = [0, 1, 2, 3]


def unit(*parts: tuple[str, float]) -> np.ndarray:
    v = np.zeros(D)
    for name, weight in parts:
        v[AXIS[name]] += weight
    return v / np.linalg.norm(v)


def planted_image(model: str, seed: int) -> np.ndarray:
    spread = ("spread0", "spread1", "spread2")[seed % 3]
    if model == "culture":  # reads as the culture, varied across seeds
        return unit(("culture", 1.0), (spread, 0.8), ("neutral", 0.2))
    if model == "generic":  # the generic scene, all seeds alike, leaning to degrading framings
        return unit(("generic", 1.0), ("neighbour", 0.6), ("degrading", 0.5))
    return unit(("train0", 1.0), ("culture", 0.3))  # "copier": reproduces a training photo


def test_each_metric_ranks_the_planted_models(tmp_path):
    prompts = [Prompt(f"korea/FOOD/p{i}", "korea", "FOOD", f"cultural prompt {i}", f"generic prompt {i}")
               for i in range(3)]
    models = ["base", "culture", "copier"]
    # base plays the "generic" model: the fine-tuned "culture" model must beat it.
    images = {(m, p.id, s): tmp_path / f"{m}-{p.id.replace('/', '_')}-{s}.png"
              for m in models for p in prompts for s in SEEDS}
    vectors = {path: planted_image("generic" if m == "base" else m, s) for (m, _, s), path in images.items()}
    training = [tmp_path / "train0.png", tmp_path / "train1.png"]
    vectors.update({training[0]: unit(("train0", 1.0)), training[1]: unit(("train1", 1.0))})
    texts = {**{p.text: unit(("culture", 1.0)) for p in prompts},
             **{p.generic: unit(("generic", 1.0)) for p in prompts}}

    def embed_images(paths: list[Path]) -> np.ndarray:
        return np.stack([vectors[Path(p)] for p in paths]) if paths else np.zeros((0, D))

    def embed_texts(items: list[str]) -> np.ndarray:
        def one(text: str) -> np.ndarray:
            if text in texts:
                return texts[text]
            if text.startswith("degrading"):
                return unit(("degrading", 1.0))
            if text.startswith("neutral"):
                return unit(("neutral", 1.0))
            return unit(("culture", 1.0)) if "target" in text else unit(("neighbour", 1.0))
        return np.stack([one(t) for t in items])

    inputs = Inputs(models=models, prompts=prompts, seeds=SEEDS, images=images,
                    culture_classes=["korea", "japan"],
                    class_texts=[["target a", "target b"], ["other a", "other b"]],
                    framings={p.id: (["degrading x", "degrading y"], ["neutral x", "neutral y"]) for p in prompts},
                    reference=[], training=training)
    scores = evaluate(inputs, embed_images, embed_texts, None, logit_scale=100.0, copy_threshold=0.95,
                      kid_subset_size=100)

    def mean(model: str, metric: str) -> float:
        return float(np.mean([r.value for r in scores.rows if r.model == model and r.metric == metric]))

    assert mean("culture", "relevance_margin") > 0 > mean("base", "relevance_margin")
    assert mean("culture", "target_probability") > 0.99 > 0.01 > mean("base", "target_probability")
    assert mean("culture", "identified") == 1.0 and mean("base", "confused") == 1.0
    assert mean("base", "framing_margin") > mean("culture", "framing_margin")
    assert mean("base", "homogeneity") > 0.999 > mean("culture", "homogeneity")
    assert mean("culture", "vendi") > 2.0 > 1.01 > mean("base", "vendi")
    assert mean("copier", "nearest_training_clip") > 0.95 > mean("culture", "nearest_training_clip")
    assert scores.sets["copy_rate"] == {"base": 0.0, "culture": 0.0, "copier": 1.0}
    assert any("CMMD and KID: not computed" in n for n in scores.notes)
    assert any("LPIPS" in n for n in scores.notes)
    per_image = [r for r in scores.rows if r.metric == "clip_score"]
    assert len(per_image) == len(models) * len(prompts) * len(SEEDS)
