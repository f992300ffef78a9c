"""CLIP plumbing (ccub.models) and semantic similarity (ccub.semantic), on a tiny random model.

No network and no downloaded weights: the tiny model is built with random weights, saved, and
loaded back through open_clip's real loading path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # noqa: E402 - before anything imports huggingface_hub

import numpy as np
import pytest
from helpers import photo

from ccub.models import ClipSpec, ModelUnavailable, build_tiny_clip, load_clip, parse_clip, random_marker
from ccub.semantic import embed_images, similar_between, similar_pairs

pytest.importorskip("torch")
pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ClipSpec:
    return parse_clip("tiny", tmp_path_factory.mktemp("clip-cache"))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Small JPEG copies like the pipeline writes: two photos, a duplicate, a resized copy."""
    root = tmp_path_factory.mktemp("images")
    a, b = photo(1, (240, 200)), photo(2, (240, 200))
    paths = {"a": root / "a.jpg", "a_copy": root / "a_copy.jpg", "a_small": root / "a_small.jpg",
             "b": root / "b.jpg", "gray": root / "gray.png"}
    a.save(paths["a"], quality=90)
    a.save(paths["a_copy"], quality=90)
    a.resize((216, 180)).save(paths["a_small"], quality=90)
    b.save(paths["b"], quality=90)
    a.convert("L").save(paths["gray"])  # not RGB: must be converted on the way in
    return paths


# --------------------------------------------------------------------------- models


def test_tiny_spec_is_random_and_says_so(tiny):
    assert tiny.model == "tiny" and tiny.random_weights
    assert Path(tiny.pretrained).is_file()
    assert (Path(tiny.pretrained).parent / "open_clip_config.json").is_file()
    assert "RANDOM WEIGHTS" in tiny.describe()


def test_tiny_build_is_cached_and_seeded(tmp_path, tiny):
    before = Path(tiny.pretrained).stat().st_mtime_ns
    again = parse_clip("tiny", Path(tiny.pretrained).parent.parent)
    assert again == tiny and Path(tiny.pretrained).stat().st_mtime_ns == before  # not rebuilt
    import torch
    from safetensors.torch import load_file

    first = load_file(tiny.pretrained)
    same = load_file(build_tiny_clip("tiny", tmp_path / "same", seed=0))
    other = load_file(build_tiny_clip("tiny", tmp_path / "other", seed=1))
    assert same.keys() == first.keys() == other.keys()
    assert all(torch.equal(same[k], first[k]) for k in first)
    assert not all(torch.equal(other[k], first[k]) for k in first)


def test_load_clip_eval_no_grad(tiny):
    model, preprocess = load_clip(tiny)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.visual.output_dim == 32
    assert callable(preprocess)


def test_bare_local_checkpoint_round_trips(tmp_path, tiny):
    import torch

    checkpoint = build_tiny_clip("tiny", tmp_path / "saved", seed=3)
    folder = f"local-dir:{checkpoint.parent.resolve()}"
    for spec_string, pretrained in ((str(checkpoint), str(checkpoint.resolve())), (str(checkpoint.parent), None),
                                    (folder, None)):
        spec = parse_clip(spec_string, tmp_path / "unused")
        assert spec.random_weights  # the marker file travels with the weights
        # A folder is open_clip's own local-dir; a file is that checkpoint with the folder's config.
        assert (spec.model, spec.pretrained) == (folder, pretrained)
        model, _ = load_clip(spec)
        from safetensors.torch import load_file

        saved = load_file(checkpoint)
        state = model.state_dict()
        assert saved.keys() <= state.keys()
        assert all(torch.equal(saved[k], state[k]) for k in saved)


def test_model_with_local_file(tmp_path, tiny):
    # MODEL:PATH: an architecture name plus a checkpoint file without config beside it.
    lone = tmp_path / "weights.safetensors"
    lone.write_bytes(Path(tiny.pretrained).read_bytes())
    with pytest.raises(ModelUnavailable, match="architecture is unknown"):
        parse_clip(str(lone), tmp_path)
    spec = parse_clip(f"tiny:{lone}", tmp_path)
    assert spec == ClipSpec("tiny", str(lone.resolve()), False)
    model, _ = load_clip(spec)
    assert model.visual.output_dim == 32


