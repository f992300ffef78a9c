"""Every check in the registry: a case where it fires and a close case where it does not.

Checks that decide on one record's fields are tested by calling their family directly
(tests/test_check_units.py); the tests here build a small submission in tmp_path, run
`ccub.pipeline.validate` with one worker and look at the findings, the record's outcome and
the exported clean dataset: reading files and manifests, decoding, stripping, exporting.
`test_every_check_is_covered` keeps COVERAGE in step with the registry.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import time
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    assert_clean_export,
    caption_for,
    checks_for,
    config,
    exported,
    issues_of,
    make_image,
    outcome,
    photo,
    read_jsonl,
    rgb_icc_profile,
    row,
    run,
    submission,
    write_jsonl,
)
from PIL import Image, ImageCms, ImageFilter, PngImagePlugin

import ccub.imaging.analyze as analyze
import ccub.safeio
from ccub.checks.registry import all_specs
from ccub.config import ConfigError, load_config
from ccub.export import ExportError, verify_clean
from ccub.imaging.strip import strip_jpeg

# check id -> the tests that make it fire and keep it quiet on a close case.
# The perceptual and semantic tiers and the leakage rules have their own test module.
COVERED_IN_TEST_DUPLICATES = {
    "duplicate.near": ("test_near_duplicates_are_dropped_keeping_the_largest",),
    "duplicate.near_review": ("test_crop_goes_to_review_not_removal", "test_the_search_settings_reach_the_search"),
    "duplicate.semantic": ("test_semantic_tier_with_tiny_random_clip_says_so",),
    "duplicate.category_conflict": ("test_near_duplicate_across_categories_is_a_warning",),
    "duplicate.split_leak": ("test_duplicate_spanning_train_and_test_is_a_leak",),
    "duplicate.semantic_conflict": ("test_clip_that_calls_everything_alike_rejects_nothing",),
}
COVERAGE = {
    "metadata.malformed": ("test_metadata_malformed", "test_metadata_well_formed"),
    "metadata.encoding": ("test_metadata_encoding", "test_metadata_encoding_sidecar"),
    "metadata.duplicate_row": ("test_metadata_duplicate_row",),
    "metadata.field_type": ("test_metadata_field_type",),
    "metadata.limit": ("test_metadata_limit",),
    "file.not_regular": ("test_file_not_regular",),
    "file.changed": ("test_file_changed",),
    "file.missing": ("test_file_missing",),
    "file.no_metadata": ("test_file_no_metadata",),
    "file.outside_root": ("test_file_outside_root", "test_file_outside_root_symlink"),
    "file.not_downloaded": ("test_file_not_downloaded",),
    "file.unreadable": ("test_file_unreadable",),
    "file.empty": ("test_file_empty",),
    "file.tiny": ("test_file_tiny",),
    "file.too_large": ("test_file_too_large",),
    "file.too_many_pixels": ("test_file_too_many_pixels", "test_file_too_many_pixels_configured"),
    "file.format": ("test_file_format",),
    "file.extension": ("test_file_extension",),
    "file.undecodable": ("test_file_undecodable",),
    "file.truncated": ("test_file_truncated",),
    "file.multi_frame": ("test_file_multi_frame",),
    "negatives.invalid": ("test_negatives_invalid",),
    "geometry.too_small": ("test_geometry_short_side",),
    "geometry.small": ("test_geometry_short_side",),
    "geometry.aspect": ("test_geometry_aspect",),
    "geometry.aspect_extreme": ("test_geometry_aspect",),
    "image.orientation": ("test_image_orientation",),
    "image.colour": ("test_image_colour_icc", "test_image_colour_modes"),
    "image.container": ("test_image_container_mpo",),
    "image.grayscale": ("test_image_grayscale",),
    "quality.dark": ("test_quality_dark",),
    "quality.overexposed": ("test_quality_overexposed",),
    "quality.blurry": ("test_quality_blurry_and_low_information",),
    "quality.low_information": ("test_quality_blurry_and_low_information",),
    "privacy.location": ("test_privacy_exif",),
    "privacy.device_serial": ("test_privacy_exif",),
    "privacy.owner_name": ("test_privacy_exif", "test_privacy_png_text"),
    "privacy.metadata_left": ("test_privacy_metadata_left", "test_verify_clean_raises_on_exif"),
    "privacy.metadata_removed": ("test_privacy_metadata_removed",),
    "privacy.caption_email": ("test_privacy_caption",),
    "privacy.caption_phone": ("test_privacy_caption",),
    "privacy.caption_url": ("test_privacy_caption",),
    "privacy.caption_handle": ("test_privacy_caption",),
    "caption.missing": ("test_check_units::test_caption_missing_is_an_error",),
    "caption.placeholder": (
        "test_check_units::test_placeholder_captions_are_errors_and_one_finding_is_enough",
        "test_check_units::test_the_files_own_name_is_a_placeholder",
        "test_check_units::test_captions_that_start_like_placeholders_pass",
    ),
    "caption.too_short": (
        "test_check_units::test_short_captions_go_to_review",
        "test_held_records_are_exported_only_with_include_review",
    ),
    "caption.too_long": ("test_check_units::test_caption_length_limit_is_inclusive", "test_caption_too_long_large"),
    "caption.clip_tokens": ("test_check_units::test_clip_token_limit_counts_start_and_end_of_text",),
    "caption.unicode": ("test_caption_unicode",),
    "caption.repeated": ("test_check_units::test_repeated_captions_ignore_case_and_spacing",),
    "caption.language": ("test_check_units::test_declared_languages",),
    "caption.machine": ("test_check_units::test_machine_captions_are_errors",),
    "caption.language_invalid": ("test_check_units::test_declared_languages",),
    "label.culture_missing": ("test_label_culture_missing",),
    "label.culture_unknown": ("test_label_culture_unknown",),
    "label.category_missing": ("test_label_category_missing",),
    "label.category_unknown": ("test_label_category_unknown",),
    "label.prefix_mismatch": ("test_label_prefix_mismatch",),
    "label.split_unknown": ("test_label_split_unknown",),
    "label.sparse_category": ("test_check_units::test_sparse_categories_are_dataset_level_information",),
    "label.contributor_skew": ("test_check_units::test_contributor_skew",),
    "rights.license_missing": ("test_check_units::test_licences",),
    "rights.license_invalid": ("test_check_units::test_licences",),
    "rights.license_not_allowed": (
        "test_check_units::test_licences",
        "test_normalised_licences_are_exported_in_canonical_form",
    ),
    "rights.license_normalised": (
        "test_check_units::test_licences",
        "test_normalised_licences_are_exported_in_canonical_form",
    ),
    "rights.attribution_missing": ("test_check_units::test_attribution",),
    "rights.consent_missing": ("test_check_units::test_consent",),
    "rights.consent_refused": ("test_check_units::test_consent",),
    "rights.consent_invalid": ("test_check_units::test_consent",),
    "duplicate.same_file": ("test_duplicate_same_file", "test_duplicate_same_file_keeps_clean_copy",
                            "test_duplicate_same_file_for_every_copy"),
    "duplicate.same_pixels": ("test_duplicate_same_pixels",),
    "duplicate.label_conflict": ("test_duplicate_label_conflict",),
    "consent.withdrawn": (
        "test_steward::test_withdrawn_contributors_and_images_are_excluded_also_when_submitted_again",
    ),
    "review.rejected": ("test_steward::test_a_rejection_reaches_the_contributor_with_the_reason",),
    "review.accepted": (
        "test_steward::test_an_accepted_held_record_is_exported_with_who_when_why_and_stays_accepted",
    ),
    "review.changed": ("test_steward::test_a_changed_caption_goes_back_to_review",),
}

K = "korea/"  # record keys of the default submission folder


def test_every_check_is_covered():
    ids = [spec.id for spec in all_specs()]
    assert len(ids) == len(set(ids)), "duplicate check ids in the registry"
    assert set(COVERAGE) | set(COVERED_IN_TEST_DUPLICATES) == set(ids)
    import importlib

    import test_duplicates

    def exists(name: str) -> bool:
        module, _, test = name.rpartition("::")
        return hasattr(importlib.import_module(module), test) if module else test in globals()

    missing = [name for names in COVERAGE.values() for name in names if not exists(name)]
    missing += [name for names in COVERED_IN_TEST_DUPLICATES.values() for name in names
                if not hasattr(test_duplicates, name)]
    assert not missing


# --- helpers -----------------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds almost no data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def exif(**tags: object) -> Image.Exif:
    """EXIF with base tags (by number, as 'T0x0112'), GPS and Exif-IFD sub-tags."""
    data = Image.Exif()
    for name, value in tags.items():
        if name == "gps":
            gps = data.get_ifd(0x8825)
            gps.update(value)
        elif name == "sub":
            data.get_ifd(0x8769).update(value)
        else:
            data[int(name[1:], 16)] = value
    return data


def assert_no_metadata(path: Path) -> None:
    """The exported file carries no metadata, by Pillow and by ccub's own verifier."""
    assert_clean_export(path)
    verify_clean(path)


def status(result, key: str) -> str:
    return outcome(result, key).status


def assert_rejected(result, key: str, check: str) -> None:
    assert check in checks_for(result, key), checks_for(result, key)
    assert {i.severity for i in issues_of(result, check) if i.finding.record == key} == {"error"}
    assert status(result, key) == "rejected"
    assert outcome(result, key).output is None


