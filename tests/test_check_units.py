"""Check families called directly on one record: what each finds, at its thresholds, without a
pipeline run (tests/test_checks.py runs every check end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccub.checks.captions import CaptionChecks
from ccub.checks.duplicates import DuplicateChecks
from ccub.checks.files import FileChecks
from ccub.checks.images import GeometryChecks, QualityChecks
from ccub.checks.labels import LabelChecks
from ccub.checks.privacy import PrivacyChecks
from ccub.checks.registry import Context, severity_of
from ccub.checks.rights import RightsChecks
from ccub.config import load_config
from ccub.imaging.analyze import ImageFacts
from ccub.records import Record
from ccub.safeio import Root
from ccub.text import clip_tokens_at_least
from ccub.vocab import Vocabulary

CFG = load_config(cwd=Path(__file__).parent)


def context(cfg=CFG) -> Context:
    return Context(cfg=cfg, vocab=Vocabulary(cfg), root=Root(Path(__file__).parent), facts={})


def found(family, cfg=CFG, **fields) -> list[str]:
    record = Record(key="korea/x.jpg", origin="test", image="korea/x.jpg", **fields)
    return [f.check for f in family.check_record(record, context(cfg))]


CAPTION = "a plate of tteokbokki in spicy red sauce at a market stall"


@pytest.mark.parametrize(("caption", "expected"), [
    (None, ["caption.missing"]),
    ("  \n", ["caption.missing"]),
    ("IMG_1234", ["caption.placeholder"]),
    ("x", ["caption.placeholder"]),  # the file's own stem
    ("a photo", ["caption.placeholder"]),
    ("kimchi jjigae", ["caption.too_short"]),  # 2 words < min_words 3
    ("kimchi jjigae stew", []),
    (CAPTION, []),
    ("a  plate\u200b of rice cakes", ["caption.unicode"]),
])
def test_caption_findings(caption, expected):
    assert found(CaptionChecks(), caption=caption) == expected


def test_caption_length_limits_come_from_the_config():
    cfg = load_config(cwd=Path(__file__).parent)
    cfg.limits.max_caption_chars = len(CAPTION) - 1
    assert found(CaptionChecks(), cfg, caption=CAPTION) == ["caption.too_long"]
    cfg.limits.max_caption_chars = len(CAPTION)
    assert found(CaptionChecks(), cfg, caption=CAPTION) == []
    cfg.captions.max_clip_tokens = 5
    assert found(CaptionChecks(), cfg, caption=CAPTION) == ["caption.clip_tokens"]


def test_machine_captions():
    assert found(CaptionChecks(), caption=CAPTION, caption_source="blip") == ["caption.machine"]
    assert found(CaptionChecks(), caption=CAPTION, blip_text=CAPTION.upper()) == ["caption.machine"]
    assert found(CaptionChecks(), caption=CAPTION, caption_source="community", blip_text="a plate of food") == []


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, ["rights.license_missing"]),
    ({"license": "CC0-1.0"}, []),
    ({"license": "cc by 4.0", "creator": "A. Kim"}, ["rights.license_normalised"]),
    ({"license": "CC-BY-4.0"}, ["rights.attribution_missing"]),
    ({"license": "MIT"}, ["rights.license_not_allowed"]),
    ({"license": "CC-BY-4.0, MIT", "creator": "A. Kim"}, ["rights.license_invalid"]),
    ({"license": "CC0-1.0", "consent": "no"}, ["rights.consent_refused"]),
    ({"license": "CC0-1.0", "consent": "maybe"}, ["rights.consent_invalid"]),
    ({"license": "CC0-1.0", "caption": "a woman in a hanbok"}, ["rights.consent_missing"]),
    ({"license": "CC0-1.0", "caption": "a woman in a hanbok", "consent": "yes"}, []),
])
def test_rights_findings(fields, expected):
    assert found(RightsChecks(), **fields) == expected


@settings(max_examples=200, deadline=None)
@given(caption=st.text(max_size=300), language=st.none() | st.text(max_size=12))
def test_any_caption_and_language_give_caption_findings_and_never_raise(caption, language):
    ids = {s.id for s in CaptionChecks.specs}
    assert set(found(CaptionChecks(), caption=caption, language=language)) <= ids


def facts(**values) -> ImageFacts:
    """An image that passes every image check, with `values` changed."""
    good = dict(width=800, height=600, mean=0.5, overexposed=0.0, laplacian_var=500.0, entropy=7.0, channel_delta=40.0,
                format="JPEG")
    return ImageFacts(path="korea/x.jpg", sniffed="jpeg", **(good | values))


def context_with(image: ImageFacts, cfg=CFG) -> Context:
    ctx = context(cfg)
    ctx.facts[image.path] = image
    return ctx


def image_findings(family, image: ImageFacts, cfg=CFG) -> list[str]:
    record = Record(key="korea/x.jpg", origin="test", image=image.path)
    return [f.check for f in family.check_record(record, context_with(image, cfg))]


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"width": 255, "height": 400}, ["geometry.too_small"]),
    ({"width": 256, "height": 400}, ["geometry.small"]),  # at the error threshold: only the warning
    ({"width": 511, "height": 600}, ["geometry.small"]),
    ({"width": 512, "height": 600}, []),
    ({"width": 2048, "height": 600}, ["geometry.aspect"]),  # 3.4 > 3
    ({"width": 2500, "height": 600}, ["geometry.aspect_extreme"]),  # 4.2 > 4
    ({"width": 1800, "height": 600}, []),  # exactly 3: not above it
    ({"channel_delta": 2.9}, ["image.grayscale"]),
    ({"transforms": [("orientation", "rotated 90")]}, ["image.orientation"]),
    ({"transforms": [("icc", "Display P3 -> sRGB")]}, ["image.colour"]),
])
def test_geometry_findings_at_their_thresholds(changes, expected):
    assert image_findings(GeometryChecks(), facts(**changes)) == expected


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"mean": 0.11}, ["quality.dark"]),
    ({"mean": 0.12}, []),
    ({"overexposed": 0.51}, ["quality.overexposed"]),
    ({"laplacian_var": 29.0}, ["quality.blurry"]),
    ({"entropy": 2.9, "laplacian_var": 1.0}, ["quality.low_information"]),  # not also blurry
])
def test_quality_findings_at_their_thresholds(changes, expected):
    assert image_findings(QualityChecks(), facts(**changes)) == expected


def test_an_image_that_failed_to_decode_gets_no_image_findings():
    assert image_findings(GeometryChecks(), facts(width=10, height=10, error="file.decode")) == []


@pytest.mark.parametrize(("fields", "expected"), [
    ({"culture": "korea", "category": "FOOD"}, []),
    ({"category": "FOOD"}, ["label.culture_missing"]),
    ({"culture": "atlantis", "category": "FOOD"}, ["label.culture_unknown"]),
    ({"culture": "korea"}, ["label.category_missing"]),
    ({"culture": "korea", "category": "SPACESHIP"}, ["label.category_unknown"]),
    ({"culture": "korea", "category": "FOOD", "split": "holdout"}, ["label.split_unknown"]),
])
def test_label_findings(fields, expected):
    assert found(LabelChecks(), **fields) == expected


@pytest.mark.parametrize(("caption", "expected"), [
    (CAPTION, []),
    (CAPTION + ", write to kim.minji@example.org", ["privacy.caption_email"]),
    (CAPTION + ", call +82 10-1234-5678", ["privacy.caption_phone"]),
    (CAPTION + " https://example.org/food", ["privacy.caption_url"]),
    (CAPTION + " by @kimminji", ["privacy.caption_handle"]),
])
def test_privacy_findings_in_captions(caption, expected):
    assert found(PrivacyChecks(), caption=caption) == expected


def test_privacy_messages_never_repeat_the_personal_data():
    record = Record(key="korea/x.jpg", origin="test", image="korea/x.jpg",
                    caption=CAPTION + ", write to kim.minji@example.org or call +82 10-1234-5678")
    messages = [f.message for f in PrivacyChecks().check_record(record, context())]
    assert len(messages) == 2 and not any("minji@" in m or "1234-5678" in m for m in messages)


def test_privacy_findings_from_image_metadata():
    image = facts(privacy={"location": ["EXIF GPS"], "owner_name": ["XMP dc:creator"]}, staged="x.jpg",
                  removed=["APP1 Exif", "APP1 Exif", "COM comment"])
    findings = {f.check: f for f in PrivacyChecks().check_record(
        Record(key="korea/x.jpg", origin="test", image=image.path), context_with(image))}
    assert set(findings) == {"privacy.location", "privacy.owner_name", "privacy.metadata_removed"}
    assert findings["privacy.metadata_removed"].message == "APP1 Exif x2, COM comment"
    assert findings["privacy.location"].fixed == "removed from the exported copy"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"byte_size": 50_000}, []),
    ({"byte_size": 1023}, ["file.tiny"]),  # below limits.min_file_bytes = 1024
    ({"byte_size": 1024}, []),
    ({"byte_size": 50_000, "format": "PNG"}, ["file.extension"]),  # named .jpg
    ({"byte_size": 50_000, "format": "MPO"}, []),  # a JPEG with extra frames
    ({"byte_size": 50_000, "error": "file.too_large", "error_detail": "60 MB > 50 MB"}, ["file.too_large"]),
])
def test_file_findings(changes, expected):
    assert image_findings(FileChecks(), facts(**changes)) == expected


def test_a_broken_negative_is_dropped_with_a_finding_and_a_good_one_kept():
    ctx = context_with(facts(byte_size=50_000))
    broken = facts(byte_size=50_000, error="file.decode", error_detail="truncated")
    ctx.facts.update({"korea/neg_1.png": broken, "korea/neg_2.png": facts(byte_size=50_000)})
    record = Record(key="korea/x.jpg", origin="test", image="korea/x.jpg",
                    negatives=["korea/neg_1.png", "korea/neg_2.png"])
    assert [f.check for f in FileChecks().check_record(record, ctx)] == ["negatives.invalid"]
    assert record.negatives == ["korea/neg_2.png"]


def test_duplicate_decisions_keep_the_copy_the_other_checks_found_no_error_in():
    import numpy as np

    rng = np.random.default_rng(0)
    hash_a = rng.integers(0, 2**63, (8, 4), dtype=np.uint64)
    images = {"korea/a.jpg": hash_a, "korea/b.jpg": hash_a.copy(),  # the same photo, other bytes and pixels
              "korea/c.jpg": rng.integers(0, 2**63, (8, 4), dtype=np.uint64)}
    ctx = context()
    records = []
    for n, (path, phash) in enumerate(images.items()):
        ctx.facts[path] = ImageFacts(path=path, sha256=f"sha-{n}", pixel_key=f"pixels-{n}", phash=phash.tobytes(),
                                     width=800, height=600, format="JPEG")
        records.append(Record(key=path, origin="test", image=path, culture="korea", caption=CAPTION))
    for status, dropped in (({}, "korea/b.jpg"), ({"korea/a.jpg": "error"}, "korea/a.jpg")):
        decisions = DuplicateChecks().decide(records, ctx, status)
        assert [(f.check, f.record) for f in decisions.findings] == [("duplicate.near", dropped)]
        assert {decisions.graph.nodes[i].key for i in decisions.dropped} == {dropped}
        assert [sorted(decisions.graph.nodes[i].key for i in g) for g in decisions.groups()] == [
            ["korea/a.jpg", "korea/b.jpg"]]


# --- every case of a record-level family, with the severity that decides the record's status ---

def graded(family, key: str = "korea/x.jpg", cfg=CFG, **fields) -> dict[str, str]:
    """check id -> severity for what `family` finds on one record."""
    record = Record(key=key, origin="test", image=key, **fields)
    return {f.check: severity_of(f.check, cfg) for f in family.check_record(record, context(cfg))}


PLACEHOLDERS = ["IMG_1234", "photo", "2023-05-01", "DSC 0042", "untitled"]


@pytest.mark.parametrize("caption", [None, "   \t "])
def test_caption_missing_is_an_error(caption):
    assert graded(CaptionChecks(), caption=caption) == {"caption.missing": "error"}


@pytest.mark.parametrize("caption", PLACEHOLDERS)
def test_placeholder_captions_are_errors_and_one_finding_is_enough(caption):
    assert graded(CaptionChecks(), caption=caption) == {"caption.placeholder": "error"}


@pytest.mark.parametrize("caption", ["FOOD_3", "food_3.jpg"])
def test_the_files_own_name_is_a_placeholder(caption):
    assert graded(CaptionChecks(), key="korea/FOOD_3.jpg", caption=caption) == {"caption.placeholder": "error"}


@pytest.mark.parametrize("caption", ["photo of a hanbok", "IMG of a red lantern festival"])
def test_captions_that_start_like_placeholders_pass(caption):
    assert graded(CaptionChecks(), caption=caption) == {}


@pytest.mark.parametrize(("caption", "short"), [
    ("kimchi stew", True),  # 2 words
    ("kimchi stew bowl", False),
    ("a b c", True),  # 5 characters
    ("a b cd", False),
    ("비빔밥", True),  # one Korean word of 3 syllables
])
def test_short_captions_go_to_review(caption, short):
    assert graded(CaptionChecks(), caption=caption) == ({"caption.too_short": "review"} if short else {})


def test_caption_length_limit_is_inclusive():
    long_text = ("kimchi " * 400)[:2001]
    assert graded(CaptionChecks(), caption=long_text) == {"caption.too_long": "error"}
    # 2,000 characters are allowed, and are far over CLIP's 77 tokens.
    assert graded(CaptionChecks(), caption=long_text[:2000]) == {"caption.clip_tokens": "warning"}


def test_clip_token_limit_counts_start_and_end_of_text():
    words = ["kimchi", "stew", "with", "tofu", "and", "green", "onions"]
    text_77 = " ".join(words[i % len(words)] for i in range(75))
    # Each ASCII word is one pre-tokeniser piece; start and end of text add two.
    assert clip_tokens_at_least(text_77) == 77
    assert clip_tokens_at_least(text_77 + " rice") == 78
    assert clip_tokens_at_least("don't stop 1990!") == 2 + 2 + 1 + 4 + 1  # don 't stop 1 9 9 0 !
    assert graded(CaptionChecks(), caption=text_77) == {}
    record = Record(key="korea/x.jpg", origin="test", image="korea/x.jpg", caption=text_77 + " rice")
    [finding] = CaptionChecks().check_record(record, context())
    assert (finding.check, severity_of(finding.check, CFG)) == ("caption.clip_tokens", "warning")
    assert "78" in finding.message


ENGLISH = "This is a traditional dish that is served during the harvest festival in the old town"


@pytest.mark.parametrize(("caption", "language", "expected"), [
    (ENGLISH, "ko", {"caption.language": "warning"}),
    (ENGLISH + " today", "en", {}),
    ("추석에 온 가족이 모여서 송편을 빚고 차례를 지내는 전통 음식입니다", "ko-KR", {}),
    ("a bowl of kimchi", "ko", {}),  # too short to judge
    (ENGLISH + " again", None, {}),  # nothing declared
    (CAPTION, "korean", {"caption.language_invalid": "error"}),
    (CAPTION, "xx", {"caption.language_invalid": "error"}),
    ("a bowl of kimchi", "pt-BR", {}),  # a valid tag; too short to judge
    ("a bowl of kimchi", "ko_KR", {}),  # a valid tag; too short to judge
])
def test_declared_languages(caption, language, expected):
    assert graded(CaptionChecks(), caption=caption, language=language) == expected


def test_language_findings_name_the_field_and_what_the_caption_reads_as():
    def only(**fields):
        [finding] = CaptionChecks().check_record(Record(key="k", origin="test", **fields), context())
        return finding

    assert only(caption=CAPTION, language="korean").field == "language"
    assert "'en'" in only(caption=ENGLISH, language="ko").message


BLIP = "a bowl of soup on a table"


@pytest.mark.parametrize(("fields", "machine"), [
    ({"caption_source": "machine"}, True),
    ({"caption": "A bowl of soup on a table", "blip_text": BLIP}, True),
    ({"caption_source": "community", "blip_text": BLIP}, False),
    ({"caption": "a bowl of kimchi soup on a table", "blip_text": BLIP}, False),
])
def test_machine_captions_are_errors(fields, machine):
    fields = {"caption": CAPTION} | fields
    assert graded(CaptionChecks(), **fields) == ({"caption.machine": "error"} if machine else {})


def dataset_findings(family, records: list[Record]) -> list:
    return list(family.check_dataset(records, context()))


def test_repeated_captions_ignore_case_and_spacing():
    same = "a bowl of kimchi stew on a wooden table"
    records = [Record(key=f"korea/{n}.jpg", origin="test", image=f"korea/{n}.jpg", caption=text)
               for n, text in enumerate([same, same.upper() + "  ", same + " with rice"])]
    findings = dataset_findings(CaptionChecks(), records)
    assert sorted((f.check, f.record) for f in findings) == [("caption.repeated", "korea/0.jpg"),
                                                             ("caption.repeated", "korea/1.jpg")]
    assert severity_of("caption.repeated", CFG) == "warning"


def labelled(culture: str, category: str, contributors: list[str]) -> list[Record]:
    return [Record(key=f"{culture}/{category}_{n}.jpg", origin="test", culture=culture, category=category,
                   contributor=c) for n, c in enumerate(contributors)]


def test_sparse_categories_are_dataset_level_information():
    records = labelled("korea", "FOOD", [f"c{i}" for i in range(4)]) + labelled(
        "korea", "ARCH", [f"c{i}" for i in range(5)])
    [sparse] = [f for f in dataset_findings(LabelChecks(), records) if f.check == "label.sparse_category"]
    assert sparse.message.split(":")[0] == "korea / FOOD" and sparse.record is None
    assert severity_of("label.sparse_category", CFG) == "info"


def test_contributor_skew():
    records = (labelled("korea", "FOOD", ["a", "a", "a", "b"]) + labelled("nigeria", "FOOD", ["a", "a", "b", "b"])
               + labelled("japan", "FOOD", ["a"] * 5) + labelled("mexico", "FOOD", ["a"] * 4))
    skewed = sorted(f.message.split(":")[0] for f in dataset_findings(LabelChecks(), records)
                    if f.check == "label.contributor_skew")
    # 3 of 4 is over half; 2 of 4 is not; one contributor for 5 records (>= the sparse
    # threshold) is flagged, for 4 records not yet.
    assert skewed == ["japan", "korea"]
    assert severity_of("label.contributor_skew", CFG) == "warning"


@pytest.mark.parametrize(("license", "expected", "fixed"), [
    (None, {"rights.license_missing": "error"}, None),
    ("CC-BY-FOO", {"rights.license_invalid": "error"}, None),
    ("CC-BY-NC-4.0", {"rights.license_not_allowed": "error"}, None),  # valid, not allowed
    ("cc-by-4.0", {"rights.license_normalised": "warning"}, "CC-BY-4.0"),
    ("CC BY-SA 4.0", {"rights.license_normalised": "warning"}, "CC-BY-SA-4.0"),
    ("CC-BY-4.0", {}, None),
    ("CC0-1.0", {}, None),
])
def test_licences(license, expected, fixed):
    fields = {"license": license, "creator": "Kim Minji", "consent": "n/a", "caption": CAPTION}
    assert graded(RightsChecks(), **fields) == expected
    record = Record(key="korea/x.jpg", origin="test", **fields)
    assert [f.fixed for f in RightsChecks().check_record(record, context())] == [fixed] * len(expected)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"creator": None}, {"rights.attribution_missing": "error"}),
    ({"creator": None, "license": "CC0-1.0"}, {}),  # nobody to attribute
    ({"license": "CC-BY-SA-4.0"}, {}),
])
def test_attribution(fields, expected):
    fields = {"license": "CC-BY-4.0", "creator": "Kim Minji", "consent": "n/a", "caption": CAPTION} | fields
    assert graded(RightsChecks(), **fields) == expected


@pytest.mark.parametrize(("key", "caption", "consent", "expected"), [
    ("korea/PEOPLE_1.jpg", CAPTION, None, {"rights.consent_missing": "review"}),  # people category
    ("korea/FOOD_2.jpg", "a woman selling kimchi at the market", None, {"rights.consent_missing": "review"}),
    ("korea/PEOPLE_3.jpg", CAPTION, "n/a", {}),
    ("korea/FOOD_4.jpg", CAPTION, None, {}),  # no people words
    ("korea/FOOD_5.jpg", "a womanly shape carved into a kimchi jar", None, {}),
    ("korea/PEOPLE_6.jpg", CAPTION, "Yes", {}),
    ("korea/PEOPLE_7.jpg", CAPTION, "no", {"rights.consent_refused": "error"}),
    ("korea/FOOD_8.jpg", CAPTION, "withdrawn", {"rights.consent_refused": "error"}),
    ("korea/FOOD_9.jpg", CAPTION, "maybe", {"rights.consent_invalid": "error"}),
    ("korea/PEOPLE_10.jpg", CAPTION, "ask", {"rights.consent_invalid": "error"}),
    ("korea/FOOD_11.jpg", CAPTION, "N/A", {}),
    ("korea/PEOPLE_12.jpg", CAPTION, "signed", {}),
])
def test_consent(key, caption, consent, expected):
    category = "PEOPLE" if "PEOPLE" in key else "FOOD"
    assert graded(RightsChecks(), key=key, license="CC0-1.0", caption=caption, consent=consent,
                  category=category) == expected


def test_missing_consent_names_the_word_that_suggests_a_person():
    record = Record(key="korea/FOOD_2.jpg", origin="test", license="CC0-1.0", category="FOOD",
                    caption="a woman selling kimchi at the market")
    [finding] = RightsChecks().check_record(record, context())
    assert "woman" in finding.message
