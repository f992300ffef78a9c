"""`ccub prepare` on tiny random models: captions, negatives, resume, safety, and what reads the result."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import config, make_image, row, submission, write_jsonl
from PIL import Image
from typer.testing import CliRunner

from ccub.cli import app
from ccub.imaging.decode import DecodeRefused
from finetune import prepare as prep
from finetune.dataset import DatasetError, read_dataset, scoft_examples
from finetune.negatives import ControlNetGenerator, generation_size, negative_seed

pytest.importorskip("diffusers")

K = 2  # negatives per image in these tests (fewer than the default 3, to stay quick)


@pytest.fixture(autouse=True)
def shared_tiny_cache(tmp_path_factory, monkeypatch):
    # One build of the tiny models for every test and xdist worker (builds are atomic).
    cache = tmp_path_factory.getbasetemp().parent / "ccub-model-cache"
    monkeypatch.setenv("CCUB_CACHE", str(cache))


def dataset(root: Path, n: int = 3, splits: tuple[str, ...] = ("train",), **extra) -> Path:
    """An imagefolder with `n` photos per split, community captions only."""
    for split in splits:
        rows = []
        for i in range(n):
            name = f"images/{split}_{i}.jpg"
            make_image(root / split / name, size=(96, 72) if i % 2 else (72, 96), seed=i + 7 * len(split))
            rows.append({"file_name": name, "text": f"Jollof rice with fried plantain number {i} in Lagos",
                         "culture": "nigeria", **extra})
        write_jsonl(root / split / "metadata.jsonl", rows)
    return root


def settings(**changes):
    cfg = config()
    cfg.prepare = prep.smoke_settings(cfg.prepare, "tiny", set())
    for key, value in {"negatives_per_image": K, "batch_size": 2, **changes}.items():
        setattr(cfg.prepare, key, value)
    return cfg


def prepare(root: Path, cfg=None, **options) -> prep.Result:
    return prep.prepare(prep.Options(root=root, tiny="tiny", device="cpu", **options), cfg or settings())


def rows(root: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(root.glob("*/metadata.jsonl")) for line in p.read_text().splitlines()]


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- pure helpers


def test_negative_seeds_depend_on_image_and_index_only():
    assert negative_seed(1024, "train/images/a.jpg", 0) == negative_seed(1024, "train/images/a.jpg", 0)
    seeds = {negative_seed(1024, key, k) for key in ("a", "b") for k in range(3)}
    assert len(seeds) == 6 and all(0 <= s < 2**32 for s in seeds)
    assert negative_seed(1, "a", 0) != negative_seed(2, "a", 0)


@pytest.mark.parametrize(("size", "expected"), [
    ((4032, 3024), (680, 512)),  # 4:3 landscape, short side 512, multiples of 8
    ((3024, 4032), (512, 680)),
    ((1000, 1000), (512, 512)),
    ((4000, 1000), (1024, 256)),  # the longer side is capped at twice the resolution
])
def test_generation_size_keeps_aspect_in_multiples_of_eight(size, expected):
    assert generation_size(*size, 512) == expected


# --------------------------------------------------------------------------- the tiny run


def test_tiny_prepare_writes_captions_and_negatives_for_every_row(tmp_path):
    root = dataset(tmp_path / "ds", splits=("train", "test"))
    result = prepare(root)
    assert result.exit_code == 0 and not result.failures
    assert result.smoke_run
    assert result.counts["captions written"] == 6 and result.counts["negatives written"] == 6 * K
    found = rows(root)
    assert len(found) == 6
    assert len({tuple(r) for r in found}) == 1, "every row of every split has the same keys"
    manifest = json.loads((root / prep.MANIFEST).read_text())
    assert manifest["smoke_run"] is True
    for r in found:
        split = "train" if r["file_name"].startswith("images/train") else "test"
        assert r["blip_text"].strip() and r["blip_source"] == "caption:tiny:captioner"
        assert len(r["negative_imgpath"]) == K
        key = f"{split}/{r['file_name']}"
        entry = manifest["negatives"][key]
        assert entry["files"] == r["negative_imgpath"]
        assert entry["seeds"] == [negative_seed(1024, key, k) for k in range(K)]
        assert entry["random_weights"] is True and entry["prompt"] == r["text"]
        with Image.open(root / split / r["file_name"]) as source:
            expected = generation_size(*source.size, 32, 2)
        for path in r["negative_imgpath"]:
            assert path.startswith("negatives/generated/")
            with Image.open(root / path) as im:  # relative to the dataset root, as SCoFT's code reads them
                assert im.format == "PNG" and im.size == expected
    assert not list(root.rglob("*.tmp"))


def test_rerun_does_nothing_and_changes_no_byte(tmp_path):
    root = dataset(tmp_path / "ds")
    prepare(root)
    before = snapshot(root)
    manifest = json.loads(before.pop(prep.MANIFEST))
    again = prepare(root)
    after = snapshot(root)
    again_manifest = json.loads(after.pop(prep.MANIFEST))
    assert after == before
    assert again_manifest["negatives"] == manifest["negatives"] and again_manifest["captions"] == manifest["captions"]
    assert again.counts["captions written"] == 0 and again.counts["negatives written"] == 0
    assert again.counts["captions kept"] == 3 and again.counts["negatives kept (generated)"] == 3


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    reference = dataset(tmp_path / "reference", n=4)
    prepare(reference)
    root = dataset(tmp_path / "ds", n=4)
    real_call = ControlNetGenerator.__call__
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a killed job) in the middle of the second batch
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(ControlNetGenerator, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(root)
    # What an interruption leaves: every listed negative exists; nothing half written.
    half = rows(root)
    assert all(r["blip_text"] for r in half)
    assert sum(bool(r.get("negative_imgpath")) for r in half) == 2, "the first batch (2 images) was committed"
    for r in half:
        assert all((root / p).is_file() for p in r.get("negative_imgpath") or [])
    assert not list(root.rglob("*.tmp"))
    monkeypatch.setattr(ControlNetGenerator, "__call__", real_call)
    resumed = prepare(root)
    assert resumed.counts["negatives written"] == 2 * K and resumed.counts["negatives kept (generated)"] == 2
    done, expected = snapshot(root), snapshot(reference)
    negatives = sorted(k for k in expected if k.startswith("negatives/"))
    assert negatives and [done[k] for k in negatives] == [expected[k] for k in negatives], \
        "a resumed run draws exactly the negatives of an uninterrupted one"
    assert rows(root) == rows(reference)


def test_metadata_is_replaced_atomically(tmp_path, monkeypatch):
    root = dataset(tmp_path / "ds")
    original = (root / "train" / "metadata.jsonl").read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("metadata.jsonl"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        prepare(root)
    assert (root / "train" / "metadata.jsonl").read_bytes() == original
    assert not [p for p in root.rglob("*") if p.name.startswith(".metadata.jsonl")]


def test_a_broken_image_fails_alone(tmp_path):
    root = dataset(tmp_path / "ds", n=4)
    (root / "train" / "images" / "train_1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = prepare(root)
    assert result.exit_code == 1
    assert {(f.image, f.stage) for f in result.failures} == {("train/images/train_1.jpg", "caption"),
                                                              ("train/images/train_1.jpg", "negatives")}
    by_name = {r["file_name"]: r for r in rows(root)}
    assert not by_name["images/train_1.jpg"].get("negative_imgpath")
    assert not by_name["images/train_1.jpg"].get("blip_text")
    assert all(len(r["negative_imgpath"]) == K for name, r in by_name.items() if name != "images/train_1.jpg")


def test_images_open_only_as_accepted_formats_under_the_pixel_cap(tmp_path):
    from finetune.data import load_square

    disguised = tmp_path / "bitmap.jpg"  # a BMP named .jpg: Pillow would open it, ccub does not
    Image.new("RGB", (64, 48)).save(disguised, "BMP")
    large = make_image(tmp_path / "large.png", size=(80, 60))
    openers = (prep.open_rgb, prep.upright_size, lambda path, cap: load_square(path, 32, cap))
    for path, cap, check in ((disguised, 10**6, "file.format"), (large, 80 * 60 - 1, "file.too_many_pixels")):
        for opener in openers:
            with pytest.raises(DecodeRefused) as refused:
                opener(path, cap)
            assert refused.value.check == check
    assert load_square(large, 32, 80 * 60).shape == (3, 32, 32)


def test_force_redoes_generated_negatives_and_keeps_the_communitys(tmp_path):
    root = dataset(tmp_path / "ds", n=2)
    make_image(root / "negatives" / "mine.jpg", size=(64, 64), seed=99)
    meta = root / "train" / "metadata.jsonl"
    first = [json.loads(line) for line in meta.read_text().splitlines()]
    first[0]["negative_imgpath"] = ["negatives/mine.jpg"]
    first[0]["blip_text"] = "a plate of food"
    write_jsonl(meta, first)
    prepare(root)
    generated = (root / rows(root)[1]["negative_imgpath"][0])
    generated.write_bytes(b"stale")
    result = prepare(root, force=True)
    after = rows(root)
    assert after[0]["negative_imgpath"] == ["negatives/mine.jpg"]
    assert after[0]["blip_source"] == "caption:tiny:captioner"  # --force redoes captions too
    assert result.counts["negatives kept (community)"] == 1 and result.counts["negatives written"] == K
    assert generated.read_bytes() != b"stale"


def test_missing_negative_files_are_dropped_and_regenerated(tmp_path):
    root = dataset(tmp_path / "ds", n=2)
    prepare(root)
    victim = root / rows(root)[0]["negative_imgpath"][0]
    victim.unlink()
    result = prepare(root)
    assert result.counts["missing negatives dropped"] == 1
    assert victim.is_file() and len(rows(root)[0]["negative_imgpath"]) == K


def test_strip_and_column_strategies(tmp_path):
    root = dataset(tmp_path / "ds", n=2)
    prepare(root, settings(captions="strip", negatives_per_image=0))
    for r in rows(root):
        assert r["blip_source"] == "strip:nigeria lexicon"
        assert "lagos" not in r["blip_text"].lower() and "jollof" not in r["blip_text"].lower()
        assert "rice with fried plantain" in r["blip_text"]
    other = dataset(tmp_path / "other", n=2)
    result = prepare(other, settings(captions="column", negatives_per_image=0))
    assert result.exit_code == 1 and len(result.failures) == 2
    assert "choose --captions caption or strip" in result.failures[0].message


def test_hostile_paths_in_rows_are_refused(tmp_path):
    root = dataset(tmp_path / "ds", n=1)
    write_jsonl(root / "train" / "metadata.jsonl", [{"file_name": "../../outside.jpg", "text": "x y z"}])
    with pytest.raises(DatasetError, match="outside the dataset"):
        read_dataset(root)
    write_jsonl(root / "train" / "metadata.jsonl", [{"file_name": "images/train_0.jpg", "text": "a b c",
                                                     "blip_text": "a b", "negative_imgpath": ["/etc/passwd"]}])
    with pytest.raises(DatasetError, match="not a relative path"):
        prepare(root, settings(negatives_per_image=K))


# --------------------------------------------------------------------------- what reads the result


CARD = """version = "1.0.0"
publication_date = 2024-06-01
citation = "@misc{ccub, title = {CCUB}, year = {2024}}"
creators = ["Jane Doe"]
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """korea (3 images, with created_at) and nigeria (2) validated with a complete card.toml, then
    `ccub prepare --culture korea --base tiny`: returns the --out folder and prepare's CLI result."""
    base = tmp_path_factory.mktemp("published")
    root, out = base / "sub", base / "out"
    for i in range(2):  # pixels unlike korea's: no cross-culture duplicates
        make_image(root / "nigeria" / f"FOOD_{i}.jpg", seed=300 + i)
    submission(root, [row(f"FOOD_{i}.jpg", i, created_at=f"2023-05-0{i + 1}") for i in range(3)], folder="korea")
    submission(root, [row(f"FOOD_{i}.jpg", 10 + i) for i in range(2)], folder="nigeria")
    (base / "card.toml").write_text(CARD, encoding="utf-8")
    validated = CliRunner().invoke(app, ["validate", str(root), "--out", str(out), "--workers", "1",
                                         "--meta", str(base / "card.toml")])
    assert validated.exit_code == 0, validated.output
    with pytest.MonkeyPatch.context() as patch:  # module scope: the autouse cache fixture is not set yet
        patch.setenv("CCUB_CACHE", str(tmp_path_factory.getbasetemp().parent / "ccub-model-cache"))
        prepared = CliRunner().invoke(app, ["prepare", "--culture", "korea", "--data", str(out), "--base", "tiny",
                                            "--negatives", str(K), "--device", "cpu"])
    return out, prepared


