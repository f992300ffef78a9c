"""Perceptual distances for SCoFT's losses (finetune.backbones), on tiny random backbones, offline.

Each distance is recomputed here from the reference code's formula (cmubig/SCoFT,
utilities/*_loss.py) with torch and torchvision operations on the backbone's own weights.
"""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("lpips")
pytest.importorskip("open_clip")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from ccub.models import ModelUnavailable  # noqa: E402
from finetune.backbones import (  # noqa: E402
    BACKBONES,
    DEFAULT_CONTRASTIVE,
    DEFAULT_PERCEPTUAL,
    DREAMSIM_FILES,
    ClipBackbone,
    _load_vgg16_trunk,
    _read_vgg16,
    build_backbone,
    clip_views,
    vgg16_checkpoint,
)

HAS_DREAMSIM = importlib.util.find_spec("dreamsim") is not None
needs_dreamsim = pytest.mark.skipif(not HAS_DREAMSIM, reason="the dreamsim package is not installed")
TINY = [pytest.param(name, marks=needs_dreamsim) if name == "dreamsim" else name for name in BACKBONES]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
BICUBIC = T.InterpolationMode.BICUBIC


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On 2 cores shared with other test workers, OpenMP threads spinning against each other make
    # these small convolutions many times slower; one thread is faster and the results the same.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Each tiny backbone, built once for the module (the tiny CLIP in the shared test model cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))
        return {name: build_backbone(name, tiny=True) for name in BACKBONES if name != "dreamsim" or HAS_DREAMSIM}


