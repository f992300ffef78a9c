"""SCoFT's training data: what each micro-batch holds, and how images and negatives are flipped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from conftest import make_image  # noqa: E402

from finetune.data import TrainingData  # noqa: E402
from finetune.dataset import ScoftExample  # noqa: E402


def training_data(tmp_path, negative_flip: str, counts=(3, 0, 2)) -> TrainingData:
    examples = []
    for i, count in enumerate(counts):
        image = make_image(tmp_path / f"{i}.png", size=(16, 16), seed=i)
        negatives = [make_image(tmp_path / f"{i}-{k}.png", size=(16, 16), seed=100 + 10 * i + k)
                     for k in range(count)]
        examples.append(ScoftExample(image, f"caption {i}", f"generic {i}", negatives, "train"))
    data = TrainingData(examples, 16, random_flip=True, negative_flip=negative_flip)
    # What the loop caches from the text encoder and the VAE, stood in for by fixed tensors.
    data.embeddings = {text: torch.full((2, 3), float(n)) for n, text in enumerate(
        ["", *(e.text for e in examples), *(e.generic for e in examples)])}
    data.latent_stats = {flip: (torch.zeros(len(examples), 4, 2, 2), torch.zeros(len(examples), 4, 2, 2))
                         for flip in (False, True)}
    return data


def test_negatives_are_flipped_on_their_own_draw_as_in_the_reference(tmp_path):
    data = training_data(tmp_path, "independent")
    picks = [pick for epoch in range(200) for pick in data.epoch_plan(7, epoch)]
    pairs = [(pick.flip, flip) for pick in picks for flip in pick.negative_flips]
    assert all(len(p.negative_flips) == len(data.negatives[p.index]) for p in picks)
    same = sum(a == b for a, b in pairs) / len(pairs)
    assert 0.45 < same < 0.55, "a negative's flip does not follow its image's"
    within = [p.negative_flips for p in picks if len(p.negative_flips) == 3]
    assert 0.4 < sum(f[0] == f[1] for f in within) / len(within) < 0.6, "nor another negative's"
    # Same seed, same plan: a resumed run replays it.
    assert data.epoch_plan(7, 3) == data.epoch_plan(7, 3) != data.epoch_plan(8, 3)


def test_negatives_follow_their_image_when_asked(tmp_path):
    data = training_data(tmp_path, "with_image")
    for pick in (p for epoch in range(50) for p in data.epoch_plan(7, epoch)):
        assert pick.negative_flips == [pick.flip] * len(data.negatives[pick.index])
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
        count = len(data.negatives[pick.index])
        assert batch.negative_mask[row].tolist() == [True] * count + [False] * (3 - count)
        for slot, flip in enumerate(pick.negative_flips):
            negative = data.negatives[pick.index][slot]
            expected = negative.flip(-1) if flip else negative
            assert torch.equal(batch.negatives[row, slot], expected.float() / 127.5 - 1)
        assert (batch.negatives[row, count:] == -1).all(), "padding stays zero (black) and masked"
