"""Perceptual distances for SCoFT's losses (finetune.backbones), on tiny random backbones, offline."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lpips")
pytest.importorskip("open_clip")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

from ccub.models import ModelUnavailable  # noqa: E402
from finetune.backbones import (  # noqa: E402
    BACKBONES,
    ClipBackbone,
    _load_vgg16_trunk,
    _read_vgg16,
    build_backbone,
    vgg16_checkpoint,
)

TINY = ("lpips", "clip", "dinov2")


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
        return {name: build_backbone(name, tiny=True) for name in TINY}


def images(batch: int = 2, size: tuple[int, int] = (32, 32), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=generator) * 2 - 1


def by_hand(x: torch.Tensor, size: tuple[int, int], mean=None, std=None) -> torch.Tensor:
    """[-1, 1] -> [0, 1] -> bilinear resize -> (x - mean) / std, written out independently."""
    x = F.interpolate((x + 1) / 2, size=size, mode="bilinear", align_corners=False)
    if mean is not None:
        x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbone_is_a_frozen_differentiable_distance(tiny, name):
    backbone = tiny[name]
    assert backbone.random_weights and "RANDOM WEIGHTS" in backbone.describe()
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not any(m.training for m in backbone.modules())
    torch.nn.Sequential(backbone).train()  # a parent switching to training leaves it frozen in eval mode
    assert not any(m.training for m in backbone.modules())

    x, y = images(seed=1), images(seed=2)
    same = backbone(x, x.clone())
    assert same.shape == (2,) and same.dtype == torch.float32
    assert same.abs().max().item() < 1e-6
    x.requires_grad_(True)
    d = backbone(x, y)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert x.grad is not None and x.grad.abs().sum().item() > 0


@pytest.mark.parametrize("name", TINY)
def test_other_resolutions_are_resized(tiny, name):
    backbone = tiny[name]
    x, y = images(3, (48, 64), seed=3), images(3, (48, 64), seed=4)
    x.requires_grad_(True)
    d = backbone(x, y)
    assert d.shape == (3,) and (d > 0).all()
    assert backbone(x, x).abs().max().item() < 1e-6
    d.sum().backward()
    assert x.grad.abs().sum().item() > 0


@pytest.mark.filterwarnings("ignore:.*(pretrained|weights).*:UserWarning")  # lpips calls torchvision's old API
def test_lpips_equals_the_package_and_loads_torchvision_vgg16_weights(tiny, tmp_path, monkeypatch):
    import lpips

    backbone = tiny["lpips"]
    reference = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    reference.load_state_dict(backbone.lpips.state_dict())
    reference.eval()
    x, y = images(2, (48, 64), seed=5), images(2, (48, 64), seed=6)
    # LPIPS wants [-1, 1]: the resized [0, 1] image mapped back.
    expected = reference(2 * by_hand(x, (32, 32)) - 1, 2 * by_hand(y, (32, 32)) - 1).flatten()
    torch.testing.assert_close(backbone(x, y), expected, rtol=1e-5, atol=1e-6)

    # The real trunk: a stand-in for torchvision's vgg16-397923af.pth (the tiny trunk halved, in
    # torchvision's names) where torchvision keeps it, loaded into a trunk built by lpips.
    # (Building one more LPIPS through build_backbone("lpips") would cost seconds of random init.)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    path = vgg16_checkpoint()
    assert path == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    trunk = backbone.lpips.net.state_dict()
    path.parent.mkdir(parents=True)
    torch.save({"features." + name.split(".", 1)[1]: value * 0.5 for name, value in trunk.items()}, path)
    _load_vgg16_trunk(reference.net, _read_vgg16(path), path)
    for name, value in reference.net.state_dict().items():
        torch.testing.assert_close(value, trunk[name] * 0.5)


def _no_network(*args, **kwargs):
    raise AssertionError(f"tried the network: {args}")


def test_lpips_without_cached_vgg16_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # as if set_dir was never called: TORCH_HOME decides
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    with pytest.raises(ModelUnavailable, match="vgg16") as info:
        build_backbone("lpips")
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "torchvision.models.vgg16(weights='IMAGENET1K_V1')" in message


def test_lpips_rejects_files_that_are_not_vgg16_before_building(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    with pytest.raises(ModelUnavailable, match="not a torchvision VGG16 checkpoint"):
        build_backbone("lpips", weights=str(other))
    broken = tmp_path / "vgg16-397923af.pth"
    broken.write_bytes(b"half a download")
    with pytest.raises(ModelUnavailable, match="cannot read the VGG16 checkpoint"):
        build_backbone("lpips", weights=str(broken))


def test_clip_equals_open_clip_intermediates(tiny):
    backbone = tiny["clip"]
    visual = backbone.visual
    cfg = visual.preprocess_cfg
    x, y = images(2, (48, 64), seed=7), images(2, (48, 64), seed=8)
    size = tuple(visual.image_size)

    def tokens(images_):
        out = visual.forward_intermediates(by_hand(images_, size, cfg["mean"], cfg["std"]), output_fmt="NLC",
                                           output_extra_tokens=True, intermediates_only=True)
        prefix, patches = out["image_intermediates_prefix"], out["image_intermediates"]
        return [torch.cat(pair, dim=1) for pair in zip(prefix, patches, strict=True)]

    layers = list(zip(tokens(x), tokens(y), strict=True))
    assert len(layers) == len(visual.transformer.resblocks)
    expected = sum((1 - (fx * fy).sum(-1) / (fx.norm(dim=-1) * fy.norm(dim=-1))).mean(1) for fx, fy in layers)
    torch.testing.assert_close(backbone(x, y), expected / len(layers), rtol=1e-5, atol=1e-6)


def test_clip_views_average_the_same_views_of_both_images(tiny):
    single = tiny["clip"]
    two = ClipBackbone(single.visual, source="tiny", random_weights=True, views=2)
    six = ClipBackbone(single.visual, source="tiny", random_weights=True, views=6)
    x, y = images(seed=9), images(seed=10)
    expected = (single(x, y) + single(x.flip(-1), y.flip(-1))) / 2
    torch.testing.assert_close(two(x, y), expected, rtol=1e-5, atol=1e-6)
    assert six(x, y).shape == (2,) and six(x, x).abs().max().item() < 1e-6
    assert "6 views" in six.describe()


def test_dinov2_equals_mse_of_the_last_hidden_state(tiny):
    backbone = tiny["dinov2"]
    x, y = images(2, (48, 64), seed=11), images(2, (48, 64), seed=12)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    hx = backbone.model(by_hand(x, (32, 32), mean, std)).last_hidden_state
    hy = backbone.model(by_hand(y, (32, 32), mean, std)).last_hidden_state
    torch.testing.assert_close(backbone(x, y), ((hx - hy) ** 2).mean(dim=(1, 2)), rtol=1e-5, atol=1e-6)


def test_dinov2_hub_id_not_in_the_cache_is_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="ccub-tests/no-such-dinov2"):
        build_backbone("dinov2", weights="ccub-tests/no-such-dinov2")


def test_dreamsim_has_no_tiny_version():
    with pytest.raises(ValueError, match="no tiny version"):
        build_backbone("dreamsim", tiny=True)


@pytest.mark.skipif(importlib.util.find_spec("dreamsim") is not None, reason="dreamsim is installed here")
def test_dreamsim_not_installed_says_what_to_do():
    with pytest.raises(ModelUnavailable, match=r"pip install dreamsim.*--backbone lpips\|clip\|dinov2"):
        build_backbone("dreamsim")


def test_unknown_name_and_bad_arguments():
    with pytest.raises(ValueError, match=", ".join(BACKBONES)):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="one or the other"):
        build_backbone("clip", tiny=True, weights="ViT-B-32:openai")
    with pytest.raises(ValueError, match="clip backbone only"):
        build_backbone("dinov2", tiny=True, clip_views=2)
    with pytest.raises(ValueError, match="float16"):
        build_backbone("lpips", tiny=True, dtype=torch.float16)


def test_mismatched_inputs_are_refused(tiny):
    with pytest.raises(ValueError, match="same shape"):
        tiny["dinov2"](images(2), images(1))
    with pytest.raises(ValueError, match="same shape"):
        tiny["dinov2"](images(2)[:, :1], images(2)[:, :1])


def test_describe_is_one_line(tiny):
    for backbone in tiny.values():
        assert "\n" not in backbone.describe() and backbone.describe().startswith(f"{backbone.name}: ")