@pytest.mark.parametrize("spec", ["ViT-B-32:laion2b_s34b_b79k", "ViT-bigG-14:laion2b_s39b_b160k"])
def test_missing_cached_model_is_unavailable_offline(spec, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip either
    model = spec.split(":")[0]
    start = time.monotonic()
    with pytest.raises(ModelUnavailable) as err:
        parse_clip(spec, tmp_path)
    with pytest.raises(ModelUnavailable):
        load_clip(ClipSpec(model, spec.split(":")[1], False))
    assert time.monotonic() - start < 5  # no network attempts, no retries
    message = str(err.value)
    assert spec in message and "HF_HUB_OFFLINE" in message
    assert "create_model_and_transforms" in message and "local checkpoint path" in message


def test_unknown_tag_and_architecture(tmp_path):
    with pytest.raises(ModelUnavailable, match="ViT-B-32") as err:
        parse_clip("ViT-B-32:no_such_tag", tmp_path)
    assert "laion2b_s34b_b79k" in str(err.value)  # lists the known tags
    with pytest.raises(ModelUnavailable, match="ViT-Nope"):
        parse_clip("ViT-Nope:openai", tmp_path)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        parse_clip(str(tmp_path / "missing.safetensors"), tmp_path)
    with pytest.raises(ValueError, match="MODEL:PRETRAINED"):
        parse_clip("ViT-B-32", tmp_path)


def test_cached_tag_resolves_without_network(tmp_path, monkeypatch):
    """A tag whose weights sit in the Hugging Face cache is found there, offline."""
    import huggingface_hub.constants

    from ccub.models.clip import _resolve_tag

    hub = tmp_path / "hub"
    repo = hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"stand-in")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    path, cfg = _resolve_tag("ViT-B-32", "laion2b_s34b_b79k", download=True)
    assert Path(path) == snapshot / "open_clip_model.safetensors"
    assert cfg["hf_hub"].startswith("laion/")