def assert_accepted(result, key: str, *warnings: str) -> None:
    found = checks_for(result, key)
    assert set(warnings) <= found, found
    assert status(result, key) == "accepted", found
    assert exported(result, key).is_file()


# --- files and metadata --------------------------------------------------------

def test_metadata_malformed(root, tmp_path):
    base = root / "korea"
    make_image(base / "FOOD_1.jpg", seed=1)
    make_image(base / "FOOD_3.jpg", seed=3)
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1), '{"file_name": "FOOD_2.jpg", "text": ',
                                          row("FOOD_3.jpg", 3), "[1, 2]"])
    (root / "korea" / "submission.toml").write_text('license = "CC-BY-4.0"\ncolour = "red"\n')
    result = run(root, tmp_path / "out")
    found = issues_of(result, "metadata.malformed")
    lines = sorted(i.finding.line for i in found if i.finding.file == "korea/metadata.jsonl")
    assert lines == [2, 4]
    assert any(i.finding.file == "korea/submission.toml" and "colour" in i.finding.message for i in found)
    assert {i.severity for i in found} == {"error"}
    # The other lines are still read and their records pass.
    assert_accepted(result, K + "FOOD_1.jpg")
    assert_accepted(result, K + "FOOD_3.jpg")
    assert result.exit_code == 1


def test_metadata_field_type(root, tmp_path):
    base = submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1, text=42),
                                          row("FOOD_2.jpg", 2, license={"id": "CC0-1.0"})])
    result = run(root, tmp_path / "out")
    found = {(i.finding.record, i.finding.field, i.finding.line): i.finding.message
             for i in issues_of(result, "metadata.field_type")}
    assert found == {(K + "FOOD_1.jpg", "text", 1): "text is a JSON number, not text",
                     (K + "FOOD_2.jpg", "license", 2): "license is a JSON object, not text"}
    assert status(result, K + "FOOD_1.jpg") == status(result, K + "FOOD_2.jpg") == "rejected"
    # A number is fine where text is expected for other fields: it is the text of the number.
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1, created_at=2021),
                                          row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert outcome(result, K + "FOOD_1.jpg").record.created_at == "2021"
    assert not issues_of(result, "metadata.field_type")


def test_metadata_limit(root, tmp_path):
    base = submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    deep = row("FOOD_2.jpg", 2, extra={"a": [[1]]})  # 4 levels: row, extra, 2 arrays
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1), deep])
    result = run(root, tmp_path / "out", config(limits={"max_json_depth": 3}))
    [limit] = issues_of(result, "metadata.limit")
    assert (limit.finding.line, limit.finding.file) == (2, "korea/metadata.jsonl")
    assert "limits.max_json_depth (3)" in limit.finding.message
    assert_accepted(result, K + "FOOD_1.jpg")
    assert "file.no_metadata" in checks_for(result, None)  # FOOD_2's row was skipped
    # One level more is allowed: the extra column travels to the clean metadata as text.
    result = run(root, tmp_path / "out", config(limits={"max_json_depth": 4}))
    assert not issues_of(result, "metadata.limit")
    assert outcome(result, K + "FOOD_2.jpg").record.extra["extra"] == {"a": [[1]]}


def test_file_not_regular(root, tmp_path):
    base = submission(root, [row("FOOD_1.jpg", 1)])
    os.mkfifo(base / "FOOD_2.jpg")
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    [found] = issues_of(result, "file.not_regular")
    assert found.finding.record == K + "FOOD_2.jpg" and "FIFO" in found.finding.message
    assert status(result, K + "FOOD_2.jpg") == "rejected"
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_changed(root, tmp_path, monkeypatch):
    """A file replaced between the walk's check and the open is refused, not followed."""
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    outside = make_image(tmp_path / "private.jpg", seed=9)
    real_stat = os.stat

    def stat_then_swap(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if path == "FOOD_2.jpg" and kwargs.get("dir_fd") is not None:
            target = root / "korea" / "FOOD_2.jpg"
            target.unlink()
            target.symlink_to(outside)
        return result

    monkeypatch.setattr(ccub.safeio.os, "stat", stat_then_swap)
    result = run(root, tmp_path / "out")
    monkeypatch.undo()
    assert_rejected(result, K + "FOOD_2.jpg", "file.changed")
    assert_accepted(result, K + "FOOD_1.jpg")
    assert not list((tmp_path / "out" / "clean").rglob("FOOD_2*"))


def test_metadata_well_formed(root, tmp_path):
    base = submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    # A BOM, blank lines and a valid submission.toml are all fine.
    text = (base / "metadata.jsonl").read_text("utf-8")
    (base / "metadata.jsonl").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\n\n").encode())
    (base / "submission.toml").write_text('contributor = "c9"\n')
    result = run(root, tmp_path / "out")
    assert not issues_of(result, "metadata.malformed")
    assert_accepted(result, K + "FOOD_1.jpg")
    assert outcome(result, K + "FOOD_1.jpg").record.contributor == "c1"  # the row wins
    assert result.exit_code == 0


def test_metadata_encoding(root, tmp_path):
    base = root / "korea"
    make_image(base / "FOOD_1.jpg", seed=1)
    make_image(base / "FOOD_2.jpg", seed=2)
    make_image(base / "FOOD_3.jpg", seed=3)
    good = json.dumps(row("FOOD_1.jpg", 1, text="김치찌개 한 그릇이 식탁 위에 있다"), ensure_ascii=False)
    bad = json.dumps(row("FOOD_2.jpg", 2, text="caf\u00e9 kimchi bowl")).replace("\\u00e9", "\xe9")
    lines = [good.encode("utf-8"), bad.encode("latin-1"), json.dumps(row("FOOD_3.jpg", 3)).encode()]
    (base / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = run(root, tmp_path / "out")
    [enc] = issues_of(result, "metadata.encoding")
    assert (enc.finding.line, enc.finding.file, enc.severity) == (2, "korea/metadata.jsonl", "error")
    assert "0xe9" in enc.finding.message
    # The undecodable row is skipped, so its image has no metadata; the others are read.
    assert any(i.finding.file == K + "FOOD_2.jpg" for i in issues_of(result, "file.no_metadata"))
    assert_accepted(result, K + "FOOD_1.jpg")
    assert_accepted(result, K + "FOOD_3.jpg")
    rows = read_jsonl(exported(result, K + "FOOD_1.jpg").parent.parent / "metadata.jsonl")
    assert rows[0]["text"] == "김치찌개 한 그릇이 식탁 위에 있다"


def test_metadata_encoding_sidecar(root, tmp_path):
    folder = root / "korea" / "FOOD"
    make_image(folder / "FOOD_1.jpg", seed=1)
    make_image(folder / "FOOD_2.jpg", seed=2)
    (folder / "FOOD_1.txt").write_bytes("a bowl of kimchi at the caf\u00e9".encode("latin-1"))
    (folder / "FOOD_2.txt").write_text("a bowl of kimchi at the caf\u00e9", encoding="utf-8")
    (root / "korea" / "submission.toml").write_text('license = "CC0-1.0"\nconsent = "n/a"\n')
    result = run(root, tmp_path / "out")
    assert "metadata.encoding" in checks_for(result, "korea/FOOD/FOOD_1.jpg")
    assert status(result, "korea/FOOD/FOOD_1.jpg") == "rejected"  # and no caption
    assert "metadata.encoding" not in checks_for(result, "korea/FOOD/FOOD_2.jpg")
    assert_accepted(result, "korea/FOOD/FOOD_2.jpg")


def test_metadata_csv_problems(root, tmp_path):
    base = root / "korea"
    for i in (1, 2, 3, 4):
        make_image(base / f"FOOD_{i}.jpg", seed=i)
    header = "file_name,text,license,creator,consent\n"
    lines = [f"FOOD_1.jpg,{caption_for(1)},CC0-1.0,,n/a\n",
             f"FOOD_2.jpg,{caption_for(2)},CC0-1.0,,n/a,extra field\n",
             f"FOOD_3.jpg,caf\u00e9 {caption_for(3)},CC0-1.0,,n/a\n",
             f'FOOD_4.jpg,"{caption_for(4)}, with a comma",CC0-1.0,,n/a\n']
    data = header.encode() + lines[0].encode() + lines[1].encode() + lines[2].encode("latin-1") + lines[3].encode()
    (base / "metadata.csv").write_bytes(data)
    result = run(root, tmp_path / "out")
    assert [i.finding.line for i in issues_of(result, "metadata.malformed")] == [3]
    assert [i.finding.line for i in issues_of(result, "metadata.encoding")] == [4]
    assert_accepted(result, K + "FOOD_1.jpg")
    assert_accepted(result, K + "FOOD_4.jpg")
    assert outcome(result, K + "FOOD_4.jpg").record.caption.endswith(", with a comma")


def test_metadata_duplicate_row(root, tmp_path):
    base = submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2),
                                          row("./FOOD_1.jpg", 3, text="a second caption for it")])
    result = run(root, tmp_path / "out")
    [dup] = issues_of(result, "metadata.duplicate_row")
    assert (dup.finding.line, dup.severity) == (3, "error")
    assert "line 1" in dup.finding.message
    assert [o.record.key for o in result.outcomes] == [K + "FOOD_1.jpg", K + "FOOD_2.jpg"]
    assert outcome(result, K + "FOOD_1.jpg").record.caption == caption_for(1)  # first row kept
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_missing(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    base = root / "korea"
    write_jsonl(base / "metadata.jsonl", [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2), row("FOOD_9.jpg", 9)])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_9.jpg", "file.missing")
    [missing] = issues_of(result, "file.missing")
    assert missing.finding.line == 3
    assert "file.missing" not in checks_for(result, K + "FOOD_1.jpg")
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_no_metadata(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    make_image(root / "korea" / "FOOD_5.jpg", seed=5)
    make_image(root / "korea" / "extra" / "FOOD_6.png", seed=6)
    # Images in a folder without any metadata file are read as a folder tree instead.
    make_image(root / "nigeria" / "FOOD" / "FOOD_7.jpg", seed=7)
    result = run(root, tmp_path / "out")
    found = issues_of(result, "file.no_metadata")
    assert sorted(i.finding.file for i in found) == ["korea/FOOD_5.jpg", "korea/extra/FOOD_6.png"]
    assert all(i.finding.record is None and i.severity == "error" for i in found)
    assert [o.record.key for o in result.outcomes if o.record.key.startswith(K)] == [K + "FOOD_1.jpg"]
    assert_accepted(result, K + "FOOD_1.jpg")
    assert "caption.missing" in checks_for(result, "nigeria/FOOD/FOOD_7.jpg")
    assert result.exit_code == 1


def test_file_outside_root(root, tmp_path):
    make_image(tmp_path / "outside.jpg", seed=8)
    make_image(root / "FOOD_4.jpg", seed=4)
    rows = [row("FOOD_1.jpg", 1), row("../../outside.jpg", 2), row("/etc/passwd", 3),
            row("C:\\Users\\kim\\FOOD_3.jpg", 4), row("../FOOD_4.jpg", 5, culture="korea")]
    submission(root, rows[:1])
    write_jsonl(root / "korea" / "metadata.jsonl", rows)
    result = run(root, tmp_path / "out")
    outside = issues_of(result, "file.outside_root")
    assert sorted(i.finding.line for i in outside) == [2, 3, 4]
    for found in outside:
        assert_rejected(result, found.finding.record, "file.outside_root")
        assert outcome(result, found.finding.record).record.image is None
    # '../FOOD_4.jpg' from korea/ stays inside the submissions folder.
    assert "file.outside_root" not in checks_for(result, "FOOD_4.jpg")
    assert_accepted(result, "FOOD_4.jpg")
    assert_accepted(result, K + "FOOD_1.jpg")
    assert not any("outside.jpg" in (p or "") or "passwd" in (p or "") for p in result.facts)


def test_file_outside_root_symlink(root, tmp_path):
    make_image(tmp_path / "outside.jpg", seed=8)
    submission(root, [row("FOOD_1.jpg", 1)])
    (root / "korea" / "FOOD_2.jpg").symlink_to(tmp_path / "outside.jpg")
    (root / "korea" / "FOOD_3.jpg").symlink_to(root / "korea" / "FOOD_1.jpg")  # inside: fine
    write_jsonl(root / "korea" / "metadata.jsonl", [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2),
                                                    row("FOOD_3.jpg", 3)])
    # A symlink in a folder tree (no metadata file) is caught too.
    (root / "nigeria" / "FOOD").mkdir(parents=True)
    (root / "nigeria" / "FOOD" / "FOOD_4.jpg").symlink_to(tmp_path / "outside.jpg")
    result = run(root, tmp_path / "out")
    # A row whose path is unusable is keyed by where it was read.
    assert_rejected(result, "korea/metadata.jsonl:2", "file.outside_root")
    assert "symlink" in issues_of(result, "file.outside_root")[0].finding.message
    assert_rejected(result, "nigeria/FOOD/FOOD_4.jpg", "file.outside_root")
    assert not any(key.endswith("FOOD_2.jpg") or key.endswith("FOOD_4.jpg") for key in result.facts)
    assert "file.outside_root" not in checks_for(result, K + "FOOD_3.jpg")
    # ... but it has the same bytes as FOOD_1.jpg: one of the two is kept.
    assert [i.finding.record for i in issues_of(result, "duplicate.same_file")] in (
        [K + "FOOD_1.jpg"], [K + "FOOD_3.jpg"])


