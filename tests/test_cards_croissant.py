"""The Croissant card: it validates with mlcroissant, its records resolve to the exported
captions and images, its checksums are right, and steward text stays data."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import make_image, read_jsonl, row, submission
from PIL import Image

from ccub.config import load_config
from ccub.pipeline import Options, validate
from ccub.report import write_reports
from data_cards.croissant import (
    CARD_FILE,
    CONFORMS_TO,
    INCOMPLETE,
    collection_timeframe,
    dumps,
    render_croissant,
    write_croissant,
)
from data_cards.facts import CardMeta, DatasetStats, compute_stats

mlc = pytest.importorskip("mlcroissant", reason="mlcroissant is not installed "
                          "(pip install 'mlcroissant>=1.1'); the Croissant card cannot be "
                          "loaded and checked without it")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "submissions"
HOSTILE = 'He said "hi" </script><script>alert(1)</script> & \\ back\nslash \u2028 ünï'


def full_meta(**overrides: Any) -> CardMeta:
    values: dict[str, Any] = dict(
        name="ccub-test", pretty_name="CCUB test set", description="Two cultures, a few photos.",
        version="1.0.0", license="CC-BY-4.0", publication_date="2024-06-01",
        citation="@misc{ccub2024, title={CCUB test}, year={2024}}",
        creators=["Kim Minji", "CCUB Project"], curators=["A. Curator"],
        contact="data@example.org", homepage="https://example.org/ccub",
        recruitment="Open call in community groups.", compensation="Gift card per 20 images.",
        consent_wording="May we publish this photo and caption under CC BY 4.0?",
        withdrawal="Email us; removed at the next release.",
        caption_authors="Contributors wrote captions in their own words.",
        intended_uses="Fine-tuning text-to-image models for cultural accuracy.",
        out_of_scope_uses="Identifying people.", known_gaps="Few rural scenes.",
        biases="Mostly urban contributors.", maintenance="Yearly releases.",
        tags=["culture", "image-text"])
    values.update(overrides)
    return CardMeta(**values)


def _build(base: Path) -> Path:
    """Two cultures (korea: jpg + webp, nigeria: png), train and test splits; returns out."""
    root, out = base / "subs", base / "out"
    korea = [f"FOOD_{i}.jpg" for i in range(4)] + ["ARCH_0.webp"]
    for i, name in enumerate(korea):
        make_image(root / "korea" / name, seed=100 + i)
    submission(root, [row(name, i, created_at=f"2023-05-0{i + 1}T10:00:00Z")
                      for i, name in enumerate(korea)], folder="korea")
    for i in range(3):
        make_image(root / "nigeria" / f"CLOTHING_{i}.png", seed=200 + i)
    submission(root, [row(f"CLOTHING_{i}.png", 20 + i, creator="Ade Bello", contributor="n1")
                      for i in range(3)], folder="nigeria")
    validate(Options(root, out, workers=1, test_fraction=0.3), load_config(cwd=base), None,
             write_reports)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, DatasetStats]:
    out = _build(tmp_path_factory.mktemp("croissant"))
    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    return out, compute_stats(report, out)


def load(path: Path):
    """mlcroissant's Dataset (raises on validation errors) and its issues."""
    dataset = mlc.Dataset(jsonld=str(path))
    return dataset, dataset.metadata.ctx.issues


def row_sets(document: dict[str, Any]) -> list[str]:
    return [rs["@id"] for rs in document["recordSet"] if not rs["@id"].endswith("-images")]