def images(batch: int = 2, size: tuple[int, int] = (32, 32), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=generator) * 2 - 1


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def unit(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


# --------------------------------------------------------------------------- every backbone


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbone_is_a_frozen_differentiable_distance(tiny, name):
    backbone = tiny[name]
    assert backbone.random_weights and "RANDOM WEIGHTS" in backbone.describe()
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not any(m.training for m in backbone.modules())
    torch.nn.Sequential(backbone).train()  # a parent switching to training leaves it frozen in eval mode
    assert not any(m.training for m in backbone.modules())

    x, y = images(seed=1), images(seed=2)
    same = backbone(x, x.clone(), generator=seeded(0))
    assert same.shape == (2,) and same.dtype == torch.float32
    assert same.abs().max().item() < 1e-6
    x.requires_grad_(True)
    d = backbone(x, y, generator=seeded(0))
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum().item() > 0


@pytest.mark.parametrize("name", TINY)
def test_symmetric_and_larger_for_more_different_images(tiny, name):
    backbone = tiny[name]
    x, far = images(2, (48, 64), seed=3), images(2, (48, 64), seed=4)
    near = x + 0.05 * torch.randn(x.shape, generator=seeded(5))
    # Every reference distance is symmetric (clip: for the same draw of views).
    torch.testing.assert_close(backbone(x, far, generator=seeded(6)), backbone(far, x, generator=seeded(6)),
                               rtol=1e-5, atol=1e-6)
    assert (backbone(x, near, generator=seeded(6)) < backbone(x, far, generator=seeded(6))).all()
    assert backbone(x, x, generator=seeded(6)).abs().max().item() < 1e-6


def test_defaults_are_the_reference_choices():
    assert DEFAULT_PERCEPTUAL == "vgg" and DEFAULT_CONTRASTIVE == "dreamsim"
    assert set(BACKBONES) == {"vgg", "lpips", "clip", "dinov2", "dreamsim", "blip2"}
    from finetune import backbones

    assert set(backbones._BUILDERS) == set(BACKBONES) == set(backbones.DEFAULT_WEIGHTS), "one registry"


# --------------------------------------------------------------------------- vgg (the reference's L_P)


def vgg_by_hand(trunk, x, y):
    """lpips_loss.py: features of [0, 1] images with ImageNet normalisation, full resolution, each
    tap's channel vectors divided by (norm + 1e-10), squared differences summed over channels,
    averaged over positions, summed over the taps. Each tap from its own run of the trunk."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    total = 0
    for tap in (3, 8, 15, 22, 28):  # relu1_2, relu2_2, relu3_3, relu4_3, conv5_3
        fx = trunk[:tap + 1]((unit(x) - mean) / std)
        fy = trunk[:tap + 1]((unit(y) - mean) / std)
        fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + ((fx - fy) ** 2).sum(1).mean(dim=(1, 2))
    return total


def test_vgg_equals_the_reference_formula_at_full_resolution(tiny):
    backbone = tiny["vgg"]
    assert backbone.input_size is None and "full resolution" in backbone.describe()
    x, y = images(2, (48, 64), seed=7), images(2, (48, 64), seed=8)
    torch.testing.assert_close(backbone(x, y), vgg_by_hand(backbone.features, x, y), rtol=1e-5, atol=1e-6)


def test_vgg_taps_are_what_the_reference_slicing_computes(tiny):
    """The reference slices torchvision's trunk before the ReLUs at 3, 8, 15, 22, 29 and keeps each
    slice's output; the next slice's in-place ReLU then overwrites it, so four of the five features
    it compares are after ReLU."""
    backbone = tiny["vgg"]
    trunk = backbone.features
    assert all(m.inplace for m in trunk if isinstance(m, torch.nn.ReLU))  # as torchvision builds them
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    pixels = (unit(images(1, (32, 32), seed=9)) - mean) / std
    stored, h = [], pixels
    for start, end in zip((0, 3, 8, 15, 22), (3, 8, 15, 22, 29), strict=True):
        h = trunk[start:end](h)
        stored.append(h)
    ours = backbone.feature_maps(pixels)
    for kept, mine in zip(stored, ours, strict=True):
        torch.testing.assert_close(kept, mine)
    assert all((f >= 0).all() for f in stored[:4]) and (stored[4] < 0).any()


def test_vgg_computes_its_normalisation_in_float32():
    backbone = build_backbone("vgg", tiny=True, dtype=torch.bfloat16)
    x, y = images(seed=10), images(seed=11)
    d = backbone(x, y)
    assert d.dtype == torch.float32 and torch.isfinite(d).all() and (d > 0).all()
    assert backbone(x, x).abs().max().item() == 0


def _fake_vgg16_checkpoint(trunk_state, tmp_path, monkeypatch):
    """A stand-in for torchvision's vgg16-397923af.pth (the tiny trunk halved, in torchvision's
    names, plus a classifier entry) where torchvision keeps it."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    path = vgg16_checkpoint()
    assert path == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir(parents=True)
    state = {"features." + ".".join(name.split(".")[-2:]): value * 0.5 for name, value in trunk_state.items()}
    state["classifier.0.weight"] = torch.zeros(1)
    torch.save(state, path)
    return path


def test_vgg_loads_torchvision_vgg16_weights_from_the_hub_cache(tiny, tmp_path, monkeypatch):
    trunk = tiny["vgg"].features.state_dict()
    path = _fake_vgg16_checkpoint(trunk, tmp_path, monkeypatch)
    backbone = build_backbone("vgg")
    assert not backbone.random_weights and str(path) in backbone.describe()
    for name, value in backbone.features.state_dict().items():
        torch.testing.assert_close(value, trunk[name] * 0.5)


def _no_network(*args, **kwargs):
    raise AssertionError(f"tried the network: {args}")