def test_validate_then_prepare_loads_as_imagefolder_and_for_scoft(published, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, cli = published
    clean = out / "clean"
    assert cli.exit_code == 0, cli.output
    assert "SMOKE RUN" in cli.output and "RANDOM WEIGHTS" in cli.output
    examples = scoft_examples(read_dataset(clean / "korea"))
    assert len(examples) == 3
    assert all(e.generic and len(e.negatives) == K and all(n.is_file() for n in e.negatives) for e in examples)
    loaded = datasets.load_dataset(str(clean), "korea", split="train", cache_dir=str(tmp_path / "hf"))
    assert len(loaded) == 3
    assert all(len(r["negative_imgpath"]) == K and r["blip_text"] for r in loaded)
    assert loaded[0]["image"].size[0] > 0


def test_prepare_refreshes_the_cards_and_mlcroissant_reads_every_culture(published):
    mlc = pytest.importorskip("mlcroissant")
    out, cli = published
    clean = out / "clean"
    assert cli.exit_code == 0 and "data cards refreshed" in cli.output, cli.output
    document = json.loads((clean / "croissant.json").read_text("utf-8"))
    objects = {o["contentUrl"]: o for o in document["distribution"] if o["@type"] == "cr:FileObject"}
    assert sorted(objects) == ["korea/train/metadata.jsonl", "nigeria/train/metadata.jsonl"]
    readme = (clean / "README.md").read_text("utf-8")
    for path, obj in objects.items():
        digest = hashlib.sha256((clean / path).read_bytes()).hexdigest()
        assert obj["sha256"] == digest and digest in readme
    assert "ccub_card_status: complete" in readme  # the steward's facts, as validate recorded them
    assert "3 of 5 images have SCoFT negatives (`negative_imgpath`, 6 negative images in all)" in readme
    dataset = mlc.Dataset(jsonld=str(clean / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors, dataset.metadata.ctx.issues.report()
    records = {}  # culture -> file_name -> record (mlcroissant yields a record set's records once)
    for culture in ("korea", "nigeria"):
        on_disk = rows(clean / culture)
        record_set = next(rs for rs in document["recordSet"] if rs["@id"] == f"{culture}-train")
        columns = [f["source"]["extract"]["column"] for f in record_set["field"] if "extract" in f["source"]]
        assert columns == list(on_disk[0])  # every column of metadata.jsonl is a field
        records[culture] = {r[f"{culture}-train/file_name"].decode(): r
                            for r in dataset.records(record_set=f"{culture}-train")}
        assert sorted(records[culture]) == sorted(r["file_name"] for r in on_disk)
    assert {"created_at", "blip_text", "negative_imgpath"} <= set(rows(clean / "korea")[0])
    for expected in rows(clean / "korea"):
        record = records["korea"][expected["file_name"]]
        assert record["korea-train/blip_text"].decode() == expected["blip_text"]
        assert [p.decode() for p in record["korea-train/negative_imgpath"]] == expected["negative_imgpath"]
        assert record["korea-train/created_at"].date().isoformat() == expected["created_at"]


def test_unavailable_models_are_named_with_the_fix(tmp_path):
    root = dataset(tmp_path / "ds", n=1)
    out = CliRunner().invoke(app, ["prepare", str(root), "--captioner", "nobody/no-such-captioner"])
    assert out.exit_code == 2
    assert "nobody/no-such-captioner" in out.output and "hf download" in out.output
    assert not (root / prep.MANIFEST).exists(), "nothing is written before the models are found"


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "submissions"


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/submissions not generated")
def test_readme_sequence_on_the_examples(tmp_path):
    """`ccub validate examples/submissions` then `ccub prepare --culture korea --base tiny`."""
    out = tmp_path / "data"
    validated = CliRunner().invoke(app, ["validate", str(EXAMPLES), "--out", str(out), "--workers", "2"])
    assert validated.exit_code == 1 and (out / "clean" / "korea").is_dir(), validated.output
    before = rows(out / "clean" / "korea")
    community = {r["file_name"]: r["negative_imgpath"] for r in before if r.get("negative_imgpath")}
    prepared = CliRunner().invoke(app, ["prepare", "--culture", "korea", "--data", str(out), "--base", "tiny"])
    assert prepared.exit_code == 0, prepared.output
    after = rows(out / "clean" / "korea")
    assert len(after) == len(before) and community
    for r in after:
        assert r["blip_text"] and r["blip_source"]
        if r["file_name"] in community:  # the community's own negatives are kept, not redrawn
            assert r["negative_imgpath"] == community[r["file_name"]]
        else:
            assert len(r["negative_imgpath"]) == 3 and all(p.startswith("negatives/generated/")
                                                           for p in r["negative_imgpath"])
    sources = {r["blip_source"] for r in after}
    assert sources == {"dataset", "caption:tiny:captioner"}
    assert len(scoft_examples(read_dataset(out / "clean" / "korea"))) == len(after)
