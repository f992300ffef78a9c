"""The three input layouts, where every field value comes from, and loadable output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import (
    by_image,
    checks_for,
    config,
    imagefolder,
    read_jsonl,
    row,
    run,
    write_csv,
    write_image,
    write_jsonl,
)

from ccub.config import load_config
from ccub.readers import read_submissions
from ccub.vocab import Vocabulary

ROW = "a/b/korea/train/metadata.jsonl"


def read(root: Path, flags: dict[str, str] | None = None):
    cfg = load_config(cwd=root)
    return read_submissions(root, Vocabulary(cfg), flags or {}, cfg.limits)


def scoft_tree(root: Path, negatives_in_test: bool = True) -> Path:
    """a/b/korea/{train,test}/metadata.jsonl with SCoFT fields; negatives under a/b/korea/."""
    base = root / "a" / "b" / "korea"
    for i, name in enumerate(("neg_1.jpg", "neg_2.jpg", "neg_t.jpg")[:3 if negatives_in_test else 2]):
        write_image(base / "negatives" / name, 100 + i)
    for i, name in enumerate(("FOOD_1.jpg", "ARCH_2.jpg")):
        write_image(base / "train" / "images" / name, 1 + i)
    write_jsonl(base / "train" / "metadata.jsonl", [
        row("images/FOOD_1.jpg", text="a bowl of bibimbap with seasoned vegetables",
            blip_text="a bowl of food", negative_imgpath=["negatives/neg_1.jpg",
                                                          "negatives/neg_2.jpg"]),
        # The same negative serves two records; written once.
        row("images/ARCH_2.jpg", text="the main gate of Gyeongbokgung palace in Seoul",
            blip_text="a large building", negative_imgpath=["negatives/neg_2.jpg"]),
    ])
    write_image(base / "test" / "FOOD_3.jpg", 10)
    test_row = row("FOOD_3.jpg", text="a plate of cabbage kimchi beside steamed rice")
    if negatives_in_test:
        test_row["negative_imgpath"] = ["negatives/neg_t.jpg"]
    write_jsonl(base / "test" / "metadata.jsonl", [test_row])
    return base


# --- imagefolder ------------------------------------------------------------------------


def test_imagefolder_jsonl_at_depth_splits_and_scoft_fields(tmp_path):
    root, out = tmp_path / "sub", tmp_path / "out"
    scoft_tree(root)
    result = run(root, out, reports=True)

    assert result.exit_code == 0, [(i.finding.check, i.finding.message) for i in result.issues]
    assert result.read.layouts == {"imagefolder": 3}
    outcomes = by_image(result)
    food = outcomes["a/b/korea/train/images/FOOD_1.jpg"].record
    assert (food.culture, food.category, food.split) == ("korea", "FOOD", "train")
    assert food.sources["culture"] == "path component 'korea'"
    assert food.sources["category"] == "file-name prefix 'FOOD_'"
    assert food.sources["split"] == "folder 'train'"
    assert food.sources["caption"] == f"{ROW} column 'text'"
    assert food.sources["blip_text"] == f"{ROW} column 'blip_text'"
    assert food.sources["negatives"] == f"{ROW} column 'negative_imgpath'"
    # negative_imgpath is relative to the dataset root (the folder above train/).
    assert food.negatives == ["a/b/korea/negatives/neg_1.jpg", "a/b/korea/negatives/neg_2.jpg"]
    test_record = outcomes["a/b/korea/test/FOOD_3.jpg"].record
    assert test_record.split == "test" and test_record.sources["split"] == "folder 'test'"
    assert {o.status for o in result.outcomes} == {"accepted"}

    korea = out / "clean" / "korea"
    train, test = read_jsonl(korea / "train" / "metadata.jsonl"), read_jsonl(
        korea / "test" / "metadata.jsonl")
    assert [r["text"] for r in train] == ["a bowl of bibimbap with seasoned vegetables",
                                         "the main gate of Gyeongbokgung palace in Seoul"]
    assert [r["text"] for r in test] == ["a plate of cabbage kimchi beside steamed rice"]
    assert train[0]["blip_text"] == "a bowl of food"
    assert train[0]["negative_imgpath"] == ["negatives/neg_1.jpg", "negatives/neg_2.jpg"]
    assert train[1]["negative_imgpath"] == ["negatives/neg_2.jpg"]
    assert test[0]["negative_imgpath"] == ["negatives/neg_t.jpg"]
    for split, rows in (("train", train), ("test", test)):
        for r in rows:
            assert (korea / split / r["file_name"]).is_file()
            for negative in r["negative_imgpath"]:
                assert (korea / negative).is_file()  # relative to clean/<culture>/
            assert r["culture"] == "korea" and r["source_file"].startswith("a/b/korea/")
    assert sorted(p.name for p in (korea / "negatives").iterdir()) == [
        "neg_1.jpg", "neg_2.jpg", "neg_t.jpg"]
    # Both splits carry the same columns (datasets refuses splits that differ).
    assert list(train[0]) == list(test[0])


def test_imagefolder_csv_culture_from_path_and_category_from_prefix(tmp_path):
    root = tmp_path / "sub"
    base = root / "culture_data" / "korea"
    write_image(base / "negatives" / "n1.jpg", 50)
    write_image(base / "negatives" / "n2.jpg", 51)
    write_image(base / "train" / "ARCH_3.jpg", 3)
    write_image(base / "train" / "ARCH_4.jpg", 4)
    write_csv(base / "train" / "metadata.csv", [
        row("ARCH_3.jpg", text="a hanok house with a curved tiled roof",
            negative_imgpath='["negatives/n1.jpg", "negatives/n2.jpg"]'),
        row("ARCH_4.jpg", text="a stone pagoda in a temple courtyard",
            negative_imgpath="negatives/n2.jpg; negatives/missing.jpg; ../../../x.jpg"),
    ])
    result = run(root, tmp_path / "out", reports=True)

    records = {o.record.image: o.record for o in result.outcomes}
    arch = records["culture_data/korea/train/ARCH_3.jpg"]
    assert arch.culture == "korea" and arch.sources["culture"] == "path component 'korea'"
    assert arch.category == "ARCH" and arch.sources["category"] == "file-name prefix 'ARCH_'"
    assert arch.sources["caption"] == "culture_data/korea/train/metadata.csv column 'text'"
    assert arch.negatives == ["culture_data/korea/negatives/n1.jpg",
                              "culture_data/korea/negatives/n2.jpg"]
    # Missing and escaping negatives are dropped with a warning; the record is kept.
    other = records["culture_data/korea/train/ARCH_4.jpg"]
    assert other.negatives == ["culture_data/korea/negatives/n2.jpg"]
    dropped = [i.finding for i in result.issues if i.finding.check == "negatives.invalid"]
    assert len(dropped) == 2 and all(f.record == other.key for f in dropped)
    assert any("missing.jpg" in f.message for f in dropped)
    assert any("outside" in f.message for f in dropped)
    assert {o.status for o in result.outcomes} == {"accepted"}
    rows = read_jsonl(tmp_path / "out" / "clean" / "korea" / "train" / "metadata.jsonl")
    assert rows[0]["negative_imgpath"] == ["negatives/n1.jpg", "negatives/n2.jpg"]
    assert rows[1]["negative_imgpath"] == ["negatives/n2.jpg"]
    assert rows[0]["category"] == "ARCH"


def test_imagefolder_row_problems_are_findings_with_lines(tmp_path):
    root = tmp_path / "sub"
    imagefolder(root / "korea", [("a.jpg", "a bowl of bibimbap with vegetables")])
    with (root / "korea" / "metadata.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps(row("a.jpg", text="the same file listed twice")) + "\n")
        fh.write(json.dumps(row("gone.jpg", text="a picture that was never uploaded")) + "\n")
        fh.write(json.dumps({"text": "a row without any file name"}) + "\n")
        fh.write("[1, 2]\n")
    write_image(root / "korea" / "stray.jpg", 9)
    result = read(root)
    found = {(f.check, f.line) for f in result.findings}
    assert ("metadata.malformed", 2) in found
    assert ("metadata.duplicate_row", 3) in found
    assert ("file.missing", 4) in found
    assert ("metadata.malformed", 5) in found
    assert ("metadata.malformed", 6) in found
    assert any(f.check == "file.no_metadata" and f.file == "korea/stray.jpg"
               for f in result.findings)
    assert [r.image for r in result.records] == ["korea/a.jpg", "korea/gone.jpg"]


# --- folder tree ------------------------------------------------------------------------


def test_folder_tree_sidecars_and_captions_csv(tmp_path):
    root = tmp_path / "sub"
    write_image(root / "india" / "FOOD" / "dosa.jpg", 1)
    (root / "india" / "FOOD" / "dosa.jpg.txt").write_text("a crisp masala dosa with chutney\n",
                                                        "utf-8")
    # <image>.txt wins over <stem>.txt
    (root / "india" / "FOOD" / "dosa.txt").write_text("the wrong caption file", "utf-8")
    write_image(root / "india" / "architecture" / "temple.jpg", 2)
    (root / "india" / "architecture" / "temple.txt").write_text(
        "a carved stone temple tower in Tamil Nadu", "utf-8")
    (root / "india" / "submission.toml").write_text(
        'license = "CC-BY-4.0"\ncreator = "Asha"\nconsent = "n/a"\n', "utf-8")
    write_image(root / "nigeria" / "FOOD" / "jollof.jpg", 3)
    write_csv(root / "nigeria" / "captions.csv", [
        {"file_name": "FOOD/jollof.jpg", "caption": "a pot of smoky party jollof rice",
         "license": "CC0-1.0", "consent": "n/a", "photographer": "Tunde"}])

    result = run(root, tmp_path / "out", reports=True)
    assert result.read.layouts == {"folder tree": 3}
    records = {o.record.image: o.record for o in result.outcomes}
    dosa = records["india/FOOD/dosa.jpg"]
    assert dosa.caption.strip() == "a crisp masala dosa with chutney"
    assert dosa.sources["caption"] == "sidecar india/FOOD/dosa.jpg.txt"
    assert dosa.sources["culture"] == "path component 'india'"
    assert dosa.sources["category"] == "path component 'FOOD'"
    assert dosa.sources["license"] == "india/submission.toml"
    temple = records["india/architecture/temple.jpg"]
    assert temple.sources["caption"] == "sidecar india/architecture/temple.txt"
    assert temple.category == "ARCH"
    assert temple.sources["category"] == "path component 'architecture'"
    jollof = records["nigeria/FOOD/jollof.jpg"]
    assert jollof.caption == "a pot of smoky party jollof rice"
    assert jollof.sources["caption"] == "nigeria/captions.csv column 'caption'"
    assert jollof.creator == "Tunde"
    assert jollof.sources["creator"] == "nigeria/captions.csv column 'photographer'"
    assert jollof.culture == "nigeria"
    assert result.exit_code == 0, [(i.finding.check, i.finding.message) for i in result.issues]
    # Caption files are inputs, not images: nothing else became a record.
    assert len(result.outcomes) == 3
    rows = read_jsonl(tmp_path / "out" / "clean" / "india" / "train" / "metadata.jsonl")
    assert {r["text"] for r in rows} == {"a crisp masala dosa with chutney",
                                         "a carved stone temple tower in Tamil Nadu"}


# --- manifests --------------------------------------------------------------------------


def test_ccub_manifest_csv_and_jsonl(tmp_path):
    root = tmp_path / "sub"
    write_image(root / "images" / "k1.jpg", 1)
    write_csv(root / "ccub_korea.csv", [
        {"country_code": "KOR", "category_code": "FOOD", "path": "images/k1.jpg", "url": "",
         "caption": "a stone pot of bibimbap with a raw egg", "license": "CC-BY-4.0",
         "creator": "Kim", "consent": "n/a", "created_at": "2023-05-01"},
        {"country_code": "KOR", "category_code": "ARCH", "path": "",
         "url": "https://example.org/gate.jpg", "caption": "the south gate of Seoul at dusk",
         "license": "CC-BY-4.0", "creator": "Kim", "consent": "n/a", "created_at": ""},
    ])
    write_image(root / "more" / "i1.jpg", 2)
    write_jsonl(root / "more" / "ccub_india.jsonl", [
        {"country_code": "IND", "category_code": "food", "url": "i1.jpg",
         "caption": "a thali with rice, dal and pickles", "license": "CC0-1.0", "consent": "n/a"}])

    result = run(root, tmp_path / "out", reports=True)
    assert result.read.layouts == {"manifest": 3}
    records = {o.record.key: o for o in result.outcomes}
    k1 = records["images/k1.jpg"].record
    assert (k1.culture, k1.category) == ("korea", "FOOD")
    assert k1.sources["culture"] == "ccub_korea.csv column 'country_code'"
    assert k1.sources["category"] == "ccub_korea.csv column 'category_code'"
    assert k1.created_at == "2023-05-01"
    assert records["images/k1.jpg"].status == "accepted"
    url_only = records["ccub_korea.csv:3"]
    assert url_only.record.url == "https://example.org/gate.jpg" and url_only.record.image is None
    assert url_only.status == "rejected"
    assert "file.not_downloaded" in checks_for(result, "ccub_korea.csv:3")
    # A local path in the url column is taken as the path.
    i1 = records["more/i1.jpg"]
    assert (i1.record.culture, i1.record.category, i1.status) == ("india", "FOOD", "accepted")
    rows = read_jsonl(tmp_path / "out" / "clean" / "korea" / "train" / "metadata.jsonl")
    assert [r["text"] for r in rows] == ["a stone pot of bibimbap with a raw egg"]


def test_ccub_workbook_and_parquet_manifests(tmp_path):
    import datetime
    import zipfile

    openpyxl = pytest.importorskip("openpyxl")
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    root = tmp_path / "sub"
    for n in range(1, 4):
        write_image(root / "images" / f"{n}.jpg", n)
    book = openpyxl.Workbook()
    korea = book.active
    korea.title = "Korea"
    korea.append(["country_code", "category_code", "path", "caption", "created_at", "license", "consent"])
    korea.append(["KOR", "FOOD", "images/1.jpg", "a stone pot of bibimbap with a raw egg",
                  datetime.datetime(2023, 5, 1), "CC-BY-4.0", "n/a"])
    korea.append(["KOR", "FOOD", "images/9.jpg", "x" * 5000, "2023-05-02", "CC-BY-4.0", "n/a"])
    nigeria = book.create_sheet("Nigeria")  # no country column: the sheet's name gives the culture
    nigeria.append(["category_code", "path", "caption", "license", "consent"])
    nigeria.append(["FOOD", "images/2.jpg", "a pot of smoky party jollof rice in Lagos", "CC-BY-4.0", "n/a"])
    book.create_sheet("Notes").append(["written by the stewards"])
    book.create_sheet("Empty")
    book.save(root / "ccub.xlsx")
    pq.write_table(pa.table({"country_code": ["IND"], "category_code": ["ARCH"], "path": ["images/3.jpg"],
                             "caption": ["a carved stone temple tower in Tamil Nadu"], "license": ["CC0-1.0"],
                             "consent": ["n/a"]}), root / "more.parquet")
    # A zip bomb beside them: refused unread, a finding on the file.
    with zipfile.ZipFile(root / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("xl/worksheets/sheet1.xml", b" " * 6_000_000)
    result = run(root, tmp_path / "out", config(limits={"max_field_chars": 1000, "max_unpacked_mb": 5}))
    assert result.read.layouts == {"manifest": 3}  # the row with the long cell is skipped
    records = {o.record.key: o for o in result.outcomes}
    k1, n2, i3 = (records[f"images/{n}.jpg"].record for n in (1, 2, 3))
    assert (k1.culture, k1.created_at, k1.sources["culture"]) == ("korea", "2023-05-01",
                                                                  "ccub.xlsx#Korea column 'country_code'")
    assert (n2.culture, n2.sources["culture"]) == ("nigeria", "ccub.xlsx#Nigeria sheet name")
    assert (i3.culture, i3.category) == ("india", "ARCH")
    found = {(i.finding.check, i.finding.file, i.finding.line, i.finding.field) for i in result.issues}
    assert ("metadata.limit", "ccub.xlsx#Korea", 3, "caption") in found
    assert ("metadata.malformed", "ccub.xlsx#Notes", None, None) in found
    assert ("metadata.limit", "bomb.xlsx", None, None) in found
    assert not [f for f in found if f[1] and "Empty" in f[1]]


# --- defaults: submission.toml, flags, path -----------------------------------------------


def test_submission_toml_nearest_wins_and_row_wins(tmp_path):
    root = tmp_path / "sub"
    (root / "group" / "sub1").mkdir(parents=True)
    (root / "submission.toml").write_text(
        'culture = "nigeria"\nlicense = "CC-BY-4.0"\ncreator = "Root Creator"\nconsent = "n/a"\n',
        "utf-8")
    (root / "group" / "submission.toml").write_text('culture = "KOR"\ncreator = "Group Creator"\n',
                                                    "utf-8")
    for i, name in enumerate(("x1.jpg", "x2.jpg")):
        write_image(root / "group" / "sub1" / name, i)
    write_jsonl(root / "group" / "sub1" / "metadata.jsonl", [
        {"file_name": "x1.jpg", "text": "a bowl of cold buckwheat noodles"},
        {"file_name": "x2.jpg", "text": "a plate of vegetable biryani", "country": "Indian",
         "author": "Row Creator"}])
    write_image(root / "korea" / "y1.jpg", 5)
    write_jsonl(root / "korea" / "metadata.jsonl",
                [{"file_name": "y1.jpg", "text": "a street market selling rice cakes"}])

    records = {r.image: r for r in read(root).records}
    x1 = records["group/sub1/x1.jpg"]
    assert (x1.culture, x1.sources["culture"]) == ("korea", "group/submission.toml")
    assert (x1.creator, x1.sources["creator"]) == ("Group Creator", "group/submission.toml")
    assert (x1.license, x1.sources["license"]) == ("CC-BY-4.0", "submission.toml")
    x2 = records["group/sub1/x2.jpg"]
    assert (x2.culture, x2.sources["culture"]) == (
        "india", "group/sub1/metadata.jsonl column 'country'")
    assert (x2.creator, x2.sources["creator"]) == (
        "Row Creator", "group/sub1/metadata.jsonl column 'author'")
    # The root submission.toml beats the path component 'korea'.
    y1 = records["korea/y1.jpg"]
    assert (y1.culture, y1.sources["culture"]) == ("nigeria", "submission.toml")


def test_flags_below_submission_toml_above_path(tmp_path):
    root = tmp_path / "sub"
    write_image(root / "korea" / "y1.jpg", 1)
    write_jsonl(root / "korea" / "metadata.jsonl", [
        {"file_name": "y1.jpg", "text": "a street market selling rice cakes"},
        {"file_name": "y2.jpg", "text": "a bowl of soup", "culture": "korea"}])
    write_image(root / "korea" / "y2.jpg", 2)
    (root / "toml").mkdir()
    (root / "toml" / "submission.toml").write_text(
        'culture = "nigeria"\nlicence_typo = "x"\n', "utf-8")
    write_image(root / "toml" / "z.jpg", 3)
    write_jsonl(root / "toml" / "metadata.jsonl",
                [{"file_name": "z.jpg", "text": "a plate of pounded yam"}])

    result = read(root, {"culture": "india", "license": "CC0-1.0"})
    records = {r.image: r for r in result.records}
    y1 = records["korea/y1.jpg"]
    assert (y1.culture, y1.sources["culture"]) == ("india", "flag --culture")
    assert (y1.license, y1.sources["license"]) == ("CC0-1.0", "flag --license")
    y2 = records["korea/y2.jpg"]
    assert (y2.culture, y2.sources["culture"]) == ("korea", "korea/metadata.jsonl column 'culture'")
    z = records["toml/z.jpg"]
    assert (z.culture, z.sources["culture"]) == ("nigeria", "toml/submission.toml")
    # An unknown key in submission.toml is reported, the rest still applies.
    assert any(f.check == "metadata.malformed" and f.file == "toml/submission.toml"
               and "licence_typo" in f.message for f in result.findings)

    without_flags = {r.image: r for r in read(root).records}
    assert without_flags["korea/y1.jpg"].sources["culture"] == "path component 'korea'"


# --- the output is a Hugging Face imagefolder ---------------------------------------------


def _load_dataset(monkeypatch, tmp_path, data_dir: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset("imagefolder", data_dir=str(data_dir),
                                 cache_dir=str(tmp_path / "hf_cache"))


def test_output_loads_with_datasets_imagefolder(tmp_path, monkeypatch):
    root, out = tmp_path / "sub", tmp_path / "out"
    scoft_tree(root)
    # A column filled in one split only (language, via submission.toml) must still load.
    (root / "a" / "b" / "korea" / "train" / "submission.toml").write_text('language = "en"\n',
                                                                           "utf-8")
    assert run(root, out, reports=True).exit_code == 0
    ds = _load_dataset(monkeypatch, tmp_path, out / "clean" / "korea")
    assert set(ds) == {"train", "test"}
    assert sorted(ds["train"]["text"]) == ["a bowl of bibimbap with seasoned vegetables",
                                           "the main gate of Gyeongbokgung palace in Seoul"]
    assert ds["test"]["text"] == ["a plate of cabbage kimchi beside steamed rice"]
    first = ds["train"][0]
    assert first["image"].size == (600, 520)
    assert first["negative_imgpath"] and first["blip_text"]
    assert sorted(ds["train"]["language"]) == ["en", "en"]
    assert os.path.isfile(out / "clean" / "korea" / first["negative_imgpath"][0])


@pytest.mark.xfail(strict=True, reason=(
    "negative_imgpath only in the train split: the test split's metadata.jsonl has the "
    "column as null, which `datasets` infers as Value('null') against List(string) in train "
    "and refuses ('different features'); JSON lines cannot type an empty list. Needs an "
    "export design decision (e.g. one metadata file per culture, or features in a card)."))
def test_output_loads_when_only_train_has_negatives(tmp_path, monkeypatch):
    root, out = tmp_path / "sub", tmp_path / "out"
    scoft_tree(root, negatives_in_test=False)
    assert run(root, out, reports=True).exit_code == 0
    ds = _load_dataset(monkeypatch, tmp_path, out / "clean" / "korea")
    assert ds["test"]["text"] == ["a plate of cabbage kimchi beside steamed rice"]


def test_submissions_folder_named_for_a_culture_gives_the_culture(tmp_path):
    """`ccub validate culture_data/korea` on the layout of the public SCoFT data: the rows
    have no culture column; the folder given names it."""
    root = tmp_path / "culture_data" / "korea"
    imagefolder(root / "train", [("FOOD_1.jpg", "a bowl of bibimbap with vegetables")])
    rows = read_jsonl(root / "train" / "metadata.jsonl")
    assert "culture" not in rows[0]
    [record] = read(root).records
    assert record.culture == "korea"
    assert record.sources["culture"] == "submissions folder 'korea'"
    # Anything more specific wins: a path component below the folder, a flag, the row.
    [record] = read(root, {"culture": "india"}).records
    assert record.culture == "india"