@pytest.mark.parametrize("name", ["vgg", "lpips"])
def test_vgg16_backbones_without_cached_weights_say_how_to_get_them(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # as if set_dir was never called: TORCH_HOME decides
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    with pytest.raises(ModelUnavailable, match="vgg16") as info:
        build_backbone(name)
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "torchvision.models.vgg16(weights='IMAGENET1K_V1')" in message


def test_vgg16_files_that_are_not_vgg16_are_rejected_before_building(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    with pytest.raises(ModelUnavailable, match="not a torchvision VGG16 checkpoint"):
        build_backbone("vgg", weights=str(other))
    broken = tmp_path / "vgg16-397923af.pth"
    broken.write_bytes(b"half a download")
    with pytest.raises(ModelUnavailable, match="cannot read the VGG16 checkpoint"):
        build_backbone("lpips", weights=str(broken))


# --------------------------------------------------------------------------- lpips (ccub's former L_P)


@pytest.mark.filterwarnings("ignore:.*(pretrained|weights).*:UserWarning")  # lpips calls torchvision's old API
def test_lpips_equals_the_package_and_loads_torchvision_vgg16_weights(tiny, tmp_path, monkeypatch):
    import lpips

    backbone = tiny["lpips"]
    reference = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    reference.load_state_dict(backbone.lpips.state_dict())
    reference.eval()
    x, y = images(2, (48, 64), seed=12), images(2, (48, 64), seed=13)
    # LPIPS wants [-1, 1]: the [0, 1] image resized (bilinear) and mapped back.
    def resized(v):
        return 2 * F.interpolate(unit(v), size=(32, 32), mode="bilinear", align_corners=False) - 1

    expected = reference(resized(x), resized(y)).flatten()
    torch.testing.assert_close(backbone(x, y), expected, rtol=1e-5, atol=1e-6)

    # The trunk inside lpips takes torchvision's names too.
    trunk = backbone.lpips.net.state_dict()
    path = _fake_vgg16_checkpoint(trunk, tmp_path, monkeypatch)
    _load_vgg16_trunk(reference.net, _read_vgg16(path), path)
    for name, value in reference.net.state_dict().items():
        torch.testing.assert_close(value, trunk[name] * 0.5)


# --------------------------------------------------------------------------- clip


def torchvision_views(x, y, size, augmentations, seed):
    """clipconv_loss.py's views with torchvision's own transforms and its global RNG seeded: the
    plain Resize + CenterCrop view, then per pair `augmentations` draws of RandomPerspective and
    RandomResizedCrop applied to x and y together."""
    plain = T.Compose([T.Resize(size, interpolation=BICUBIC, antialias=False), T.CenterCrop(size)])
    augment = T.Compose([T.RandomPerspective(fill=0, p=1.0, distortion_scale=0.5),
                         T.RandomResizedCrop(size, scale=(0.8, 0.8), ratio=(1.0, 1.0), antialias=False)])
    xs, ys = [plain(x)], [plain(y)]
    per_pair = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for b in range(x.shape[0]):
            per_pair.append([augment(torch.cat([x[b:b + 1], y[b:b + 1]])) for _ in range(augmentations)])
    for v in range(augmentations):
        xs.append(torch.cat([pair[v][:1] for pair in per_pair]))
        ys.append(torch.cat([pair[v][1:] for pair in per_pair]))
    return torch.cat(xs), torch.cat(ys)


def test_clip_views_are_torchvisions_transforms_for_the_same_seed():
    x, y = unit(images(2, (48, 64), seed=14)), unit(images(2, (48, 64), seed=15))
    ours = clip_views(x, y, 32, 4, seeded(16))
    theirs = torchvision_views(x, y, 32, 4, seed=16)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.shape == (5 * 2, 3, 32, 32)
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)


def test_clip_equals_last_block_token_cosine_over_the_reference_views(tiny):
    backbone = tiny["clip"]
    visual = backbone.visual
    size = backbone.input_size
    x, y = images(2, (48, 64), seed=17) * 1.1, images(2, (48, 64), seed=18)  # x overshoots: clamped
    xs, ys = torchvision_views(unit(x).clamp(0, 1), unit(y).clamp(0, 1), size, 10, seed=19)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in CLIP)

    def last_block(views):
        out = visual.forward_intermediates((views - mean) / std, indices=[len(visual.transformer.resblocks) - 1],
                                           output_fmt="NLC", output_extra_tokens=True, intermediates_only=True)
        return torch.cat([out["image_intermediates_prefix"][-1], out["image_intermediates"][-1]], dim=1)

    fx, fy = last_block(xs), last_block(ys)  # (views * B, tokens, channels)
    cos_over_tokens = (fx * fy).sum(1) / (fx.norm(dim=1) * fy.norm(dim=1))  # (views * B, channels)
    expected = (1 - cos_over_tokens).mean(1).view(11, 2).mean(0)
    torch.testing.assert_close(backbone(x, y, generator=seeded(19)), expected, rtol=1e-5, atol=1e-6)