def test_file_not_downloaded(root, tmp_path):
    make_image(root / "FOOD_2.jpg", seed=2)
    (root / "manifest.csv").write_text(
        "path,url,caption,country_code,category_code,license,creator,consent\n"
        ",https://example.org/a.jpg,a bowl of kimchi stew on a table,KR,FOOD,CC0-1.0,,n/a\n"
        "FOOD_2.jpg,https://example.org/b.jpg,a plate of rice cakes with honey,KR,FOOD,CC0-1.0,,n/a\n",
        encoding="utf-8")
    result = run(root, tmp_path / "out")
    assert_rejected(result, "manifest.csv:2", "file.not_downloaded")
    assert "file.not_downloaded" not in checks_for(result, "FOOD_2.jpg")
    assert_accepted(result, "FOOD_2.jpg")
    assert outcome(result, "FOOD_2.jpg").record.culture == "korea"


def test_file_unreadable(root, tmp_path, monkeypatch):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    real = os.open

    def open_(path, flags, *args, **kwargs):
        if os.fspath(path) == "FOOD_2.jpg":  # opened relative to its folder's descriptor
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(ccub.safeio.os, "open", open_)
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_2.jpg", "file.unreadable")
    assert "Permission denied" in issues_of(result, "file.unreadable")[0].finding.message
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_empty(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    (root / "korea" / "FOOD_2.jpg").write_bytes(b"")
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_2.jpg", "file.empty")
    assert checks_for(result, K + "FOOD_2.jpg") & {"file.format", "file.tiny"} == set()
    assert "file.empty" not in checks_for(result, K + "FOOD_1.jpg")


def test_file_tiny(root, tmp_path):
    image = root / "korea" / "FOOD_1.png"
    image.parent.mkdir()
    Image.new("RGB", (8, 8), (200, 40, 30)).save(image)
    size = image.stat().st_size
    assert size < 500
    submission(root, [row("FOOD_1.png", 1)])
    cfg = config(limits={"min_file_bytes": size + 1})
    assert_rejected(run(root, tmp_path / "out", cfg), K + "FOOD_1.png", "file.tiny")
    cfg = config(limits={"min_file_bytes": size})
    assert "file.tiny" not in checks_for(run(root, tmp_path / "out", cfg), K + "FOOD_1.png")


def test_file_too_large(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    size = (root / "korea" / "FOOD_1.jpg").stat().st_size
    result = run(root, tmp_path / "out", config(limits={"max_file_mb": (size - 1) / 1e6}))
    assert_rejected(result, K + "FOOD_1.jpg", "file.too_large")
    assert result.facts[K + "FOOD_1.jpg"].sha256 is None  # rejected before reading
    result = run(root, tmp_path / "out", config(limits={"max_file_mb": (size + 1) / 1e6}))
    assert "file.too_large" not in checks_for(result, K + "FOOD_1.jpg")
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_too_many_pixels(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    # Over Pillow's own bomb limit (2 x 89 MP), and over ccub's 50 MP cap only (144 MP is
    # under Pillow's limit).
    (root / "korea" / "FOOD_2.png").write_bytes(png_header_only(20000, 20000))
    (root / "korea" / "FOOD_3.png").write_bytes(png_header_only(12000, 12000))
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row("FOOD_1.jpg", 1), row("FOOD_2.png", 2), row("FOOD_3.png", 3)])
    start = time.perf_counter()
    result = run(root, tmp_path / "out", config(limits={"min_file_bytes": 0}))
    assert time.perf_counter() - start < 5
    for key in (K + "FOOD_2.png", K + "FOOD_3.png"):
        assert_rejected(result, key, "file.too_many_pixels")
        facts = result.facts[key]
        assert facts.pixel_key is None and facts.mean == 0.0  # never decoded
    assert "50 MP cap" in [i for i in issues_of(result, "file.too_many_pixels")
                            if i.finding.record == K + "FOOD_3.png"][0].finding.message
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_too_many_pixels_configured(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])  # 600 x 520 = 0.312 MP
    result = run(root, tmp_path / "out", config(limits={"max_megapixels": 0.3}))
    assert_rejected(result, K + "FOOD_1.jpg", "file.too_many_pixels")
    result = run(root, tmp_path / "out", config(limits={"max_megapixels": 0.312}))
    assert_accepted(result, K + "FOOD_1.jpg")


def test_file_format(root, tmp_path):
    (root / "korea").mkdir()
    (root / "korea" / "FOOD_2.jpg").write_text("this is not an image, just some text\n" * 50)
    (root / "korea" / "FOOD_3.jpg").write_text("<!DOCTYPE html><html><body>Not found</body></html>" * 30)
    photo(seed=4).save(root / "korea" / "FOOD_4.gif")
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2), row("FOOD_3.jpg", 3), row("FOOD_4.gif", 4)])
    result = run(root, tmp_path / "out")
    for key, what in ((K + "FOOD_2.jpg", "not an image"), (K + "FOOD_3.jpg", "HTML"), (K + "FOOD_4.gif", "GIF")):
        assert_rejected(result, key, "file.format")
        assert what in [i for i in issues_of(result, "file.format") if i.finding.record == key][0].finding.message
    assert "file.format" not in checks_for(result, K + "FOOD_1.jpg")