def test_hf_hub_repo_from_cache(tmp_path, monkeypatch, tiny):
    """hf-hub:ORG/REPO loads from the local cache offline; missing repos are unavailable."""
    import huggingface_hub.constants

    hub = tmp_path / "hub"
    repo = hub / "models--someone--tiny-clip"
    snapshot = repo / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    source = Path(tiny.pretrained).parent
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        (snapshot / name).write_bytes((source / name).read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    model, _ = load_clip(parse_clip("hf-hub:someone/tiny-clip", tmp_path))
    assert model.visual.output_dim == 32
    with pytest.raises(ModelUnavailable, match="hf-hub:someone/absent"):
        load_clip(parse_clip("hf-hub:someone/absent", tmp_path))


def test_imports_stay_light():
    code = "import ccub.models, ccub.semantic, sys; assert 'torch' not in sys.modules; " \
           "assert 'open_clip' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- embeddings


def test_embeddings_unit_norm_and_duplicates(tiny, images):
    order = ["a", "a_copy", "a_small", "b", "gray"]
    calls = []
    emb = embed_images([images[k] for k in order], tiny, batch_size=2, device="cpu",
                       progress=lambda done, total: calls.append((done, total)))
    assert emb.shape == (5, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert calls == [(2, 5), (4, 5), (5, 5)]
    cos = emb @ emb.T
    assert cos[0, 1] >= 0.9999  # identical image
    assert cos[0, 2] >= 0.98  # slightly resized copy
    assert cos[0, 2] > cos[0, 3]  # closer than another photo, even with random weights
    # batching does not change the result
    single = embed_images([images["a_small"]], tiny, batch_size=1, device="cpu")
    np.testing.assert_allclose(single[0], emb[2], atol=1e-5)
    assert embed_images([], tiny, device="cpu").shape == (0, 32)


def test_unreadable_image_names_the_file(tiny, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match="broken.jpg"):
        embed_images([bad], tiny, device="cpu")


# --------------------------------------------------------------------------- pair search


def _unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _planted(rng, n, pairs, d=16, noise=0.02):
    x = _unit(rng, n, d)
    for i, j in pairs:
        x[j] = x[i] + noise * rng.normal(size=d).astype(np.float32)
        x[j] /= np.linalg.norm(x[j])
    return x


def test_similar_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    planted = [(0, 7), (3, 250), (100, 101), (12, 299), (7, 40)]
    x = _planted(rng, 300, planted)
    threshold = 0.9
    sims = x @ x.T
    ref_i, ref_j = np.nonzero(np.triu(sims >= threshold, k=1))
    for block in (7, 64, 4096):
        i, j, cos = similar_pairs(x, threshold, block=block)
        assert i.dtype == np.int64 and j.dtype == np.int64 and cos.dtype == np.float32
        assert list(zip(i.tolist(), j.tolist(), strict=True)) == list(zip(ref_i.tolist(), ref_j.tolist(),
                                                                           strict=True))
        assert np.all(i < j)
        np.testing.assert_allclose(cos, sims[i, j], atol=1e-6)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert {(0, 7), (3, 250), (100, 101), (12, 299), (7, 40)} <= found
    assert (0, 40) in found  # transitively close through 7


def test_similar_pairs_edges():
    empty = similar_pairs(np.zeros((0, 8), np.float32), 0.5)
    assert all(len(a) == 0 for a in empty)
    one = similar_pairs(_unit(np.random.default_rng(1), 1), 0.0)
    assert len(one[0]) == 0  # never pairs a row with itself
    same = np.tile(_unit(np.random.default_rng(2), 1), (3, 1))
    i, j, cos = similar_pairs(same, 1.0)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2)]
    assert np.all(cos <= 1.0)
    with pytest.raises(ValueError):
        similar_pairs(np.zeros(4, np.float32), 0.5)


def test_similar_between_matches_brute_force():
    rng = np.random.default_rng(3)
    old = _unit(rng, 120)
    new = _unit(rng, 45)
    new[5] = old[17]
    new[30] = old[99] + 0.02 * rng.normal(size=16).astype(np.float32)
    new[30] /= np.linalg.norm(new[30])
    threshold = 0.9
    ref_i, ref_j = np.nonzero(new @ old.T >= threshold)
    for block in (4, 50, 4096):
        i, j, cos = similar_between(new, old, threshold, block=block)
        assert list(zip(i.tolist(), j.tolist(), strict=True)) == list(zip(ref_i.tolist(), ref_j.tolist(),
                                                                           strict=True))
        np.testing.assert_allclose(cos, (new @ old.T)[i, j], atol=1e-6)
    assert {(5, 17), (30, 99)} <= set(zip(i.tolist(), j.tolist(), strict=True))
    assert all(len(a) == 0 for a in similar_between(new, old[:0], 0.5))
    with pytest.raises(ValueError, match="sizes differ"):
        similar_between(new, _unit(rng, 3, d=8), 0.5)


def test_tiny_config_json_is_open_clip_layout(tiny):
    config = json.loads((Path(tiny.pretrained).parent / "open_clip_config.json").read_text())
    assert set(config["model_cfg"]) >= {"embed_dim", "vision_cfg", "text_cfg"}
    assert "ccub" not in config  # the folder's random-weights marker is a file of its own
    assert random_marker(Path(tiny.pretrained).parent)["random_weights"] is True


def test_a_folder_without_weights_is_refused_before_open_clip_would_build_a_random_model(tmp_path, tiny):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((Path(tiny.pretrained).parent / "open_clip_config.json").read_text())
    with pytest.raises(ModelUnavailable, match=r"no weights \(\*.safetensors, \*.bin, \*.pth\)"):
        parse_clip(str(folder), tmp_path)