def test_clip_draws_are_reproducible_from_a_seed(tiny):
    backbone = tiny["clip"]
    x, y = images(seed=20), images(seed=21)
    state = torch.random.get_rng_state()
    first = backbone(x, y, generator=seeded(22))
    torch.testing.assert_close(backbone(x, y, generator=seeded(22)), first, rtol=0, atol=0)
    assert not torch.allclose(backbone(x, y, generator=seeded(23)), first)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is never drawn from

    # Without a generator: the backbone's own, seeded at build, advancing call after call.
    a = ClipBackbone(backbone.visual, source="tiny", random_weights=True, seed=5)
    b = ClipBackbone(backbone.visual, source="tiny", random_weights=True, seed=5)
    one = a(x, y)
    torch.testing.assert_close(b(x, y), one, rtol=0, atol=0)
    assert not torch.allclose(a(x, y), one)
    torch.testing.assert_close(a(x, y, generator=seeded(22)), first, rtol=0, atol=0)


def test_clip_without_augmentations_is_the_plain_view(tiny):
    plain = ClipBackbone(tiny["clip"].visual, source="tiny", random_weights=True, augmentations=0)
    x, y = images(seed=24), images(seed=25)
    full = tiny["clip"](x, y, generator=seeded(26))
    assert "1 views" in plain.describe() and "11 views" in tiny["clip"].describe()
    assert not torch.allclose(plain(x, y), full)
    with pytest.raises(ValueError, match="clip augmentations"):
        ClipBackbone(tiny["clip"].visual, source="tiny", random_weights=True, augmentations=-1)


# --------------------------------------------------------------------------- dinov2


def test_dinov2_equals_mse_of_x_prenorm_with_the_hub_position_interpolation(tiny):
    backbone = tiny["dinov2"]
    model = backbone.model
    x, y = images(2, (48, 64), seed=27) * 1.1, images(2, (48, 64), seed=28)
    prepare = T.Compose([T.Resize(32, interpolation=BICUBIC, antialias=False), T.CenterCrop(32),
                         T.Normalize(*IMAGENET)])
    emb = model.embeddings
    grid = emb.position_embeddings[:, 1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)  # the 64 px grid
    # dinov2's interpolate_pos_encoding: scale factor (4 + 0.1) / 8 for a 4 x 4 patch grid.
    hub = F.interpolate(grid, scale_factor=(4.1 / 8, 4.1 / 8), mode="bicubic", antialias=False)
    sized = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False)
    assert not torch.allclose(hub, sized)  # transformers' own interpolation samples elsewhere
    position = torch.cat([emb.position_embeddings[:, :1], hub.permute(0, 2, 3, 1).reshape(1, 16, -1)], dim=1)

    def prenorm(v):
        pixels = prepare(unit(v).clamp(0, 1))
        h = torch.cat([emb.cls_token.expand(len(v), -1, -1), emb.patch_embeddings(pixels)], dim=1) + position
        for layer in model.encoder.layer:
            h = layer(h)
        # x_prenorm: the final layer norm is what the model's last_hidden_state adds.
        torch.testing.assert_close(model.layernorm(h), model(pixel_values=pixels).last_hidden_state)
        return h

    expected = ((prenorm(x) - prenorm(y)) ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(backbone(x, y), expected, rtol=1e-5, atol=1e-6)


def test_dinov2_hub_id_not_in_the_cache_is_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="ccub-tests/no-such-dinov2"):
        build_backbone("dinov2", weights="ccub-tests/no-such-dinov2")


# --------------------------------------------------------------------------- dreamsim


def dreamsim_input(v):
    """dreamsim_loss.py: [0, 1] without clamping, Resize(size, bicubic) + CenterCrop(size)."""
    return T.Compose([T.Resize(32, interpolation=BICUBIC, antialias=False), T.CenterCrop(32)])(unit(v))