def test_file_extension(root, tmp_path):
    make_image(root / "korea" / "FOOD_1.jpg", format="PNG", seed=1)
    make_image(root / "korea" / "FOOD_2.png", seed=2)
    make_image(root / "korea" / "FOOD_3.jpeg", seed=3)
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.png", 2), row("FOOD_3.jpeg", 3)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "file.extension")
    [ext] = issues_of(result, "file.extension")
    assert ext.severity == "warning" and ext.finding.fixed == "exported with extension .png"
    path = exported(result, K + "FOOD_1.jpg")
    assert path.suffix == ".png"
    with Image.open(path) as im:
        assert im.format == "PNG"
    for key in (K + "FOOD_2.png", K + "FOOD_3.jpeg"):
        assert "file.extension" not in checks_for(result, key)
    assert exported(result, K + "FOOD_3.jpeg").suffix == ".jpg"


def test_file_undecodable(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    (root / "korea" / "FOOD_2.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 10)
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_2.jpg", "file.undecodable")
    assert "file.undecodable" not in checks_for(result, K + "FOOD_1.jpg")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_file_truncated(root, tmp_path, suffix):
    names = [f"FOOD_1{suffix}", f"FOOD_2{suffix}"]
    submission(root, [row(names[0], 1), row(names[1], 2)])
    data = (root / "korea" / names[1]).read_bytes()
    (root / "korea" / names[1]).write_bytes(data[: len(data) // 2])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + names[1], "file.truncated")
    assert "file.truncated" not in checks_for(result, K + names[0])
    assert_accepted(result, K + names[0])


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_file_multi_frame(root, tmp_path, suffix):
    base = root / "korea"
    base.mkdir()
    photo(seed=1).save(base / f"FOOD_1{suffix}", save_all=True, append_images=[photo(seed=2)])
    photo(seed=3).save(base / f"FOOD_2{suffix}", save_all=True)  # one frame
    submission(root, [row(f"FOOD_1{suffix}", 1), row(f"FOOD_2{suffix}", 2)])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + f"FOOD_1{suffix}", "file.multi_frame")
    assert "file.multi_frame" not in checks_for(result, K + f"FOOD_2{suffix}")
    assert_accepted(result, K + f"FOOD_2{suffix}")


def test_negatives_invalid(root, tmp_path):
    base = root / "korea"
    make_image(base / "negatives" / "n1.jpg", seed=11)
    (base / "negatives" / "n2.jpg").write_text("not an image at all\n" * 100)
    rows = [row("FOOD_1.jpg", 1, negative_imgpath=["negatives/n1.jpg"]),
            row("FOOD_2.jpg", 2, negative_imgpath=["negatives/missing.jpg", "negatives/n1.jpg"]),
            row("FOOD_3.jpg", 3, negative_imgpath="negatives/n2.jpg"),
            row("FOOD_4.jpg", 4, negative_imgpath=["../../etc/passwd"])]
    submission(root, rows)
    result = run(root, tmp_path / "out")
    for key in (K + "FOOD_2.jpg", K + "FOOD_3.jpg", K + "FOOD_4.jpg"):
        assert_accepted(result, key, "negatives.invalid")
    assert {i.severity for i in issues_of(result, "negatives.invalid")} == {"warning"}
    assert "negatives.invalid" not in checks_for(result, K + "FOOD_1.jpg")
    meta = exported(result, K + "FOOD_1.jpg").parent.parent / "metadata.jsonl"
    negatives = {r["file_name"]: r["negative_imgpath"] for r in read_jsonl(meta)}
    assert negatives["images/FOOD_1.jpg"] == ["negatives/n1.jpg"]
    assert negatives["images/FOOD_2.jpg"] == ["negatives/n1.jpg"]
    assert negatives["images/FOOD_3.jpg"] == [] and negatives["images/FOOD_4.jpg"] == []
    assert (tmp_path / "out" / "clean" / "korea" / "negatives" / "n1.jpg").is_file()
    assert not issues_of(result, "file.no_metadata")  # negatives are not orphans


# --- geometry and colour -------------------------------------------------------

def test_geometry_short_side(root, tmp_path):
    sizes = {"FOOD_1.jpg": (255, 400), "FOOD_2.jpg": (400, 256), "FOOD_3.jpg": (511, 600),
             "FOOD_4.jpg": (600, 512)}
    for name, size in sizes.items():
        make_image(root / "korea" / name, size=size, seed=len(name) + size[0])
    submission(root, [row(name, i) for i, name in enumerate(sizes)])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_1.jpg", "geometry.too_small")
    assert "geometry.small" not in checks_for(result, K + "FOOD_1.jpg")
    assert "geometry.too_small" not in checks_for(result, K + "FOOD_2.jpg")
    assert_accepted(result, K + "FOOD_2.jpg", "geometry.small")
    assert_accepted(result, K + "FOOD_3.jpg", "geometry.small")
    assert checks_for(result, K + "FOOD_4.jpg") & {"geometry.small", "geometry.too_small"} == set()


def test_geometry_aspect(root, tmp_path):
    sizes = {"FOOD_1.jpg": (2100, 512), "FOOD_2.jpg": (512, 2100), "FOOD_3.jpg": (1996, 512),
             "FOOD_4.jpg": (1536, 512)}
    for i, (name, size) in enumerate(sizes.items()):
        make_image(root / "korea" / name, size=size, seed=20 + i)
    submission(root, [row(name, i) for i, name in enumerate(sizes)])
    result = run(root, tmp_path / "out")
    for key in (K + "FOOD_1.jpg", K + "FOOD_2.jpg"):  # 4.1
        assert_rejected(result, key, "geometry.aspect_extreme")
        assert "geometry.aspect" not in checks_for(result, key)
    assert_accepted(result, K + "FOOD_3.jpg", "geometry.aspect")  # 3.9
    assert "geometry.aspect_extreme" not in checks_for(result, K + "FOOD_3.jpg")
    assert checks_for(result, K + "FOOD_4.jpg") & {"geometry.aspect", "geometry.aspect_extreme"} == set()


def test_image_orientation(root, tmp_path):
    make_image(root / "korea" / "FOOD_1.jpg", size=(600, 520), seed=1, exif=exif(T0x0112=6))
    make_image(root / "korea" / "FOOD_2.jpg", size=(600, 520), seed=2, exif=exif(T0x0112=1))
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "image.orientation")
    [found] = issues_of(result, "image.orientation")
    assert found.severity == "info" and "6" in found.finding.message
    facts = result.facts[K + "FOOD_1.jpg"]
    assert (facts.width, facts.height) == (520, 600)
    with Image.open(exported(result, K + "FOOD_1.jpg")) as im:
        assert im.size == (520, 600)
        assert not im.getexif()  # orientation must not be applied twice
    with Image.open(root / "korea" / "FOOD_1.jpg") as original:
        expected = np.asarray(original.convert("RGB").transpose(Image.Transpose.ROTATE_270), dtype=np.int16)
    with Image.open(exported(result, K + "FOOD_1.jpg")) as im:
        assert np.abs(np.asarray(im.convert("RGB"), dtype=np.int16) - expected).mean() < 3
    assert "image.orientation" not in checks_for(result, K + "FOOD_2.jpg")
    with Image.open(exported(result, K + "FOOD_2.jpg")) as im:
        assert im.size == (600, 520)


def test_image_colour_icc(root, tmp_path):
    base = photo(seed=1)
    make_image(root / "korea" / "FOOD_1.jpg", image=base, icc_profile=rgb_icc_profile("Display P3"))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    make_image(root / "korea" / "FOOD_2.jpg", seed=2, icc_profile=srgb)
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "image.colour")
    [found] = issues_of(result, "image.colour")
    assert "converted from ICC profile 'Display P3' to sRGB" in found.finding.message
    with Image.open(root / "korea" / "FOOD_1.jpg") as original:
        stored = np.asarray(original.convert("RGB"), dtype=np.int16)
    with Image.open(exported(result, K + "FOOD_1.jpg")) as im:
        assert "icc_profile" not in im.info
        assert np.abs(np.asarray(im, dtype=np.int16) - stored).mean() > 3  # colours converted
    assert "image.colour" not in checks_for(result, K + "FOOD_2.jpg")
    assert_no_metadata(exported(result, K + "FOOD_2.jpg"))


def test_image_container_mpo(root, tmp_path):
    base = root / "korea"
    base.mkdir(parents=True)
    primary, second = photo(seed=1), photo(seed=2)
    primary.save(base / "FOOD_1.jpg", "MPO", save_all=True, append_images=[second], quality=90)
    make_image(base / "FOOD_2.jpg", seed=2)
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "image.container")
    assert "image.container" not in checks_for(result, K + "FOOD_2.jpg")
    with Image.open(exported(result, K + "FOOD_1.jpg")) as im:
        assert im.format == "JPEG" and getattr(im, "n_frames", 1) == 1
    with Image.open(base / "FOOD_1.jpg") as original:
        assert original.format == "MPO"
        primary_pixels = np.asarray(original.convert("RGB"))
    with Image.open(exported(result, K + "FOOD_1.jpg")) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), primary_pixels)