def text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def pil(value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    assert isinstance(value, bytes), f"image field gave {type(value)}"
    return Image.open(io.BytesIO(value))


def walk(value: Any):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def test_document_validates_and_records_resolve_to_exported_files(built, tmp_path):
    out, stats = built
    clean = out / "clean"
    path = write_croissant(full_meta(), stats, clean)
    assert path == clean / CARD_FILE
    dataset, issues = load(path)
    assert not issues.errors and not issues.warnings, issues.report()

    document = json.loads(path.read_text("utf-8"))
    assert sorted(row_sets(document)) == ["korea-test", "korea-train", "nigeria-test",
                                          "nigeria-train"]
    seen_suffixes = set()
    for culture, splits in stats.data_files.items():
        for split, rel in splits.items():
            rows = read_jsonl(clean / rel)
            records = list(dataset.records(record_set=f"{culture}-{split}"))
            assert len(records) == len(rows)
            by_name = {text(r[f"{culture}-{split}/file_name"]): r for r in records}
            assert sorted(by_name) == sorted(r["file_name"] for r in rows)
            for expected in rows:
                record = by_name[expected["file_name"]]
                prefix = f"{culture}-{split}/"
                assert text(record[prefix + "text"]) == expected["text"]
                for column in ("culture", "category", "license", "creator", "source_file"):
                    assert text(record[prefix + column]) == expected[column]
                exported = clean / culture / split / expected["file_name"]
                seen_suffixes.add(exported.suffix)
                got = pil(record[prefix + "image"])
                with Image.open(exported) as want:
                    assert got.size == want.size
                    assert np.array_equal(np.asarray(got.convert("RGB")),
                                          np.asarray(want.convert("RGB")))
    assert seen_suffixes == {".jpg", ".png", ".webp"}


def test_checksums_paths_and_file_sets_match_the_disk(built):
    out, stats = built
    clean = out / "clean"
    document = render_croissant(full_meta(), stats)
    objects = [d for d in document["distribution"] if d["@type"] == "cr:FileObject"]
    assert sorted(o["contentUrl"] for o in objects) == sorted(
        p.relative_to(clean).as_posix() for p in clean.glob("*/*/metadata.jsonl"))
    for obj in objects:
        data = (clean / obj["contentUrl"]).read_bytes()
        assert obj["sha256"] == hashlib.sha256(data).hexdigest()
        assert obj["contentSize"] == f"{len(data)} B"
        assert obj["encodingFormat"] == "application/jsonlines"
        assert not Path(obj["contentUrl"]).is_absolute()
    sets = [d for d in document["distribution"] if d["@type"] == "cr:FileSet"]
    covered = {p for s in sets for pattern in s["includes"] for p in clean.glob(pattern)}
    assert covered == set(clean.glob("*/*/images/*"))


def test_metadata_and_rai_fields(built):
    out, stats = built
    document = render_croissant(full_meta(), stats)
    assert document["@context"]["rai"] == "http://mlcommons.org/croissant/RAI/"
    assert document["@context"]["cr"] == "http://mlcommons.org/croissant/"
    assert document["conformsTo"] == CONFORMS_TO
    assert document["license"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    assert document["url"] == "https://example.org/ccub"
    assert document["version"] == "1.0.0" and document["datePublished"] == "2024-06-01"
    assert document["citeAs"].startswith("@misc{ccub2024")
    assert document["creator"] == [{"@type": "sc:Person", "name": "Kim Minji"},
                                   {"@type": "sc:Organization", "name": "CCUB Project"}]
    assert {"culture", "korea", "nigeria"} <= set(document["keywords"])
    assert INCOMPLETE not in document["description"]
    # Computed facts.
    protocol = "\n".join(document["rai:dataPreprocessingProtocol"])
    for check_id, _severity, thresholds in stats.checks:
        assert f"Check {check_id} " in protocol
        for name, value in thresholds.items():
            if value is not None:
                assert f"{name} = " in protocol
    assert f"{stats.records_in} records submitted, {stats.total} exported" in protocol
    personal = " ".join(document["rai:personalSensitiveInformation"])
    assert f"removed from all {stats.total} exported images" in personal
    assert "May we publish this photo" in personal
    assert document["rai:dataCollectionTimeframe"] == ["2024-06-01"]  # no timeframe given
    with_time = render_croissant(full_meta(), stats,
                                 timeframe=collection_timeframe(out / "clean", stats))
    assert with_time["rai:dataCollectionTimeframe"] == ["2023-05-01T10:00:00Z",
                                                         "2023-05-05T10:00:00Z"]
    limitations = " ".join(document["rai:dataLimitations"])
    assert "Few rural scenes." in limitations and "korea/ARCH (1)" in limitations
    assert "Mostly urban contributors." in document["rai:dataBiases"]
    assert document["rai:dataUseCases"] == [
        "Fine-tuning text-to-image models for cultural accuracy.",
        "Out of scope: Identifying people."]
    plan = document["rai:dataReleaseMaintenancePlan"]
    assert "Yearly releases." in plan and "data@example.org" in plan and "A. Curator" in plan
    assert "Gift card" in document["rai:dataCollection"]


def test_incomplete_card_still_validates_and_is_marked(built, tmp_path):
    out, stats = built
    meta = CardMeta(name="draft")
    document = render_croissant(meta, stats)
    # Missing required fields are omitted, never written empty.
    for key in ("citeAs", "datePublished", "version", "creator", "url"):
        assert key not in document
    assert all(v != "" for v in walk(document))
    # The licence comes from the records (they all share CC-BY-4.0).
    assert document["license"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    assert f"[{INCOMPLETE}]" in document["description"]
    assert "publication_date, citation, creators, version" in document["description"]

    clean = tmp_path / "clean"
    shutil.copytree(out / "clean", clean)
    path = clean / CARD_FILE
    path.write_text(dumps(document), encoding="utf-8")
    dataset, issues = load(path)
    assert not issues.errors
    assert issues.warnings == {
        f'[Metadata(draft)] Property "{prop}" is recommended, but does not exist.'
        for prop in ("http://mlcommons.org/croissant/citeAs", "https://schema.org/datePublished",
                     "https://schema.org/version")}
    assert len(list(dataset.records(record_set="nigeria-train"))) == \
        stats.by_culture_split["nigeria"]["train"]

    # Without a shared licence, the licence is missing too and mlcroissant says so.
    mixed = copy.deepcopy(stats)
    mixed.single_license = None
    document = render_croissant(meta, mixed)
    assert "license" not in document and "license, publication_date" in document["description"]
    path.write_text(dumps(document), encoding="utf-8")
    _, issues = load(path)
    assert not issues.errors
    assert '[Metadata(draft)] Property "https://schema.org/license" is recommended, but does ' \
        'not exist.' in issues.warnings


def test_bad_publication_date_is_left_out_and_marked(built):
    _, stats = built
    document = render_croissant(full_meta(publication_date="June 2024"), stats)
    assert "datePublished" not in document
    assert "publication_date (not an ISO date)" in document["description"]


def test_steward_text_is_data(built, tmp_path):
    out, stats = built
    meta = full_meta(**{name: HOSTILE for name in (
        "pretty_name", "description", "citation", "contact", "consent_wording", "biases",
        "known_gaps", "intended_uses", "maintenance", "recruitment")},
        creators=[HOSTILE], tags=[HOSTILE])
    clean = tmp_path / "clean"
    shutil.copytree(out / "clean", clean)
    path = write_croissant(meta, stats, clean)
    raw = path.read_text("utf-8")
    assert "<" not in raw and ">" not in raw and "&" not in raw  # safe inside HTML <script>
    document = json.loads(raw)
    assert document["description"] == HOSTILE.strip()
    assert document["citeAs"] == HOSTILE.strip()
    assert document["creator"] == [{"@type": "sc:Person", "name": HOSTILE.strip()}]
    assert HOSTILE.strip() in document["keywords"]
    assert HOSTILE.strip() in document["rai:dataBiases"]
    dataset, issues = load(path)
    assert not issues.errors, issues.report()
    assert dataset.metadata.description == HOSTILE.strip()
    assert dataset.metadata.cite_as == HOSTILE.strip()


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/submissions not generated")
def test_example_submissions_card_validates_and_iterates(tmp_path):
    out = tmp_path / "out"
    validate(Options(EXAMPLES, out, workers=2), load_config(cwd=tmp_path), None, write_reports)
    report = json.loads((out / "reports" / "report.json").read_text("utf-8"))
    stats = compute_stats(report, out)
    path = write_croissant(full_meta(), stats, out / "clean")
    dataset, issues = load(path)
    assert not issues.errors and not issues.warnings, issues.report()
    document = json.loads(path.read_text("utf-8"))
    assert sorted(row_sets(document)) == [f"{c}-{s}" for c in sorted(stats.data_files)
                                          for s in sorted(stats.data_files[c])]
    total = 0
    for record_set in row_sets(document):
        culture, split = record_set.rsplit("-", 1)
        rows = read_jsonl(out / "clean" / stats.data_files[culture][split])
        records = list(dataset.records(record_set=record_set))
        assert len(records) == len(rows)
        assert sorted(text(r[f"{record_set}/text"]) for r in records) == \
            sorted(r["text"] for r in rows)
        for record in records:
            image = pil(record[f"{record_set}/image"])
            assert image.size[0] > 0 and image.size[1] > 0
        total += len(records)
    assert total == stats.total
    personal = " ".join(document["rai:personalSensitiveInformation"])
    for name, count in stats.privacy_stripped.items():
        if count:
            assert f"{name.replace('_', ' ')} in {count} image" in personal
    assert document["rai:dataCollectionType"]
    assert len(document["rai:dataCollectionTimeframe"]) in (1, 2)