@needs_dreamsim
def test_dreamsim_equals_the_package_model_on_the_reference_preprocessing(tiny):
    backbone = tiny["dreamsim"]
    model = backbone.model
    assert type(model).__module__ == "dreamsim.model"  # the package's own PerceptualModel
    x, y = images(2, (48, 64), seed=29) * 1.1, images(2, (48, 64), seed=30)
    torch.testing.assert_close(backbone(x, y), model(dreamsim_input(x), dreamsim_input(y)), rtol=1e-5, atol=1e-6)
    one = backbone(x[:1], y[:1])  # the package squeezes a batch of one to a scalar
    assert one.shape == (1,)
    torch.testing.assert_close(one, backbone(x, y)[:1], rtol=1e-5, atol=1e-6)


@needs_dreamsim
def test_dreamsim_equals_its_embedding_formula(tiny):
    """The ensemble's embedding: DINO's class token after block 12 (ImageNet normalisation), CLIP's
    and OpenCLIP's projected class tokens (CLIP normalisation), concatenated, centred, unit-norm."""
    extractors = tiny["dreamsim"].model.extractor_list
    x, y = images(2, (48, 64), seed=31), images(2, (48, 64), seed=32)

    def embed(v):
        pixels = dreamsim_input(v)
        dino = extractors[0].model
        tokens = []
        handle = dino.blocks[11].register_forward_hook(lambda _m, _a, out: tokens.append(out))
        dino(T.Normalize(*IMAGENET)(pixels))
        handle.remove()
        parts = [tokens[0][:, 0]]
        for extractor in extractors[1:]:
            parts.append(extractor.model(T.Normalize(*CLIP)(pixels)) @ extractor.proj)
        e = torch.cat(parts, dim=-1)
        e = e - e.mean(dim=-1, keepdim=True)
        return e / e.norm(dim=-1, keepdim=True)

    ex, ey = embed(x), embed(y)
    expected = 1 - (ex * ey).sum(-1) / (ex.norm(dim=-1) * ey.norm(dim=-1))
    torch.testing.assert_close(tiny["dreamsim"](x, y), expected, rtol=1e-5, atol=1e-6)


@needs_dreamsim
def test_dreamsim_without_its_weights_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path / "ccub"))
    with pytest.raises(ModelUnavailable) as info:
        build_backbone("dreamsim")
    message = str(info.value)
    assert str(tmp_path / "ccub" / "dreamsim") in message and "ensemble_lora/adapter_config.json" in message
    assert "--backbone lpips" in message and "dreamsim(pretrained=True" in message
    assert not (tmp_path / "ccub").exists()  # nothing created on the way


@needs_dreamsim
def test_dreamsim_builds_through_the_package_factory_and_never_downloads(tiny, tmp_path, monkeypatch):
    import dreamsim

    for name in DREAMSIM_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    calls = []

    def factory(**kwargs):
        calls.append(kwargs)
        return tiny["dreamsim"].model, None

    monkeypatch.setattr(dreamsim, "dreamsim", factory)
    backbone = build_backbone("dreamsim", weights=str(tmp_path))
    assert calls == [{"pretrained": True, "device": "cpu", "cache_dir": str(tmp_path)}]
    assert backbone.model is tiny["dreamsim"].model and backbone.input_size == 224
    assert not backbone.random_weights and str(tmp_path) in backbone.describe()

    def downloading(**kwargs):  # what the package does when a file is missing from its cache
        torch.hub.download_url_to_file("https://example.invalid/dreamsim.zip", str(tmp_path / "pretrained.zip"))

    monkeypatch.setattr(dreamsim, "dreamsim", downloading)
    with pytest.raises(ModelUnavailable, match=r"tried to download https://example\.invalid.*--backbone lpips"):
        build_backbone("dreamsim", weights=str(tmp_path))


@needs_dreamsim
def test_dreamsim_is_float32_only():
    with pytest.raises(ValueError, match="float32 only"):
        build_backbone("dreamsim", tiny=True, dtype=torch.bfloat16)