def test_image_colour_modes(root, tmp_path):
    base = root / "korea"
    transparent = photo(seed=1).convert("RGBA")
    transparent.putalpha(Image.linear_gradient("L").resize(transparent.size))
    make_image(base / "FOOD_1.png", image=transparent, mode="RGBA")
    make_image(base / "FOOD_2.jpg", mode="CMYK", seed=2)
    make_image(base / "FOOD_3.png", mode="P", seed=3)
    make_image(base / "FOOD_4.png", mode="RGBA", seed=4)  # fully opaque alpha
    make_image(base / "FOOD_5.png", seed=5)
    submission(root, [row(f"FOOD_{i}.png" if i != 2 else "FOOD_2.jpg", i) for i in range(1, 6)])
    result = run(root, tmp_path / "out")
    for key, what in ((K + "FOOD_1.png", "composited on white"), (K + "FOOD_2.jpg", "CMYK"),
                      (K + "FOOD_3.png", "mode P")):
        assert_accepted(result, key, "image.colour")
        assert what in [i for i in issues_of(result, "image.colour") if i.finding.record == key][0].finding.message
        with Image.open(exported(result, key)) as im:
            assert im.mode == "RGB"
    # Alpha at 0 in the top row became white.
    with Image.open(exported(result, K + "FOOD_1.png")) as im:
        assert im.getpixel((300, 0)) == (255, 255, 255)
    for key in (K + "FOOD_4.png", K + "FOOD_5.png"):
        assert "image.colour" not in checks_for(result, key)
    with Image.open(exported(result, K + "FOOD_4.png")) as im:
        assert im.mode == "RGB"


