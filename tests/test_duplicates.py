"""Near-duplicates, semantic duplicates, leakage, the split maker and incremental checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import (
    checks_for,
    config,
    issues_of,
    make_image,
    outcome,
    photo,
    read_jsonl,
    row,
    run,
    submission,
)
from PIL import Image, ImageEnhance, ImageOps

from ccub.imaging.phash import dihedral_phash, distance

SIZE = (900, 700)
K = "korea/"


def reencoded(im: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def crop_side(im: Image.Image, fraction: float) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * fraction), 0, w, h))


# The transformation classes the duplicate tier must catch (distance <= near_max_distance).
DUPLICATE_TIER = {
    "reencode_q40": lambda im: reencoded(im, 40),
    "resize_half": lambda im: im.resize((im.width // 2, im.height // 2)),
    "mirror": ImageOps.mirror,
    "rotate_90": lambda im: im.rotate(90, expand=True),
    "rotate_180": lambda im: im.rotate(180),
    "rotate_270": lambda im: im.rotate(270, expand=True),
    "white_border": lambda im: ImageOps.expand(im, 40, fill=(255, 255, 255)),
    "letterbox": lambda im: ImageOps.expand(im, (0, 120), fill=(0, 0, 0)),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    "less_contrast": lambda im: ImageEnhance.Contrast(im).enhance(0.8),
}


def hashes(im: Image.Image) -> np.ndarray:
    return dihedral_phash(np.asarray(im.convert("L")))[0]


@pytest.mark.parametrize("name", sorted(DUPLICATE_TIER))
def test_phash_distance_of_each_transformation_is_in_the_duplicate_band(name):
    original = photo(5, SIZE)
    copy = DUPLICATE_TIER[name](original)
    assert distance(hashes(original), hashes(copy)) <= config().duplicates.near_max_distance


def test_phash_crop_is_in_review_band_and_unrelated_far():
    cfg = config().duplicates
    original = photo(5, SIZE)
    crop = distance(hashes(original), hashes(crop_side(original, 0.05)))
    assert cfg.near_max_distance < crop <= cfg.review_max_distance
    unrelated = [distance(hashes(original), hashes(photo(s, SIZE))) for s in range(30, 36)]
    assert min(unrelated) > cfg.review_max_distance


def test_distance_is_nearly_symmetric_under_rotation():
    # Resampling a rotated image is not exactly the rotation of the resampled one, so the
    # two directions may differ by a few bits; both stay deep in the duplicate band.
    a, b = photo(1, SIZE), photo(1, SIZE).rotate(90, expand=True)
    assert distance(hashes(a), hashes(b)) <= 4 and distance(hashes(b), hashes(a)) <= 4


def test_near_duplicates_are_dropped_keeping_the_largest(root, tmp_path):
    original = photo(5, SIZE)
    make_image(root / "korea" / "FOOD_1.jpg", image=original, quality=92)
    make_image(root / "korea" / "FOOD_2.jpg", image=original.resize((600, 466)), quality=70)
    smaller = original.resize((800, 622))
    make_image(root / "korea" / "FOOD_3.jpg", image=ImageOps.mirror(smaller), quality=85)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright: an EXIF-rotated copy
    make_image(root / "korea" / "FOOD_4.jpg", image=smaller.rotate(90, expand=True),
               exif=exif.tobytes())
    make_image(root / "korea" / "FOOD_5.jpg", seed=9)
    submission(root, [row(f"FOOD_{i}.jpg", i) for i in range(1, 6)])
    result = run(root, tmp_path / "out")
    assert outcome(result, K + "FOOD_1.jpg").status == "accepted"
    for i in (2, 3, 4):
        assert "duplicate.near" in checks_for(result, K + f"FOOD_{i}.jpg")
        assert outcome(result, K + f"FOOD_{i}.jpg").status == "rejected"
        message = next(x.finding.message for x in issues_of(result, "duplicate.near")
                       if x.finding.record == K + f"FOOD_{i}.jpg")
        assert "korea/FOOD_1.jpg (kept; pHash distance" in message
    assert outcome(result, K + "FOOD_5.jpg").status == "accepted"
    [group] = result.groups
    statuses = {m["image"]: m["status"] for m in group["members"]}
    assert statuses["korea/FOOD_1.jpg"] == "kept" and list(statuses.values()).count("dropped") == 3


def test_crop_goes_to_review_not_removal(root, tmp_path):
    original = photo(5, SIZE)
    make_image(root / "korea" / "FOOD_1.jpg", image=original)
    make_image(root / "korea" / "FOOD_2.jpg", image=crop_side(original, 0.05))
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert outcome(result, K + "FOOD_1.jpg").status == "accepted"
    assert "duplicate.near_review" in checks_for(result, K + "FOOD_2.jpg")
    assert outcome(result, K + "FOOD_2.jpg").status == "review"


def test_the_search_settings_reach_the_search(root, tmp_path):
    # The 5% crop of the test above, searched by LSH (exact_limit 1) with one table that samples
    # every bit: only identical hashes share a bucket, so the crop is no longer found.
    original = photo(5, SIZE)
    make_image(root / "korea" / "FOOD_1.jpg", image=original)
    make_image(root / "korea" / "FOOD_2.jpg", image=crop_side(original, 0.05))
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    blind = config(duplicates={"exact_limit": 1, "lsh_tables": 1, "lsh_bits": 256})
    assert "duplicate.near_review" not in checks_for(run(root, tmp_path / "out", blind), K + "FOOD_2.jpg")
    wide = config(duplicates={"exact_limit": 1, "lsh_tables": 400, "lsh_bits": 18})
    assert "duplicate.near_review" in checks_for(run(root, tmp_path / "out", wide), K + "FOOD_2.jpg")


def test_near_duplicate_across_cultures_is_a_label_conflict(root, tmp_path):
    original = photo(5, SIZE)
    make_image(root / "korea" / "FOOD_1.jpg", image=original)
    make_image(root / "nigeria" / "FOOD_1.jpg", image=original.resize((700, 544)))
    submission(root, [row("FOOD_1.jpg", 1)], folder="korea", images=False)
    submission(root, [row("FOOD_1.jpg", 2)], folder="nigeria", images=False)
    result = run(root, tmp_path / "out")
    for key in ("korea/FOOD_1.jpg", "nigeria/FOOD_1.jpg"):
        assert "duplicate.label_conflict" in checks_for(result, key)
        assert outcome(result, key).status == "rejected"


def test_near_duplicate_across_categories_is_a_warning(root, tmp_path):
    original = photo(5, SIZE)
    make_image(root / "korea" / "FOOD_1.jpg", image=original)
    make_image(root / "korea" / "ARCH_1.jpg", image=ImageOps.expand(original, 30, fill="white"))
    submission(root, [row("FOOD_1.jpg", 1), row("ARCH_1.jpg", 2)], images=False)
    result = run(root, tmp_path / "out")
    found = issues_of(result, "duplicate.category_conflict")
    assert {i.finding.record for i in found} == {K + "FOOD_1.jpg", K + "ARCH_1.jpg"}
    assert {i.severity for i in found} == {"warning"}


def test_duplicate_spanning_train_and_test_is_a_leak(root, tmp_path):
    original = photo(5, SIZE)
    make_image(root / "korea" / "train" / "FOOD_1.jpg", image=original)
    make_image(root / "korea" / "test" / "FOOD_2.jpg", image=crop_side(original, 0.05))
    make_image(root / "korea" / "test" / "FOOD_3.jpg", seed=8)
    submission(root, [row("FOOD_1.jpg", 1)], folder="korea/train", images=False)
    submission(root, [row("FOOD_2.jpg", 2), row("FOOD_3.jpg", 3)], folder="korea/test",
               images=False)
    result = run(root, tmp_path / "out")
    leaks = issues_of(result, "duplicate.split_leak")
    assert [i.finding.record for i in leaks] == ["korea/test/FOOD_2.jpg"]
    assert outcome(result, "korea/test/FOOD_2.jpg").status == "rejected"
    assert "duplicate.split_leak" not in checks_for(result, "korea/test/FOOD_3.jpg")


def test_test_fraction_keeps_groups_together_and_stratifies(root, tmp_path):
    rows, originals = [], {}
    for category in ("FOOD", "ARCH"):
        for i in range(1, 11):
            name = f"{category}_{i}.jpg"
            seed = 100 + i + (50 if category == "ARCH" else 0)
            originals[name] = photo(seed, (640, 520))
            make_image(root / "korea" / name, image=originals[name])
            rows.append(row(name, seed))
    # Two crops (review band) of FOOD_1: the group of three must land on one side.
    for j in (1, 2):
        name = f"FOOD_{10 + j}x.jpg"
        make_image(root / "korea" / name, image=crop_side(originals["FOOD_1.jpg"], 0.03 * j))
        rows.append(row(name, 200 + j))
    submission(root, rows, images=False)
    result = run(root, tmp_path / "out", include_review=True, test_fraction=0.2)
    split = {o.record.image: o.record.split for o in result.outcomes}
    group = {split["korea/FOOD_1.jpg"], split["korea/FOOD_11x.jpg"], split["korea/FOOD_12x.jpg"]}
    assert len(group) == 1
    tests = [k for k, v in split.items() if v == "test"]
    assert sum(k.startswith("korea/ARCH") for k in tests) == 2  # round(0.2 x 10)
    assert 1 <= sum(k.startswith("korea/FOOD") for k in tests) <= 3
    assert not issues_of(result, "duplicate.split_leak")
    out = tmp_path / "out" / "clean" / "korea"
    assert len(read_jsonl(out / "test" / "metadata.jsonl")) == len(tests)
    again = run(root, tmp_path / "again" / "out", include_review=True, test_fraction=0.2)
    assert {o.record.image: o.record.split for o in again.outcomes} == split  # seeded


def test_against_an_accepted_dataset(root, tmp_path):
    original = photo(5, SIZE)
    first = tmp_path / "first"
    make_image(first / "korea" / "FOOD_1.jpg", image=original)
    make_image(first / "korea" / "FOOD_2.jpg", seed=6)
    submission(first, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)], images=False)
    accepted = run(first, tmp_path / "data")
    assert accepted.exit_code == 0
    assert (tmp_path / "data" / "index" / "ccub-index.npz").is_file()

    make_image(root / "korea" / "FOOD_7.jpg", image=original.resize((450, 350)))
    make_image(root / "nigeria" / "FOOD_8.jpg", image=ImageOps.mirror(photo(6, SIZE)))
    make_image(root / "korea" / "FOOD_9.jpg", seed=12)
    submission(root, [row("FOOD_7.jpg", 7), row("FOOD_9.jpg", 9)], images=False)
    submission(root, [row("FOOD_8.jpg", 8)], folder="nigeria", images=False)
    result = run(root, tmp_path / "batch2", against=tmp_path / "data")
    [near] = [i for i in issues_of(result, "duplicate.near")]
    assert near.finding.record == K + "FOOD_7.jpg" and "(already accepted)" in near.finding.message
    assert "duplicate.label_conflict" in checks_for(result, "nigeria/FOOD_8.jpg")
    assert outcome(result, K + "FOOD_9.jpg").status == "accepted"
    assert any("checked against 2 accepted images" in n for n in (note.text for note in result.notes))


def test_against_must_have_an_index_and_not_be_the_output(root, tmp_path):
    from ccub.pipeline import Options, UsageError, validate

    submission(root, [row("FOOD_1.jpg", 1)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no ccub-index.npz"):
        validate(Options(root, tmp_path / "out", against=tmp_path / "empty"), config())
    with pytest.raises(UsageError, match="replaces"):
        validate(Options(root, tmp_path / "out", against=tmp_path / "out"), config())


def test_semantic_tier_with_tiny_random_clip_says_so(root, tmp_path, monkeypatch):
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path / "cache"))
    make_image(root / "korea" / "FOOD_1.jpg", seed=1)
    make_image(root / "korea" / "FOOD_2.jpg", seed=1, quality=60)  # same photo, other bytes
    make_image(root / "korea" / "FOOD_3.jpg", seed=3)
    submission(root, [row(f"FOOD_{i}.jpg", i) for i in (1, 2, 3)], images=False)
    cfg = config(duplicates={"near_max_distance": -1, "review_max_distance": -1})
    result = run(root, tmp_path / "out", cfg, clip="tiny")
    [note] = [n.text for n in result.notes if n.text.startswith("semantic")]
    assert "RANDOM WEIGHTS" in note and "3 images" in note
    # With the pHash tiers off, the re-encoded copy is found by CLIP alone, for review.
    semantic = issues_of(result, "duplicate.semantic")
    assert K + "FOOD_2.jpg" in {i.finding.record for i in semantic}
    assert {i.severity for i in semantic} == {"review"}


def test_clip_that_calls_everything_alike_rejects_nothing(tmp_path, monkeypatch):
    """The semantic tier is review only: a CLIP that finds every example image alike (one
    embedding for all) holds records for a person but rejects none of them."""
    from pathlib import Path

    import ccub.semantic

    examples = Path(__file__).parent.parent / "examples" / "submissions"
    monkeypatch.setenv("CCUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ccub.semantic, "embed_images",
                        lambda paths, spec, **_: np.ones((len(paths), 4), np.float32) / 2)
    plain = run(examples, tmp_path / "plain")
    alike = run(examples, tmp_path / "alike", clip="tiny")
    status = {o.record.key: o.status for o in plain.outcomes}
    status_alike = {o.record.key: o.status for o in alike.outcomes}
    assert [k for k, v in status_alike.items() if v == "rejected"] == \
        [k for k, v in status.items() if v == "rejected"]
    held = [k for k, v in status_alike.items() if v == "review" and status[k] == "accepted"]
    assert held  # every accepted image now has look-alikes under other labels
    conflicts = issues_of(alike, "duplicate.semantic_conflict")
    assert {i.severity for i in conflicts} == {"review"}
    assert "atlantis, india, korea, nigeria" in conflicts[0].finding.message
    # Label conflicts (errors) come from pixel copies only: as many as without CLIP.
    assert len(issues_of(alike, "duplicate.label_conflict")) == \
        len(issues_of(plain, "duplicate.label_conflict"))


def test_semantic_tier_without_weights_is_skipped(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    result = run(root, tmp_path / "out", clip="ViT-B-32:no-such-weights")
    [note] = [n.text for n in result.notes if n.text.startswith("semantic")]
    assert "SKIPPED" in note and "ViT-B-32" in note
    assert outcome(result, K + "FOOD_1.jpg").status == "accepted"


def test_trim_margins_takes_added_frames_but_not_smooth_content():
    from ccub.imaging.phash import trim_margins

    sky = np.tile(np.linspace(200, 120, 300, dtype=np.float32)[:, None], (1, 400))
    content = np.asarray(photo(2, (400, 300)).convert("L"), dtype=np.float32)
    content[:60] = sky[:60]  # a smooth sky band at the top of the picture
    gray = content.astype(np.uint8)
    assert trim_margins(gray) == (0, 0, 0, 0)
    framed = np.pad(gray, ((20, 20), (25, 25)), constant_values=255)
    assert trim_margins(framed) == (20, 20, 25, 25)
    letterboxed = np.pad(gray, ((50, 50), (0, 0)), constant_values=0)
    assert trim_margins(letterboxed)[:2] == (50, 50)