@pytest.mark.skipif(HAS_DREAMSIM, reason="dreamsim is installed here")
def test_dreamsim_not_installed_says_what_to_do():
    with pytest.raises(ModelUnavailable, match=r"pip install dreamsim.*--backbone lpips"):
        build_backbone("dreamsim", tiny=True)


# --------------------------------------------------------------------------- blip2


def blip2_by_hand(model, v):
    """blip2_loss.py: [0, 1] without clamping, Resize((size, size), bicubic), CLIP normalisation;
    ln_vision(visual_encoder(x)) with LAVIS's epsilon 1e-5, the Q-Former's query tokens attending
    to it, vision_proj, unit norm per query."""
    pixels = T.Normalize(*CLIP)(T.Resize((32, 32), interpolation=BICUBIC, antialias=False)(unit(v)))
    vision = model.vision_model
    hidden = vision.encoder(inputs_embeds=vision.embeddings(pixels)).last_hidden_state
    ln = vision.post_layernorm
    hidden = F.layer_norm(hidden, ln.normalized_shape, ln.weight, ln.bias, eps=1e-5)
    queries = model.qformer(query_embeds=model.query_tokens.expand(len(v), -1, -1), encoder_hidden_states=hidden,
                            encoder_attention_mask=torch.ones(hidden.shape[:-1], dtype=torch.long))
    return F.normalize(model.vision_projection(queries.last_hidden_state), dim=-1)


def test_blip2_equals_mse_of_normalised_qformer_query_embeddings(tiny):
    backbone = tiny["blip2"]
    x, y = images(2, (48, 64), seed=33) * 1.1, images(2, (48, 64), seed=34)
    ex, ey = blip2_by_hand(backbone.model, x), blip2_by_hand(backbone.model, y)
    assert ex.shape == (2, 4, 16)  # (B, queries, projection)
    torch.testing.assert_close(backbone(x, y), ((ex - ey) ** 2).mean(dim=(1, 2)), rtol=1e-5, atol=1e-6)


def test_blip2_saved_with_save_pretrained_loads_back(tiny, tmp_path):
    tiny["blip2"].model.save_pretrained(tmp_path / "blip2")
    backbone = build_backbone("blip2", weights=str(tmp_path / "blip2"))
    assert backbone.input_size == 32 and str(tmp_path / "blip2") in backbone.describe()
    assert backbone.model.vision_model.post_layernorm.eps == 1e-5
    x, y = images(seed=35), images(seed=36)
    torch.testing.assert_close(backbone(x, y), tiny["blip2"](x, y), rtol=1e-5, atol=1e-6)


def test_blip2_hub_id_not_in_the_cache_is_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="ccub-tests/no-such-blip2"):
        build_backbone("blip2", weights="ccub-tests/no-such-blip2")


# --------------------------------------------------------------------------- arguments


def test_unknown_name_and_bad_arguments():
    with pytest.raises(ValueError, match=", ".join(BACKBONES)):
        build_backbone("vgg19")
    with pytest.raises(ValueError, match="one or the other"):
        build_backbone("clip", tiny=True, weights="ViT-B-32:openai")
    with pytest.raises(ValueError, match="clip backbone only"):
        build_backbone("dinov2", tiny=True, clip_augmentations=2)
    with pytest.raises(ValueError, match="float16"):
        build_backbone("lpips", tiny=True, dtype=torch.float16)
    with pytest.raises(ValueError, match="floating point"):
        build_backbone("vgg", tiny=True, dtype=torch.int32)


def test_mismatched_inputs_are_refused(tiny):
    with pytest.raises(ValueError, match="same shape"):
        tiny["dinov2"](images(2), images(1))
    with pytest.raises(ValueError, match="same shape"):
        tiny["vgg"](images(2)[:, :1], images(2)[:, :1])


def test_describe_is_one_line(tiny):
    for backbone in tiny.values():
        assert "\n" not in backbone.describe() and backbone.describe().startswith(f"{backbone.name}: ")