def test_image_colour_sixteen_bit_png(root, tmp_path):
    gray = np.asarray(photo(seed=1).convert("L"), dtype=np.uint16)
    (root / "korea").mkdir()
    Image.fromarray(gray * 257).save(root / "korea" / "FOOD_1.png")  # 16-bit grayscale
    submission(root, [row("FOOD_1.png", 1)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.png", "image.colour", "image.grayscale")
    assert "quality.overexposed" not in checks_for(result, K + "FOOD_1.png")
    with Image.open(exported(result, K + "FOOD_1.png")) as im:
        assert im.mode == "RGB"
        assert np.abs(np.asarray(im.convert("L"), dtype=np.int16) - gray).max() <= 1


def test_image_colour_icc_with_alpha(root, tmp_path):
    rgba = photo(seed=1).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    make_image(root / "korea" / "FOOD_1.png", image=rgba, mode="RGBA", icc_profile=rgb_icc_profile())
    submission(root, [row("FOOD_1.png", 1)])
    result = run(root, tmp_path / "out")
    messages = [i.finding.message for i in issues_of(result, "image.colour")]
    assert any("Display P3" in m for m in messages) and any("white" in m for m in messages)
    with Image.open(exported(result, K + "FOOD_1.png")) as im:
        assert im.mode == "RGB" and im.getpixel((300, 0)) == (255, 255, 255)
    assert_no_metadata(exported(result, K + "FOOD_1.png"))


def test_lossless_webp_with_icc_stays_lossless(root, tmp_path):
    make_image(root / "korea" / "FOOD_1.webp", seed=1, lossless=True, icc_profile=rgb_icc_profile())
    submission(root, [row("FOOD_1.webp", 1)])
    result = run(root, tmp_path / "out")
    assert "image.colour" in checks_for(result, K + "FOOD_1.webp")
    assert b"VP8L" in exported(result, K + "FOOD_1.webp").read_bytes()


def test_image_grayscale(root, tmp_path):
    for i, offset in enumerate((0, 2, 5), start=1):
        # Distinct photos: tints of one photo would be near-duplicates of each other.
        tinted = np.asarray(photo(seed=i).convert("L").convert("RGB"), dtype=np.int16)
        tinted[..., 0] = np.clip(tinted[..., 0] + offset, 0, 255)
        make_image(root / "korea" / f"FOOD_{i}.png", image=Image.fromarray(tinted.astype(np.uint8)))
    submission(root, [row(f"FOOD_{i}.png", i) for i in (1, 2, 3)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.png", "image.grayscale")
    assert_accepted(result, K + "FOOD_2.png", "image.grayscale")  # mean channel delta < 3
    assert "image.grayscale" not in checks_for(result, K + "FOOD_3.png")
    assert "image.colour" not in checks_for(result, K + "FOOD_1.png")  # RGB stays RGB


# --- quality -------------------------------------------------------------------

def scaled(im: Image.Image, factor: float, add: float = 0) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(im, dtype=np.float32) * factor + add, 0, 255).astype(np.uint8))


def test_quality_dark(root, tmp_path):
    make_image(root / "korea" / "FOOD_1.png", image=scaled(photo(seed=1), 0.08))  # all pixels ~10
    make_image(root / "korea" / "FOOD_2.png", image=scaled(photo(seed=2), 0.28))
    submission(root, [row("FOOD_1.png", 1), row("FOOD_2.png", 2)])
    result = run(root, tmp_path / "out")
    assert result.facts[K + "FOOD_1.png"].mean < 0.12 < result.facts[K + "FOOD_2.png"].mean
    assert_accepted(result, K + "FOOD_1.png", "quality.dark")
    assert "quality.dark" not in checks_for(result, K + "FOOD_2.png")


def test_quality_overexposed(root, tmp_path):
    for i, fraction in ((1, 0.6), (2, 0.4)):
        pixels = np.asarray(photo(seed=i)).copy()
        pixels[: int(pixels.shape[0] * fraction)] = 255
        make_image(root / "korea" / f"FOOD_{i}.png", image=Image.fromarray(pixels))
    submission(root, [row("FOOD_1.png", 1), row("FOOD_2.png", 2)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.png", "quality.overexposed")
    assert "quality.overexposed" not in checks_for(result, K + "FOOD_2.png")


def test_quality_blurry_and_low_information(root, tmp_path):
    base = root / "korea"
    make_image(base / "FOOD_1.jpg", image=photo(seed=1).filter(ImageFilter.GaussianBlur(8)))
    make_image(base / "FOOD_2.jpg", image=photo(seed=2))
    make_image(base / "FOOD_3.png", image=Image.new("RGB", (600, 520), (200, 120, 60)))
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2), row("FOOD_3.png", 3)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "quality.blurry")
    assert "quality.low_information" not in checks_for(result, K + "FOOD_1.jpg")
    assert checks_for(result, K + "FOOD_2.jpg") & {"quality.blurry", "quality.low_information"} == set()
    # A uniform image is low-information; calling it blurry as well would be noise.
    assert_accepted(result, K + "FOOD_3.png", "quality.low_information")
    assert "quality.blurry" not in checks_for(result, K + "FOOD_3.png")
    assert "image.grayscale" not in checks_for(result, K + "FOOD_3.png")
    assert all(i.severity == "warning" for i in issues_of(result, "quality.blurry"))


# --- privacy -------------------------------------------------------------------

def test_privacy_exif(root, tmp_path):
    base = root / "korea"
    cases = {
        "FOOD_1.jpg": exif(gps={1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 40.0)}),
        "FOOD_2.jpg": exif(sub={0xA431: "SN-0012345"}),
        "FOOD_3.jpg": exif(T0x013B="Kim Minji"),
        # Close cases: camera make, lens make and software are not personal.
        "FOOD_4.jpg": exif(T0x010F="Canon", T0x0131="Camera app", sub={0xA433: "LensCo", 0x829A: (1, 60)}),
    }
    for i, (name, data) in enumerate(cases.items(), start=1):
        make_image(base / name, seed=i, exif=data)
    submission(root, [row(name, i) for i, name in enumerate(cases, start=1)])
    result = run(root, tmp_path / "out")
    expected = {"FOOD_1.jpg": "privacy.location", "FOOD_2.jpg": "privacy.device_serial",
                "FOOD_3.jpg": "privacy.owner_name"}
    privacy = {"privacy.location", "privacy.device_serial", "privacy.owner_name"}
    for name, check in expected.items():
        assert checks_for(result, K + name) & privacy == {check}
        assert_accepted(result, K + name)
        [found] = [i for i in issues_of(result, check) if i.finding.record == K + name]
        assert found.severity == "warning" and found.finding.fixed
        assert "Kim" not in found.finding.message and "SN-" not in found.finding.message
    assert checks_for(result, K + "FOOD_4.jpg") & privacy == set()
    for name in cases:
        path = exported(result, K + name)
        assert_no_metadata(path)
        assert b"Kim Minji" not in path.read_bytes() and b"SN-0012345" not in path.read_bytes()


def test_privacy_png_text(root, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Kim Minji")
    make_image(root / "korea" / "FOOD_1.png", seed=1, pnginfo=info)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Camera app")
    make_image(root / "korea" / "FOOD_2.png", seed=2, pnginfo=info)
    submission(root, [row("FOOD_1.png", 1), row("FOOD_2.png", 2)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.png", "privacy.owner_name")
    assert "privacy.owner_name" not in checks_for(result, K + "FOOD_2.png")
    for name in ("FOOD_1.png", "FOOD_2.png"):
        assert_no_metadata(exported(result, K + name))


def test_privacy_metadata_left(root, tmp_path, monkeypatch):
    submission(root, [row("FOOD_1.jpg", 1)])
    result = run(root, tmp_path / "out")
    assert "privacy.metadata_left" not in checks_for(result, K + "FOOD_1.jpg")
    # The safeguard cannot be reached with a real file: make the stripper "miss" the EXIF it
    # should have removed; the independent verifier refuses the copy.
    real = analyze.rewrite

    def keeps_exif(data, fmt):
        return dataclasses.replace(real(data, fmt), data=data)

    (root / "korea" / "FOOD_1.jpg").write_bytes(make_image(
        tmp_path / "src.jpg", seed=1, exif=exif(T0x013B="Kim Minji")).read_bytes())
    monkeypatch.setattr(analyze, "rewrite", keeps_exif)
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_1.jpg", "privacy.metadata_left")
    assert "marker 0xFFE1" in issues_of(result, "privacy.metadata_left")[0].finding.message
    assert not list((tmp_path / "out" / "clean").rglob("*.jpg"))


def test_verify_clean_raises_on_exif(tmp_path):
    dirty = make_image(tmp_path / "dirty.jpg", exif=exif(T0x013B="Kim Minji"))
    with pytest.raises(ExportError, match="metadata left"):
        verify_clean(dirty)
    clean = tmp_path / "clean.jpg"
    clean.write_bytes(strip_jpeg(dirty.read_bytes()))
    verify_clean(clean)


def test_privacy_metadata_removed(root, tmp_path):
    base = root / "korea"
    make_image(base / "FOOD_1.jpg", seed=1, exif=exif(T0x010F="Canon"), comment=b"holiday")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "GPS 37.566500, 126.978000")
    info.add(b"prVt", b"vendor data")
    make_image(base / "FOOD_2.png", seed=2, pnginfo=info)
    make_image(base / "FOOD_3.jpg", seed=3)  # close case: nothing to remove, nothing said
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.png", 2), row("FOOD_3.jpg", 3)])
    result = run(root, tmp_path / "out")
    removed = {i.finding.record: i for i in issues_of(result, "privacy.metadata_removed")}
    assert set(removed) == {K + "FOOD_1.jpg", K + "FOOD_2.png"}
    assert removed[K + "FOOD_1.jpg"].finding.message == "APP1 Exif, COM comment"
    assert removed[K + "FOOD_2.png"].finding.message == "tEXt Comment, prVt"
    assert all(i.severity == "info" and i.finding.fixed for i in removed.values())
    [place] = [i.finding.message for i in issues_of(result, "privacy.location")
               if i.finding.record == K + "FOOD_2.png"]
    assert place == "found in PNG text (Comment)"  # where, never what
    assert "privacy.metadata_removed" not in checks_for(result, K + "FOOD_3.jpg")
    assert result.exit_code == 0


def test_privacy_caption(root, tmp_path):
    captions = {
        "FOOD_1.jpg": "kimchi stew, recipe from kim.minji+food@example.co.kr",
        "FOOD_2.jpg": "kimchi stew from the shop, call 010-1234-5678 to order",
        "FOOD_3.jpg": "kimchi stew, recipe at https://example.com/kimchi?id=3",
        "FOOD_4.jpg": "kimchi stew cooked by @kimchi_lover at home",
        # Close cases: a year range, a price, a bare domain and an '@' inside a word.
        "FOOD_5.jpg": "kimchi stew served in Seoul 1990-2020 for 12,000 won",
        "FOOD_6.jpg": "kimchi stew from the Seoul@Home stall, see example.com",
        "FOOD_7.jpg": "a plate of 24 dumplings for 8500 won",
        "FOOD_8.jpg": "kimchi stew photographed 2023-05-01 12:30 at the market",
    }
    submission(root, [row(name, i, text=text) for i, (name, text) in enumerate(captions.items())])
    result = run(root, tmp_path / "out")
    expected = {"FOOD_1.jpg": ("privacy.caption_email", "review"),
                "FOOD_2.jpg": ("privacy.caption_phone", "review"),
                "FOOD_3.jpg": ("privacy.caption_url", "accepted"),
                "FOOD_4.jpg": ("privacy.caption_handle", "accepted")}
    caption_checks = {"privacy.caption_email", "privacy.caption_phone", "privacy.caption_url",
                      "privacy.caption_handle"}
    for name, (check, state) in expected.items():
        assert checks_for(result, K + name) & caption_checks == {check}, name
        assert status(result, K + name) == state
    for name in ("FOOD_5.jpg", "FOOD_6.jpg", "FOOD_7.jpg", "FOOD_8.jpg"):
        assert checks_for(result, K + name) & caption_checks == set(), name
    # Reports must not spread the data they warn about.
    messages = " ".join(i.finding.message for i in result.issues)
    assert "example.co.kr" not in messages and "1234-5678" not in messages
    # Review items are held back unless asked for.
    assert outcome(result, K + "FOOD_1.jpg").output is None
    result = run(root, tmp_path / "out", include_review=True)
    assert status(result, K + "FOOD_1.jpg") == "review"
    assert exported(result, K + "FOOD_1.jpg").is_file()


def test_privacy_caption_price_range(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text="kimchi jars sold for 15000-20000 won each")])
    result = run(root, tmp_path / "out")
    assert "privacy.caption_phone" not in checks_for(result, K + "FOOD_1.jpg")


# --- captions ------------------------------------------------------------------





def test_held_records_are_exported_only_with_include_review(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, text="kimchi stew"), row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert "caption.too_short" in checks_for(result, K + "FOOD_1.jpg")
    assert status(result, K + "FOOD_1.jpg") == "review" and outcome(result, K + "FOOD_1.jpg").output is None
    assert result.exit_code == 1
    result = run(root, tmp_path / "out", include_review=True)
    assert status(result, K + "FOOD_1.jpg") == "review"
    assert exported(result, K + "FOOD_1.jpg").is_file()


def test_caption_too_long_large(root, tmp_path):
    # Just under limits.max_field_chars (a longer value is a metadata.limit finding instead).
    huge = "a woman selling kimchi, call 010-1234-5678 " * 1_500
    assert 60_000 < len(huge) < 65_536
    submission(root, [row("FOOD_1.jpg", 1, text=huge), row("FOOD_2.jpg", 2, text=huge)])
    start = time.perf_counter()
    result = run(root, tmp_path / "out")
    assert time.perf_counter() - start < 10
    assert_rejected(result, K + "FOOD_1.jpg", "caption.too_long")
    # Nothing else is computed on the oversized text.
    assert not checks_for(result, K + "FOOD_1.jpg") & {"privacy.caption_phone", "caption.repeated",
                                                       "caption.clip_tokens"}




def test_caption_unicode(root, tmp_path):
    nfd = unicodedata.normalize("NFD", "한복을 입은 인형과 café 간판")
    assert nfd != unicodedata.normalize("NFC", nfd)
    dirty = nfd + "\u0007\u200b  \n with\ttabs "
    clean = "한복을 입은 인형과 café 간판"
    submission(root, [row("FOOD_1.jpg", 1, text=dirty), row("FOOD_2.jpg", 2, text=clean)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "caption.unicode")
    assert "caption.unicode" not in checks_for(result, K + "FOOD_2.jpg")
    rows = {r["file_name"]: r["text"] for r in read_jsonl(tmp_path / "out/clean/korea/train/metadata.jsonl")}
    text = rows["images/FOOD_1.jpg"]
    assert text == unicodedata.normalize("NFC", text) == clean + " with tabs"
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)
    assert rows["images/FOOD_2.jpg"] == clean


def test_caption_unicode_close_cases(root, tmp_path):
    # ZWJ spells "Sri" in Sinhala; ZWNJ is part of Persian and Hindi spelling: both are kept.
    sinhala = ("\u0dc1\u0dca\u200d\u0dbb\u0dd3 \u0dbd\u0d82\u0d9a\u0dcf\u0dc0\u0dda "
               "\u0d9a\u0dd2\u0dbb\u0dd2\u0db6\u0dad\u0dca")
    persian = "\u0646\u0627\u0646\u200c\u0647\u0627\u06cc \u0633\u0646\u062a\u06cc \u0627\u06cc\u0631\u0627\u0646\u06cc"
    submission(root, [row("FOOD_1.jpg", 1, text=sinhala), row("FOOD_2.jpg", 2, text=persian)], folder="sri-lanka")
    # A caption file's final newline is not a normalisation worth a warning.
    folder = root / "korea" / "FOOD"
    make_image(folder / "FOOD_3.jpg", seed=3)
    (folder / "FOOD_3.jpg.txt").write_text("a bowl of kimchi stew on a table\n", encoding="utf-8")
    (root / "korea" / "submission.toml").write_text('license = "CC0-1.0"\nconsent = "n/a"\n')
    result = run(root, tmp_path / "out")
    for key in ("sri-lanka/FOOD_1.jpg", "sri-lanka/FOOD_2.jpg", "korea/FOOD/FOOD_3.jpg"):
        assert "caption.unicode" not in checks_for(result, key), key
        assert_accepted(result, key)
    rows = {r["file_name"]: r["text"] for r in read_jsonl(tmp_path / "out/clean/sri-lanka/train/metadata.jsonl")}
    assert rows == {"images/FOOD_1.jpg": sinhala, "images/FOOD_2.jpg": persian}
    assert outcome(result, "korea/FOOD/FOOD_3.jpg").output










# --- labels --------------------------------------------------------------------

def test_label_culture_missing(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, culture="KOR")], folder="misc")
    result = run(root, tmp_path / "out")
    assert_rejected(result, "misc/FOOD_1.jpg", "label.culture_missing")
    assert "label.culture_missing" not in checks_for(result, "misc/FOOD_2.jpg")
    assert outcome(result, "misc/FOOD_2.jpg").record.culture == "korea"
    # A flag fills it in.
    result = run(root, tmp_path / "out", flags={"culture": "nigeria"})
    assert_accepted(result, "misc/FOOD_1.jpg")
    assert outcome(result, "misc/FOOD_1.jpg").record.culture == "nigeria"


