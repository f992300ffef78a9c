"""SCoFT's training data: what each micro-batch holds, and how images and negatives are flipped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from helpers import make_image  # noqa: E402

from finetune.data import TrainingData  # noqa: E402
from finetune.dataset import ScoftExample  # noqa: E402


def training_data(tmp_path, negative_flip: str, counts=(3, 0, 2), stub_caches: bool = True) -> TrainingData:
    examples = []
    for i, count in enumerate(counts):
        image = make_image(tmp_path / f"{i}.png", size=(16, 16), seed=i)
        negatives = [make_image(tmp_path / f"{i}-{k}.png", size=(16, 16), seed=100 + 10 * i + k)
                     for k in range(count)]
        examples.append(ScoftExample(image, f"caption {i}", f"generic {i}", negatives, "train"))
    # "independent" is the default: built without the argument, so the default is what is tested.
    options = {} if negative_flip == "independent" else {"negative_flip": negative_flip}
    data = TrainingData(examples, 16, random_flip=True, **options)
    if not stub_caches:
        return data
    # What the loop caches from the text encoder and the VAE, stood in for by fixed tensors.
    data.embeddings = {text: torch.full((2, 3), float(n)) for n, text in enumerate(
        ["", *(e.text for e in examples), *(e.generic for e in examples)])}
    # Distinct means and stds per image and flip, so a latent drawn from the wrong one shows.
    stats = torch.Generator().manual_seed(3)
    data.latent_stats = {flip: (torch.randn(len(examples), 4, 2, 2, generator=stats),
                                torch.rand(len(examples), 4, 2, 2, generator=stats) + 0.5)
                         for flip in (False, True)}
    return data


class StubVae:
    """A VAE whose latent distribution of an image is a fixed function of its pixels."""

    config = SimpleNamespace(scaling_factor=0.25)
    dtype = torch.float32

    def encode(self, pixels):
        self.seen = (pixels.device.type, pixels.dtype)
        mean = pixels[:, :, ::4, ::4][:, :3].repeat(1, 2, 1, 1)[:, :4] * 2 + 1
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=mean, std=pixels[:, :1, ::4, ::4].abs() + 0.1))


def test_negatives_are_flipped_on_their_own_draw_as_in_the_reference(tmp_path):
    data = training_data(tmp_path, "independent")
    picks = [pick for epoch in range(200) for pick in data.epoch_plan(7, epoch)]
    pairs = [(pick.flip, flip) for pick in picks for flip in pick.negative_flips]
    assert all(len(p.negative_flips) == len(data.examples[p.index].negatives) for p in picks)
    same = sum(a == b for a, b in pairs) / len(pairs)
    assert 0.45 < same < 0.55, "a negative's flip does not follow its image's"
    within = [p.negative_flips for p in picks if len(p.negative_flips) == 3]
    assert 0.4 < sum(f[0] == f[1] for f in within) / len(within) < 0.6, "nor another negative's"
    # Same seed, same plan: a resumed run replays it.
    assert data.epoch_plan(7, 3) == data.epoch_plan(7, 3) != data.epoch_plan(8, 3)


def test_negatives_follow_their_image_when_asked(tmp_path):
    data = training_data(tmp_path, "with_image")
    for pick in (p for epoch in range(50) for p in data.epoch_plan(7, epoch)):
        assert pick.negative_flips == [pick.flip] * len(data.examples[pick.index].negatives)
    # The images' own order and flips do not depend on how negatives are flipped.
    other = training_data(tmp_path, "independent")
    assert [(p.index, p.flip) for p in data.epoch_plan(7, 1)] == [(p.index, p.flip) for p in other.epoch_plan(7, 1)]


def test_batch_holds_each_negative_as_drawn_and_masks_the_padding(tmp_path):
    data = training_data(tmp_path, "independent")
    picks = data.positions(5, [0, 1, 2])
    vae = SimpleNamespace(config=SimpleNamespace(scaling_factor=1.0))
    batch = data.batch(picks, vae, torch.Generator().manual_seed(0), "cpu", torch.float32)
    for row, pick in enumerate(picks):
        image = data.pixels[pick.index].flip(-1) if pick.flip else data.pixels[pick.index]
        assert torch.equal(batch.pixels[row], image.float() / 127.5 - 1)
        count = len(data.examples[pick.index].negatives)
        assert batch.negative_mask[row].tolist() == [True] * count + [False] * (3 - count)
        for slot, flip in enumerate(pick.negative_flips):
            negative = data.negatives[pick.index][slot]
            expected = negative.flip(-1) if flip else negative
            assert torch.equal(batch.negatives[row, slot], expected.float() / 127.5 - 1)
        assert (batch.negatives[row, count:] == -1).all(), "padding stays zero (black) and masked"


def test_batch_latents_are_drawn_from_each_images_own_distribution_in_its_flip(tmp_path):
    data = training_data(tmp_path, "independent")
    picks = data.positions(5, [0, 1, 2])
    assert {p.flip for p in picks} == {False, True}, "the seed gives both flips (else pick another)"
    batch = data.batch(picks, StubVae(), torch.Generator().manual_seed(9), "cpu", torch.float64)
    noise = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(9))
    for row, pick in enumerate(picks):
        mean, std = (data.latent_stats[pick.flip][k][pick.index] for k in (0, 1))
        expected = ((mean + std * noise[row]) * 0.25).double()
        assert batch.latents.dtype == torch.float64
        assert torch.allclose(batch.latents[row], expected, atol=1e-6)
        assert batch.indices[row] == pick.index and batch.flips[row] == pick.flip
        example = data.examples[pick.index]
        assert torch.equal(batch.text[row], data.embeddings[example.text])
        assert torch.equal(batch.generic[row], data.embeddings[example.generic])


def test_batch_without_a_latent_cache_encodes_the_flipped_pixels(tmp_path):
    data = training_data(tmp_path, "independent")
    data.latent_stats = {}
    picks = data.positions(5, [0, 1, 2])
    vae = StubVae()
    vae.dtype = torch.float64
    batch = data.batch(picks, vae, torch.Generator().manual_seed(9), "cpu", torch.float32)
    assert vae.seen == ("cpu", torch.float64), "the VAE is given its own dtype"
    assert batch.latents.dtype == torch.float32
    dist = vae.encode(batch.pixels).latent_dist
    noise = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(batch.latents, (dist.mean + dist.std * noise) * 0.25, atol=1e-6)


def test_stream_positions_run_epoch_after_epoch(tmp_path):
    data = training_data(tmp_path, "independent")
    plans = [data.epoch_plan(11, epoch) for epoch in range(3)]
    # Positions out of order and across epochs pick what each epoch's plan holds there.
    positions = [7, 0, 4, 3, 8, 2]
    assert data.positions(11, positions) == [plans[p // 3][p % 3] for p in positions]
    assert sorted(p.index for p in plans[1]) == [0, 1, 2], "each epoch visits every image once"
    assert data.positions(11, [0]) != data.positions(12, [0]) or data.positions(11, [1]) != data.positions(12, [1])


def test_without_random_flip_nothing_is_flipped(tmp_path):
    data = training_data(tmp_path, "independent")
    data.random_flip = False
    picks = [p for epoch in range(5) for p in data.epoch_plan(1, epoch)]
    assert all(p.flip is False and p.negative_flips == [False] * len(data.examples[p.index].negatives)
               for p in picks)
    assert sorted(p.index for p in picks[:3]) == [0, 1, 2]


def test_each_epoch_flips_about_half_the_images(tmp_path):
    data = training_data(tmp_path, "independent")
    flips = [p.flip for epoch in range(300) for p in data.epoch_plan(2, epoch)]
    assert 0.45 < sum(flips) / len(flips) < 0.55


@pytest.mark.parametrize("size", [(64, 32), (32, 56), (16, 16), (100, 41), (41, 100)])
def test_load_square_resizes_the_shorter_side_and_centre_crops_as_torchvision_does(tmp_path, size):
    from PIL import Image
    from torchvision import transforms

    from finetune.data import load_square

    path = make_image(tmp_path / "x.png", size=size, seed=4)
    ours = load_square(path, 16)
    with Image.open(path) as im:
        resized = transforms.PILToTensor()(transforms.Resize(16, transforms.InterpolationMode.BILINEAR)(
            im.convert("RGB")))
    assert ours.dtype == torch.uint8 and ours.shape == (3, 16, 16)
    # The resize is torchvision's exactly; the centre crop leaves the odd pixel of a margin at the end.
    top, left = ((resized.shape[k] - 16) // 2 for k in (1, 2))
    assert torch.equal(ours, resized[:, top:top + 16, left:left + 16])


def test_load_square_applies_the_exif_orientation(tmp_path):
    from PIL import Image

    from finetune.data import load_square

    upright = load_square(make_image(tmp_path / "a.png", size=(16, 32), seed=2), 16)
    with Image.open(tmp_path / "a.png") as im:
        exif = Image.Exif()
        exif[0x0112] = 8  # stored turned 90 degrees clockwise: a viewer turns it back
        im.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "b.png", exif=exif)
    assert torch.equal(load_square(tmp_path / "b.png", 16), upright)


def test_seeded_generators_are_the_documented_hash_of_their_parts():
    import hashlib

    from finetune.data import seeded

    digest = hashlib.sha256(b"order:1024:3").digest()
    assert seeded("order", 1024, 3).initial_seed() == int.from_bytes(digest[:8], "big") & (2**63 - 1)
    assert seeded("order", 1024, 3).initial_seed() != seeded("order", 1024, 4).initial_seed()


class CountingEncoder:
    """A text encoder whose embedding of a prompt is its length; counts the prompts it sees."""

    def __init__(self):
        self.seen = []

    def tokenizer(self, prompts, **kwargs):
        assert kwargs["padding"] == "max_length" and kwargs["truncation"] is True
        self.seen.extend(prompts)
        return SimpleNamespace(input_ids=torch.tensor([[float(len(p))] * 3 for p in prompts]))

    def __call__(self, ids):
        return (ids[:, :, None].double().expand(-1, -1, 2),)


def test_cache_text_embeds_each_distinct_prompt_once(tmp_path):
    data = training_data(tmp_path, "independent")
    many = [ScoftExample(e.image, e.text + "x" * n, e.generic, [], "train")
            for n, e in enumerate(data.examples * 14)]
    data = TrainingData(many, 16, random_flip=False)
    encoder = CountingEncoder()
    encoder.tokenizer.__func__.model_max_length = 77
    data.cache_text(encoder.tokenizer, encoder, "cpu", torch.float32)
    prompts = {"", *(e.text for e in many), *(e.generic for e in many)}
    assert len(prompts) > 32, "more than one chunk of the encoder's batch"
    assert sorted(encoder.seen) == sorted(prompts)
    for prompt in prompts:
        assert data.embeddings[prompt].dtype == torch.float32
        assert torch.equal(data.embeddings[prompt], torch.full((3, 2), float(len(prompt))))


@pytest.mark.parametrize("random_flip", [True, False])
def test_cache_latents_keeps_each_images_distribution_in_each_flip(tmp_path, random_flip):
    counts = (1,) * 10  # more images than one encoder batch of 8
    data = training_data(tmp_path, "independent", counts=counts, stub_caches=False)
    data.random_flip = random_flip
    vae = StubVae()
    data.cache_latents(vae, "cpu", torch.float64)
    assert set(data.latent_stats) == ({False, True} if random_flip else {False})
    for flip, (mean, std) in data.latent_stats.items():
        pixels = data.pixels.float() / 127.5 - 1
        dist = vae.encode(pixels.flip(-1) if flip else pixels).latent_dist
        assert mean.dtype == std.dtype == torch.float64
        assert torch.allclose(mean, dist.mean.double()) and torch.allclose(std, dist.std.double())


@pytest.mark.parametrize("cached", [True, False], ids=["latent-cache", "encoded"])
def test_every_tensor_of_a_batch_lands_on_the_requested_device(tmp_path, cached):
    # The meta device stands in for a GPU: a tensor left behind on the CPU shows.
    data = training_data(tmp_path, "independent")
    if not cached:
        data.latent_stats = {}
    vae = StubVae()
    batch = data.batch(data.positions(5, [0, 1, 2]), vae, torch.Generator().manual_seed(0), "meta", torch.float16)
    assert cached or vae.seen == ("meta", torch.float32), "the VAE encodes on the device"
    tensors = {name: getattr(batch, name) for name in ("latents", "pixels", "negatives", "negative_mask", "text",
                                                       "generic")}
    assert {name: t.device.type for name, t in tensors.items()} == dict.fromkeys(tensors, "meta")
    assert batch.latents.dtype == torch.float16 and batch.negative_mask.dtype == torch.bool


def test_a_pick_that_does_not_match_its_negatives_is_refused(tmp_path):
    from finetune.data import Pick

    data = training_data(tmp_path, "independent")
    vae = SimpleNamespace(config=SimpleNamespace(scaling_factor=1.0))
    with pytest.raises(ValueError):  # a silently dropped (or invented) negative would skew L_C
        data.batch([Pick(0, False, [False, True])], vae, torch.Generator().manual_seed(0), "cpu", torch.float32)


def test_the_pixel_cap_reaches_every_image_and_negative(tmp_path):
    from ccub.imaging.decode import DecodeRefused

    image = make_image(tmp_path / "a.png", size=(16, 16), seed=1)
    big = make_image(tmp_path / "b.png", size=(32, 32), seed=2)
    for example in (ScoftExample(big, "c", "g", [], "train"), ScoftExample(image, "c", "g", [big], "train")):
        with pytest.raises(DecodeRefused):
            TrainingData([example], 16, random_flip=False, max_pixels=300)
    assert len(TrainingData([ScoftExample(image, "c", "g", [image], "train")], 16, False, max_pixels=300)) == 1


def test_grey_and_transparent_images_become_rgb(tmp_path):
    import numpy as np
    from PIL import Image

    from finetune.data import load_square

    for mode in ("L", "RGBA", "P"):
        path = make_image(tmp_path / f"{mode}.png", size=(16, 16), seed=3, mode=mode)
        with Image.open(path) as im:
            expected = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
        assert torch.equal(load_square(path, 16), expected), mode