def test_label_culture_unknown(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, culture="Atlantis"), row("FOOD_2.jpg", 2, culture="South Korea"),
                      row("FOOD_3.jpg", 3, culture="KR")], folder="misc")
    result = run(root, tmp_path / "out")
    assert_rejected(result, "misc/FOOD_1.jpg", "label.culture_unknown")
    for key in ("misc/FOOD_2.jpg", "misc/FOOD_3.jpg"):
        assert "label.culture_unknown" not in checks_for(result, key)
        assert_accepted(result, key)


def test_label_category_missing(root, tmp_path):
    submission(root, [row("bowl.jpg", 1), row("bowl_2.jpg", 2, category="dish")])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "bowl.jpg", "label.category_missing")
    assert issues_of(result, "label.category_missing")[0].severity == "warning"
    assert "label.category_missing" not in checks_for(result, K + "bowl_2.jpg")
    assert outcome(result, K + "bowl_2.jpg").record.category == "FOOD"
    assert result.exit_code == 0


def test_label_category_unknown(root, tmp_path):
    submission(root, [row("pic1.jpg", 1, category="SPORT"), row("pic2.jpg", 2, category="food")])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "pic1.jpg", "label.category_unknown")
    assert "label.category_unknown" not in checks_for(result, K + "pic2.jpg")
    assert_accepted(result, K + "pic2.jpg")


def test_label_prefix_mismatch(root, tmp_path):
    folder = root / "korea" / "FOOD"
    for i, name in enumerate(("ARCH_1.jpg", "FOOD_2.jpg", "MYPIC_3.jpg", "arch-4.jpg"), start=1):
        make_image(folder / name, seed=i)
        (folder / (name + ".txt")).write_text(caption_for(i), encoding="utf-8")
    (root / "korea" / "submission.toml").write_text(
        'license = "CC-BY-4.0"\ncreator = "Kim Minji"\nconsent = "n/a"\ncontributor = "c1"\n')
    result = run(root, tmp_path / "out")
    for key in ("korea/FOOD/ARCH_1.jpg", "korea/FOOD/arch-4.jpg"):
        assert_accepted(result, key, "label.prefix_mismatch")
        assert outcome(result, key).record.category == "FOOD"  # the folder decides
    for key in ("korea/FOOD/FOOD_2.jpg", "korea/FOOD/MYPIC_3.jpg"):
        assert "label.prefix_mismatch" not in checks_for(result, key)
        assert_accepted(result, key)
    assert result.read.layouts == {"folder tree": 4}


def test_label_split_unknown(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, split="dev"), row("FOOD_2.jpg", 2, split="val"),
                      row("FOOD_3.jpg", 3)])
    make_image(root / "korea" / "test" / "FOOD_4.jpg", seed=4)
    write_jsonl(root / "korea" / "test" / "metadata.jsonl", [row("FOOD_4.jpg", 4)])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_1.jpg", "label.split_unknown")
    for key, split in ((K + "FOOD_2.jpg", "validation"), (K + "FOOD_3.jpg", "train"),
                       (K + "test/FOOD_4.jpg", "test")):
        assert "label.split_unknown" not in checks_for(result, key)
        assert_accepted(result, key)
        assert outcome(result, key).output.startswith(f"clean/korea/{split}/images/")






# --- rights --------------------------------------------------------------------

def test_normalised_licences_are_exported_in_canonical_form(root, tmp_path):
    licences = {"FOOD_1.jpg": "CC-BY-NC-4.0", "FOOD_2.jpg": "cc-by-4.0", "FOOD_3.jpg": "CC BY-SA 4.0",
                "FOOD_4.jpg": "CC0-1.0"}
    submission(root, [row(name, i, license=lic) for i, (name, lic) in enumerate(licences.items())])
    result = run(root, tmp_path / "out")
    assert_rejected(result, K + "FOOD_1.jpg", "rights.license_not_allowed")
    assert_accepted(result, K + "FOOD_2.jpg", "rights.license_normalised")
    rows = {r["file_name"]: r["license"] for r in read_jsonl(tmp_path / "out/clean/korea/train/metadata.jsonl")}
    assert rows == {"images/FOOD_2.jpg": "CC-BY-4.0", "images/FOOD_3.jpg": "CC-BY-SA-4.0",
                    "images/FOOD_4.jpg": "CC0-1.0"}


def test_rights_license_from_submission_toml(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, license=None)])
    (root / "korea" / "submission.toml").write_text('license = "CC-BY-SA-4.0"\n')
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg")
    assert outcome(result, K + "FOOD_1.jpg").record.sources["license"] == "korea/submission.toml"






# --- duplicates ----------------------------------------------------------------



def test_duplicate_same_file(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    shutil.copyfile(root / "korea" / "FOOD_1.jpg", root / "korea" / "FOOD_2.jpg")
    make_image(root / "korea" / "FOOD_3.jpg", seed=3)
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row("FOOD_1.jpg", 1, text="kimchi stew"), row("FOOD_2.jpg", 2, text="a bowl of kimchi stew"),
                 row("FOOD_3.jpg", 3)])
    result = run(root, tmp_path / "out", include_review=True)
    # Neither copy has errors; the richer caption wins over the earlier key.
    assert_rejected(result, K + "FOOD_1.jpg", "duplicate.same_file")
    assert "duplicate.same_file" not in checks_for(result, K + "FOOD_2.jpg")
    assert_accepted(result, K + "FOOD_2.jpg")
    assert "FOOD_2.jpg (kept; same bytes)" in issues_of(result, "duplicate.same_file")[0].finding.message
    assert "duplicate.same_file" not in checks_for(result, K + "FOOD_3.jpg")
    assert not issues_of(result, "duplicate.same_pixels")


def test_duplicate_same_file_for_every_copy(root, tmp_path):
    """Five byte-identical files, the third kept: all four others are same_file copies."""
    submission(root, [row("FOOD_1.jpg", 1)])
    for i in range(2, 6):
        shutil.copyfile(root / "korea" / "FOOD_1.jpg", root / "korea" / f"FOOD_{i}.jpg")
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row(f"FOOD_{i}.jpg", i, text="a bowl of kimchi stew" + " with rice" * (i == 3))
                 for i in range(1, 6)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_3.jpg")
    same = issues_of(result, "duplicate.same_file")
    assert sorted(i.finding.record for i in same) == [K + f"FOOD_{i}.jpg" for i in (1, 2, 4, 5)]
    assert all("FOOD_3.jpg (kept; same bytes)" in i.finding.message for i in same)
    assert not issues_of(result, "duplicate.near")


def test_duplicate_same_file_keeps_clean_copy(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    shutil.copyfile(root / "korea" / "FOOD_1.jpg", root / "korea" / "FOOD_2.jpg")
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row("FOOD_1.jpg", 1, license="CC-BY-NC-4.0", text=caption_for(1) + " and rice"),
                 row("FOOD_2.jpg", 2)])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_2.jpg")  # the copy without other errors is kept
    assert_rejected(result, K + "FOOD_1.jpg", "duplicate.same_file")


def test_duplicate_same_file_prefers_copy_without_review(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)])
    shutil.copyfile(root / "korea" / "FOOD_1.jpg", root / "korea" / "FOOD_2.jpg")
    write_jsonl(root / "korea" / "metadata.jsonl",
                [row("FOOD_1.jpg", 1, text="a long caption about kimchi stew, orders at 010-1234-5678"),
                 row("FOOD_2.jpg", 2, text="a bowl of kimchi stew")])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_2.jpg")
    assert_rejected(result, K + "FOOD_1.jpg", "duplicate.same_file")


def test_duplicate_same_pixels(root, tmp_path):
    # Large enough that analysis decodes at reduced scale and confirms at full size.
    size = (1100, 1040)
    with_exif = make_image(root / "korea" / "FOOD_1.jpg", size=size, seed=1, exif=exif(T0x010F="Canon"))
    (root / "korea" / "FOOD_2.jpg").write_bytes(strip_jpeg(with_exif.read_bytes()))
    # Close case: the same photo, smaller and re-encoded, is not pixel-identical (only a
    # near-duplicate, dropped in favour of the larger copies).
    make_image(root / "korea" / "FOOD_3.jpg", image=photo(1, size).resize((900, 851)), quality=80)
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2), row("FOOD_3.jpg", 3)])
    result = run(root, tmp_path / "out")
    assert result.facts[K + "FOOD_1.jpg"].decode_scale > 1
    assert result.facts[K + "FOOD_1.jpg"].sha256 != result.facts[K + "FOOD_2.jpg"].sha256
    dups = issues_of(result, "duplicate.same_pixels")
    assert len(dups) == 1 and dups[0].severity == "error"
    assert {K + "FOOD_1.jpg", K + "FOOD_2.jpg"} - {dups[0].finding.record} == {
        o.record.key for o in result.outcomes if o.status == "accepted"}
    assert "duplicate.same_pixels" not in checks_for(result, K + "FOOD_3.jpg")
    assert_rejected(result, K + "FOOD_3.jpg", "duplicate.near")
    assert not issues_of(result, "duplicate.same_file")


def test_duplicate_same_pixels_after_orientation(root, tmp_path):
    """Same decoded pixels after EXIF rotation: a rotated copy with orientation 6 is a duplicate."""
    upright = photo(size=(520, 600), seed=1)
    make_image(root / "korea" / "FOOD_1.png", image=upright)
    make_image(root / "korea" / "FOOD_2.png", image=upright.transpose(Image.Transpose.ROTATE_90),
               exif=exif(T0x0112=6))
    submission(root, [row("FOOD_1.png", 1), row("FOOD_2.png", 2)])
    result = run(root, tmp_path / "out")
    assert len(issues_of(result, "duplicate.same_pixels")) == 1


@pytest.mark.parametrize("size", [(600, 520), (1100, 1040)])
def test_duplicate_same_pixels_jpeg_saved_as_png(root, tmp_path, size):
    make_image(root / "korea" / "FOOD_1.jpg", size=size, seed=1)
    with Image.open(root / "korea" / "FOOD_1.jpg") as im:
        im.convert("RGB").save(root / "korea" / "FOOD_2.png")
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.png", 2)])
    result = run(root, tmp_path / "out")
    dropped = [o for o in result.outcomes if o.status == "rejected"]
    assert len(dropped) == 1
    # Small photos decode at full scale and match exactly; a large JPEG is decoded at reduced
    # scale, so its lossless PNG copy is caught by the perceptual tier instead (distance 0).
    expected = "duplicate.same_pixels" if size == (600, 520) else "duplicate.near"
    assert checks_for(result, dropped[0].record.key) == {expected}


def test_duplicate_label_conflict(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1)], folder="korea")
    submission(root, [row("FOOD_1.jpg", 2)], folder="japan", images=False)
    shutil.copyfile(root / "korea" / "FOOD_1.jpg", root / "japan" / "FOOD_1.jpg")
    make_image(root / "japan" / "FOOD_2.jpg", seed=7)
    write_jsonl(root / "japan" / "metadata.jsonl", [row("FOOD_1.jpg", 2), row("FOOD_2.jpg", 3)])
    make_image(root / "nigeria" / "FOOD_3.jpg", seed=9)
    shutil.copyfile(root / "nigeria" / "FOOD_3.jpg", root / "nigeria" / "FOOD_4.jpg")
    write_jsonl(root / "nigeria" / "metadata.jsonl", [row("FOOD_3.jpg", 4), row("FOOD_4.jpg", 5)])
    result = run(root, tmp_path / "out")
    for key in ("korea/FOOD_1.jpg", "japan/FOOD_1.jpg"):
        assert_rejected(result, key, "duplicate.label_conflict")
        assert "duplicate.same_file" not in checks_for(result, key)
    assert "japan" in issues_of(result, "duplicate.label_conflict")[0].finding.message
    assert_accepted(result, "japan/FOOD_2.jpg")
    # Copies within one culture are a plain duplicate, not a conflict.
    nigeria = [i for i in result.issues if (i.finding.record or "").startswith("nigeria/")]
    assert {i.finding.check for i in nigeria} == {"duplicate.same_file"}


# --- severities, config and export -------------------------------------------------

def test_severity_override_and_disable(root, tmp_path):
    make_image(root / "korea" / "FOOD_1.jpg", size=(400, 300), seed=1)
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, text="kimchi stew")])
    result = run(root, tmp_path / "out")
    assert_accepted(result, K + "FOOD_1.jpg", "geometry.small")
    assert status(result, K + "FOOD_2.jpg") == "review"
    cfg = config()
    cfg.severity["geometry.small"] = "error"
    cfg.disable = ["caption.too_short"]
    result = run(root, tmp_path / "out", cfg)
    assert_rejected(result, K + "FOOD_1.jpg", "geometry.small")
    assert "caption.too_short" not in checks_for(result, K + "FOOD_2.jpg")
    assert_accepted(result, K + "FOOD_2.jpg")


def test_severity_override_from_toml(root, tmp_path):
    toml = tmp_path / "ccub.toml"
    toml.write_text('disable = ["label.category_missing"]\n[severity]\n"caption.too_short" = "warning"\n'
                    '"rights.license_not_allowed" = "review"\n[limits]\nmax_caption_chars = 50\n')
    cfg = load_config(toml)
    assert cfg.severity == {"caption.too_short": "warning", "rights.license_not_allowed": "review"}
    submission(root, [row("bowl.jpg", 1, text="kimchi stew"),
                      row("FOOD_2.jpg", 2, license="CC-BY-NC-4.0", text="kimchi in a jar"),
                      row("FOOD_3.jpg", 3, text="kimchi " * 7 + "stew")])
    result = run(root, tmp_path / "out", cfg)
    assert_accepted(result, K + "bowl.jpg", "caption.too_short")
    assert "label.category_missing" not in checks_for(result, K + "bowl.jpg")
    assert status(result, K + "FOOD_2.jpg") == "review"
    assert_rejected(result, K + "FOOD_3.jpg", "caption.too_long")


@pytest.mark.parametrize("text", [
    '[severity]\n"caption.to_short" = "error"\n',
    'disable = ["geometry.tiny"]\n',
    '[severity]\n"caption.too_short" = "fatal"\n',
])
def test_config_rejects_unknown_check_ids(tmp_path, text):
    toml = tmp_path / "ccub.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match="ccub.toml"):
        load_config(toml)


def test_statuses_and_exit_code(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1), row("FOOD_2.jpg", 2, text="kimchi stew"),
                      row("FOOD_3.jpg", 3, text="IMG_0003"), row("bowl.jpg", 4)])
    result = run(root, tmp_path / "out")
    assert {o.record.key: o.status for o in result.outcomes} == {
        K + "FOOD_1.jpg": "accepted", K + "FOOD_2.jpg": "review", K + "FOOD_3.jpg": "rejected",
        K + "bowl.jpg": "accepted"}
    assert result.exit_code == 1
    listed = {r["file_name"] for r in read_jsonl(tmp_path / "out/clean/korea/train/metadata.jsonl")}
    assert listed == {"images/FOOD_1.jpg", "images/bowl.jpg"}
    assert sorted(p.name for p in (tmp_path / "out/clean/korea/train/images").iterdir()) == ["FOOD_1.jpg", "bowl.jpg"]
    # Only warnings and info: exit code 0.
    write_jsonl(root / "korea" / "metadata.jsonl", [row("FOOD_1.jpg", 1), row("bowl.jpg", 4)])
    for name in ("FOOD_2.jpg", "FOOD_3.jpg"):
        (root / "korea" / name).unlink()
    result = run(root, tmp_path / "out")
    assert {i.severity for i in result.issues} <= {"warning", "info"}
    assert result.exit_code == 0


def test_exports_carry_no_metadata_and_lossless_pixels(root, tmp_path):
    base = root / "korea"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Kim Minji</dc:creator></x:xmpmeta>'
    gps = exif(gps={1: "N", 2: (37.0, 33.0, 59.0)}, T0x013B="Kim Minji")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "shot by Kim Minji")
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    make_image(base / "FOOD_1.jpg", seed=1, exif=gps, icc_profile=srgb, comment=b"Kim Minji", xmp=xmp)
    make_image(base / "FOOD_2.jpg", seed=2, exif=gps, icc_profile=rgb_icc_profile())
    make_image(base / "FOOD_3.png", seed=3, exif=gps, icc_profile=srgb, pnginfo=info)
    make_image(base / "FOOD_4.webp", seed=4, exif=gps, icc_profile=srgb, xmp=xmp, quality=90)
    make_image(base / "FOOD_5.webp", seed=5, exif=gps, lossless=True)
    make_image(base / "FOOD_6.jpg", seed=6, exif=exif(T0x0112=3, T0x013B="Kim Minji"), progressive=True)
    names = ["FOOD_1.jpg", "FOOD_2.jpg", "FOOD_3.png", "FOOD_4.webp", "FOOD_5.webp", "FOOD_6.jpg"]
    submission(root, [row(name, i) for i, name in enumerate(names)])
    result = run(root, tmp_path / "out")
    for name in names[:5]:
        assert {"privacy.location", "privacy.owner_name"} <= checks_for(result, K + name), name
    rows = {r["source_file"]: r for r in read_jsonl(tmp_path / "out/clean/korea/train/metadata.jsonl")}
    assert set(rows) == {K + name for name in names}
    for name in names:
        path = exported(result, K + name)
        assert_no_metadata(path)
        assert b"Kim Minji" not in path.read_bytes()
        if rows[K + name]["export"] == "metadata removed losslessly":
            with Image.open(base / name) as original, Image.open(path) as copy:
                assert original.size == copy.size
                assert original.convert("RGB").tobytes() == copy.convert("RGB").tobytes(), name
    assert rows[K + "FOOD_1.jpg"]["export"] == "metadata removed losslessly"
    assert rows[K + "FOOD_3.png"]["export"] == "metadata removed losslessly"
    assert rows[K + "FOOD_2.jpg"]["export"].startswith("re-encoded")  # colour converted
    assert rows[K + "FOOD_6.jpg"]["export"].startswith("re-encoded")  # rotated


def test_exported_row_fields(root, tmp_path):
    submission(root, [row("FOOD_1.jpg", 1, language="en", created_at="2024-05-01", blip_text="a bowl",
                          photographer_notes="kept")])
    run(root, tmp_path / "out")
    [exported_row] = read_jsonl(tmp_path / "out/clean/korea/train/metadata.jsonl")
    assert exported_row["file_name"] == "images/FOOD_1.jpg"
    assert exported_row["text"] == caption_for(1)
    assert (exported_row["culture"], exported_row["category"]) == ("korea", "FOOD")
    assert exported_row["license"] == "CC-BY-4.0" and exported_row["creator"] == "Kim Minji"
    assert exported_row["blip_text"] == "a bowl"
