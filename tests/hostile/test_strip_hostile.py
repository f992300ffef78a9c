"""Hostile containers: private bytes hidden where a denylist stripper does not look (issue 14).

Every file is built by hand (PNG chunks with correct CRCs, JPEG segments spliced into a
Pillow-made JPEG, WebP chunks in a RIFF), run end to end through `ccub validate`, and judged
on the bytes written under `out/`: the planted secret must appear in no output file (clean/,
reports/, index/), the exported image must hold only allowlisted blocks and, when exported
losslessly, decode to the source's pixels; validate must exit 0 or 1.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import by_image, noisy_photo, read_jsonl, row, run, write_jsonl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

import ccub.imaging.analyze as analyze
from ccub.export import ExportError, verify_clean
from ccub.imaging.strip import Rewrite, StripError, find_metadata, strip_metadata
from ccub.imaging.verify import PixelCheck, verify_image

CAPTION = "a bowl of bibimbap with seasoned vegetables"
GPS = b"GPS 52.520008 N, 13.404954 E"


def secret(tag: str) -> bytes:
    """A marker that cannot occur by chance in any output."""
    return f"SECRET-{tag}-7f3c9e1d".encode()


# --- building hostile files ------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(seed: int = 1, size: tuple[int, int] = (600, 520)) -> bytes:
    buf = io.BytesIO()
    noisy_photo(seed, size).save(buf, "PNG")
    return buf.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, read with the plain PNG layout (test-side parser)."""
    pos, chunks = 8, []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_kinds(data: bytes) -> list[bytes]:
    """Chunk types in order, a run of IDAT chunks counted once."""
    kinds = [kind for kind, _ in png_chunks(data)]
    return [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1] or k != b"IDAT"]


def png_with(png: bytes, *, after_ihdr: bytes = b"", before_iend: bytes = b"",
             after_iend: bytes = b"") -> bytes:
    ihdr_end = 8 + 25
    return png[:ihdr_end] + after_ihdr + png[ihdr_end:-12] + before_iend + png[-12:] + after_iend


def jpeg_bytes(seed: int = 1, size: tuple[int, int] = (600, 520), **params) -> bytes:
    buf = io.BytesIO()
    noisy_photo(seed, size).save(buf, "JPEG", quality=90, **params)
    return buf.getvalue()


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_with(jpeg: bytes, *segments: bytes) -> bytes:
    """Segments spliced in after Pillow's SOI + APP0 JFIF."""
    assert jpeg[2:4] == b"\xff\xe0" and jpeg[4:6] == b"\x00\x10"
    return jpeg[:20] + b"".join(segments) + jpeg[20:]


def jpeg_markers(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment up to the first SOS (test-side parser)."""
    pos, out = 2, []
    while data[pos + 1] != 0xDA:
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append((data[pos + 1], data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return out


def adobe(transform: int, extra: bytes = b"") -> bytes:
    return jpeg_segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform) + extra)


def riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def webp_bytes(seed: int = 1, **params) -> bytes:
    buf = io.BytesIO()
    noisy_photo(seed).save(buf, "WEBP", **params)
    return buf.getvalue()


def webp_extended(simple: bytes, *, before: bytes = b"", after: bytes = b"",
                  flags: int = 0, reserved: bytes = b"\0\0\0", vp8x_extra: bytes = b"") -> bytes:
    """A simple WebP re-wrapped with a VP8X header and extra chunks around its image chunk."""
    with Image.open(io.BytesIO(simple)) as im:
        w, h = im.size
    canvas = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = (b"WEBP" + riff_chunk(b"VP8X", bytes([flags]) + reserved + canvas + vp8x_extra)
            + before + simple[12:] + after)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- running validate ------------------------------------------------------------------


def pixels(data: bytes) -> tuple:
    with Image.open(io.BytesIO(data)) as im:
        return im.size, im.convert("RGB").tobytes()


def validate_one(tmp_path: Path, name: str, data: bytes):
    """Validate a one-image submission; (result, exported bytes or None, metadata row)."""
    root, out = tmp_path / "sub", tmp_path / "out"
    (root / "korea").mkdir(parents=True)
    (root / "korea" / name).write_bytes(data)
    write_jsonl(root / "korea" / "metadata.jsonl", [row(name, text=CAPTION, category="FOOD")])
    result = run(root, out, reports=True)
    assert result.exit_code in (0, 1)  # 2 would mean the run itself broke
    outcome = by_image(result)[f"korea/{name}"]
    if outcome.output is None:
        return result, None, None
    [meta] = read_jsonl(out / "clean" / "korea" / "train" / "metadata.jsonl")
    return result, (out / outcome.output).read_bytes(), meta


def assert_nowhere(out: Path, *needles: bytes) -> None:
    """No file the run wrote (dataset, cards, reports, index) contains any needle."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.parts[-2] == "reports" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} leaked into {path.relative_to(out)}"


def messages(result, check: str) -> list[str]:
    return [i.finding.message for i in result.issues if i.finding.check == check]


def assert_verified(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    verify_clean(path)


# --- PNG -------------------------------------------------------------------------------


def test_png_private_ancillary_chunk_with_gps_is_not_exported(tmp_path):
    hidden = GPS + b" " + secret("prvt")
    source = png_with(png_bytes(), after_ihdr=png_chunk(b"prVt", hidden))

    result, exported, meta = validate_one(tmp_path, "FOOD_1.png", source)

    assert exported is not None and meta["export"] == "metadata removed losslessly"
    assert png_kinds(exported) == [b"IHDR", b"IDAT", b"IEND"]
    assert pixels(exported) == pixels(source)
    assert_nowhere(tmp_path / "out", secret("prvt"), b"52.520008")
    assert any("prVt" in m for m in messages(result, "privacy.metadata_removed"))
    assert any("prVt" in m for m in messages(result, "privacy.location"))


def test_png_unknown_critical_chunk_is_reencoded_not_copied(tmp_path):
    # An unknown critical chunk: Pillow skips it, Chromium refuses the whole file.
    source = png_with(png_bytes(), after_ihdr=png_chunk(b"SeCR", secret("critical")))

    result, exported, meta = validate_one(tmp_path, "FOOD_1.png", source)

    assert exported is not None and meta["export"] == "re-encoded losslessly"
    assert {kind for kind, _ in png_chunks(exported)} <= {b"IHDR", b"IDAT", b"IEND"}
    assert pixels(exported) == pixels(source)
    assert_nowhere(tmp_path / "out", secret("critical"))
    assert any("SeCR" in m for m in messages(result, "image.container"))
    assert any("SeCR" in m for m in messages(result, "privacy.metadata_removed"))


def test_png_comment_removal_is_reported(tmp_path):
    comment = png_chunk(b"tEXt", b"Comment\0" + GPS + b" " + secret("comment"))
    source = png_with(png_bytes(), before_iend=comment)

    result, exported, _ = validate_one(tmp_path, "FOOD_1.png", source)

    assert exported is not None and b"tEXt" not in exported
    assert_nowhere(tmp_path / "out", secret("comment"), b"52.520008")
    [location] = messages(result, "privacy.location")
    assert "PNG text" in location and "Comment" in location
    [removed] = messages(result, "privacy.metadata_removed")
    assert "tEXt Comment" in removed


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_png_compressed_text_and_itxt_xmp_location_is_reported(tmp_path, kind):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="52,31.2N" '
           b'exif:GPSLongitude="13,24.3E"/>' + secret("xmp") + b"</x:xmpmeta>")
    if kind == b"zTXt":
        payload = b"Description\0\0" + zlib.compress(GPS + b" " + secret("xmp"))
    else:
        payload = b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp)
    source = png_with(png_bytes(), after_ihdr=png_chunk(kind, payload))

    result, exported, _ = validate_one(tmp_path, "FOOD_1.png", source)

    assert exported is not None
    assert_nowhere(tmp_path / "out", secret("xmp"))
    assert messages(result, "privacy.location")
    [removed] = messages(result, "privacy.metadata_removed")
    assert kind.decode() in removed


def test_png_data_hidden_after_the_zlib_stream_in_idat_is_reencoded(tmp_path):
    png = png_bytes()
    chunks = png_chunks(png)
    idat = b"".join(data for kind, data in chunks if kind == b"IDAT")
    assert zlib.decompressobj().decompress(idat)  # a complete stream
    hidden = png[:33] + png_chunk(b"IDAT", idat + secret("idat")) + png_chunk(b"IEND", b"")

    with pytest.raises(StripError, match="after the end"):
        strip_metadata(hidden, "PNG")
    result, exported, meta = validate_one(tmp_path, "FOOD_1.png", hidden)

    assert exported is not None and meta["export"] == "re-encoded losslessly"
    assert pixels(exported) == pixels(png)
    assert_nowhere(tmp_path / "out", secret("idat"))


def test_png_extra_idat_chunk_after_the_stream_end_is_reencoded(tmp_path):
    png = png_bytes()
    extra = png_chunk(b"IDAT", zlib.compress(secret("idat2")))
    hidden = png_with(png, before_iend=extra)
    result, exported, _ = validate_one(tmp_path, "FOOD_1.png", hidden)
    assert exported is not None and pixels(exported) == pixels(png)
    assert_nowhere(tmp_path / "out", secret("idat2"))


def test_png_data_in_iend_and_after_iend_is_dropped_and_reported(tmp_path):
    png = png_bytes()
    source = (png[:-12] + png_chunk(b"IEND", secret("iend")) + secret("trailer"))
    result, exported, _ = validate_one(tmp_path, "FOOD_1.png", source)
    assert exported is not None and exported.endswith(b"\0\0\0\0IEND\xaeB`\x82")
    assert pixels(exported) == pixels(png)
    assert_nowhere(tmp_path / "out", secret("iend"), secret("trailer"))
    [removed] = messages(result, "privacy.metadata_removed")
    assert "after the image end" in removed


def test_png_secret_in_chunk_type_and_text_keyword_is_not_reported_verbatim(tmp_path):
    # What the report says about a removed block comes from a fixed vocabulary, never the file.
    keyword = b"SECRET-kw-7f3c9e1d"
    source = png_with(png_bytes(), before_iend=png_chunk(b"tEXt", keyword + b"\0" + GPS))
    result, exported, _ = validate_one(tmp_path, "FOOD_1.png", source)
    assert exported is not None
    assert_nowhere(tmp_path / "out", keyword, b"52.520008")
    [removed] = messages(result, "privacy.metadata_removed")
    assert "tEXt" in removed


def test_png_colour_chunks_are_dropped_and_pixels_kept(tmp_path):
    source = png_with(png_bytes(), after_ihdr=png_chunk(b"gAMA", (100000).to_bytes(4, "big"))
                      + png_chunk(b"cHRM", bytes(32)) + png_chunk(b"sRGB", b"\0")
                      + png_chunk(b"cICP", b"\x01\x0d\x00\x01"))
    result, exported, meta = validate_one(tmp_path, "FOOD_1.png", source)
    assert meta["export"] == "metadata removed losslessly"
    assert png_kinds(exported) == [b"IHDR", b"IDAT", b"IEND"]
    assert pixels(exported) == pixels(source)
    [removed] = messages(result, "privacy.metadata_removed")
    assert all(name in removed for name in ("gAMA", "cHRM", "sRGB", "cICP"))


# --- JPEG ------------------------------------------------------------------------------


def test_jpeg_adobe_app14_with_trailing_bytes_is_cut_to_standard_length(tmp_path):
    jpeg = jpeg_bytes()
    source = jpeg_with(jpeg, adobe(1, b" " + GPS + b" " + secret("app14")))

    result, exported, meta = validate_one(tmp_path, "FOOD_1.jpg", source)

    assert exported is not None and meta["export"] == "metadata removed losslessly"
    segments = jpeg_markers(exported)
    assert [m for m, _ in segments if m >= 0xE0] == [0xE0, 0xEE]
    [app14] = [p for m, p in segments if m == 0xEE]
    assert app14 == b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 1)  # the standard 12 bytes
    assert pixels(exported) == pixels(source)
    assert_nowhere(tmp_path / "out", secret("app14"), b"52.520008")
    [removed] = messages(result, "privacy.metadata_removed")
    assert "APP14 Adobe" in removed
    assert messages(result, "privacy.location")


def test_jpeg_adobe_transform_decides_rgb_pixels_and_is_kept(tmp_path):
    # An RGB-coded JPEG (Adobe transform 0, no JFIF): dropping APP14 would change every colour.
    buf = io.BytesIO()
    noisy_photo(2).save(buf, "JPEG", quality=90, keep_rgb=True)
    source = buf.getvalue()
    assert b"Adobe" in source
    result, exported, meta = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None and meta["export"] == "metadata removed losslessly"
    assert pixels(exported) == pixels(source)
    assert [p[11] for m, p in jpeg_markers(exported) if m == 0xEE] == [0]


def test_extended_xmp_gps_removal_is_reported(tmp_path):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
           b'exif:GPSLatitude="52,31.2N" exif:GPSLongitude="13,24.3E">' + secret("extxmp")
           + b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    extension = jpeg_segment(0xE1, b"http://ns.adobe.com/xmp/extension/\0" + guid
                             + struct.pack(">II", len(xmp), 0) + xmp)
    source = jpeg_with(jpeg_bytes(), extension)

    result, exported, meta = validate_one(tmp_path, "FOOD_1.jpg", source)

    assert exported is not None and meta["export"] == "metadata removed losslessly"
    assert pixels(exported) == pixels(source)
    assert_nowhere(tmp_path / "out", secret("extxmp"), b"52,31.2N")
    [location] = messages(result, "privacy.location")
    assert "extended XMP" in location
    [removed] = messages(result, "privacy.metadata_removed")
    assert "APP1 extended XMP" in removed


def test_jpeg_comment_with_gps_is_removed_and_reported(tmp_path):
    source = jpeg_with(jpeg_bytes(), jpeg_segment(0xFE, GPS + b" " + secret("com")))
    result, exported, _ = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None
    assert_nowhere(tmp_path / "out", secret("com"), b"52.520008")
    assert any("comment" in m for m in messages(result, "privacy.location"))
    assert "COM comment" in messages(result, "privacy.metadata_removed")[0]


def test_jpeg_unknown_app_segment_label_is_not_reported_verbatim(tmp_path):
    # A denylist names segments by their label; the label itself can be the secret.
    source = jpeg_with(jpeg_bytes(), jpeg_segment(0xE9, secret("label") + b"\0" + GPS))
    result, exported, _ = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None
    assert_nowhere(tmp_path / "out", secret("label"), b"52.520008")
    assert "APP9" in messages(result, "privacy.metadata_removed")[0]


def test_jpeg_jfif_thumbnail_and_jfxx_are_dropped(tmp_path):
    jpeg = jpeg_bytes()
    thumb = secret("thumb").ljust(24 * 3, b"x")  # a 24x1 RGB thumbnail
    jfif = jpeg_segment(0xE0, jpeg[6:18] + bytes([24, 1]) + thumb)
    jfxx = jpeg_segment(0xE0, b"JFXX\0\x13" + bytes([24, 1]) + thumb)
    source = jpeg[:2] + jfif + jfxx + jpeg[20:]
    result, exported, _ = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None and exported[:20] == jpeg[:20]
    assert pixels(exported) == pixels(jpeg)
    assert_nowhere(tmp_path / "out", secret("thumb"))
    [removed] = messages(result, "privacy.metadata_removed")
    assert "JFIF thumbnail" in removed and "APP0 JFXX" in removed


def test_jpeg_segments_between_progressive_scans_and_after_eoi_are_dropped(tmp_path):
    jpeg = jpeg_bytes(progressive=True)
    second_scan = jpeg.index(b"\xff\xda", jpeg.index(b"\xff\xda") + 2)
    source = (jpeg[:second_scan] + jpeg_segment(0xE3, secret("midscan"))
              + jpeg_segment(0xFE, secret("midcom")) + jpeg[second_scan:] + secret("trailer"))
    result, exported, meta = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None and meta["export"] == "metadata removed losslessly"
    assert pixels(exported) == pixels(jpeg) and exported.endswith(b"\xff\xd9")
    assert_nowhere(tmp_path / "out", secret("midscan"), secret("midcom"), secret("trailer"))


def test_jpeg_the_stripper_cannot_parse_is_reencoded_at_full_size(tmp_path):
    # libjpeg and Pillow skip a stray 0xFF00 between segments; the stripper refuses it. The
    # statistics came from a draft (1/2 scale) decode, but the re-encode must not.
    jpeg = jpeg_bytes(size=(1200, 900))
    source = jpeg[:20] + b"\xff\x00" + jpeg[20:]
    assert pixels(source) == pixels(jpeg)
    with pytest.raises(StripError):
        strip_metadata(source, "JPEG")
    result, exported, meta = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None and meta["export"].startswith("re-encoded at quality")
    with Image.open(io.BytesIO(exported)) as im:
        assert im.size == (1200, 900)
    assert any("could not be rewritten" in m for m in messages(result, "image.container"))


def test_jpeg_short_adobe_segment_is_dropped(tmp_path):
    # Under 12 bytes libjpeg ignores it: not needed for decoding, so not kept.
    source = jpeg_with(jpeg_bytes(), jpeg_segment(0xEE, b"Adobe" + b"\x00\x64"))
    result, exported, _ = validate_one(tmp_path, "FOOD_1.jpg", source)
    assert exported is not None and b"Adobe" not in exported
    assert pixels(exported) == pixels(source)


# --- WebP ------------------------------------------------------------------------------


@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_webp_unknown_chunks_and_vp8x_junk_are_dropped(tmp_path, lossless):
    simple = webp_bytes(lossless=lossless, quality=90)
    source = webp_extended(simple, before=riff_chunk(b"GPSx", GPS + secret("before")),
                           after=riff_chunk(b"XMP ", secret("xmp") + b"1"),
                           flags=0x20 | 0x08 | 0x04, reserved=b"\xa5\xa5\xa5")
    source += secret("riff-trailer")

    result, exported, meta = validate_one(tmp_path, "FOOD_1.webp", source)

    assert exported is not None and meta["export"] == "metadata removed losslessly"
    assert pixels(exported) == pixels(simple)
    assert_nowhere(tmp_path / "out", secret("before"), secret("xmp"), secret("riff-trailer"))
    assert exported[12:16] == b"VP8X" and exported[16:20] == b"\x0a\0\0\0"
    assert exported[20:24] == b"\0\0\0\0"  # no flags (no alpha), reserved bytes zero
    [removed] = messages(result, "privacy.metadata_removed")
    assert all(name in removed for name in ("VP8X reserved bytes", "GPSx chunk", "XMP chunk",
                                            "data after the image end"))
    assert any("GPSx chunk" in m for m in messages(result, "privacy.location"))


def test_webp_vp8x_is_rewritten_to_its_meaningful_fields():
    # libwebp itself refuses these (reserved flag bits, an over-long VP8X); the stripper
    # still writes only the alpha flag and the canvas size.
    simple = webp_bytes(lossless=True)
    source = webp_extended(simple, flags=0xFF & ~0x02, reserved=b"\xa5\xa5\xa5",
                           vp8x_extra=secret("vp8x"))
    stripped = strip_metadata(source, "WEBP")
    assert stripped[12:30] == b"VP8X\x0a\0\0\0\x10\0\0\0" + source[24:30]
    assert secret("vp8x") not in stripped
    assert "VP8X+data" in find_metadata(source, "WEBP")
    with pytest.raises(StripError, match="animated"):
        strip_metadata(webp_extended(simple, flags=0x02), "WEBP")


# --- the verifier ----------------------------------------------------------------------


def test_verify_clean_refuses_any_block_outside_the_allowlist(tmp_path):
    png, jpeg, webp = png_bytes(), jpeg_bytes(), webp_bytes()
    assert_verified(tmp_path, "ok.png", png)
    assert_verified(tmp_path, "ok.jpg", jpeg)
    dirty = {
        "prvt.png": png_with(png, after_ihdr=png_chunk(b"prVt", b"x")),
        "crit.png": png_with(png, after_ihdr=png_chunk(b"SeCR", b"x")),
        "gama.png": png_with(png, after_ihdr=png_chunk(b"gAMA", (45455).to_bytes(4, "big"))),
        "trailer.png": png + b"x",
        "idat.png": png[:33] + png_chunk(b"IDAT", b"".join(
            d for k, d in png_chunks(png) if k == b"IDAT") + b"x") + png_chunk(b"IEND", b""),
        "app14.jpg": jpeg_with(jpeg, adobe(1, b"x")),
        "app9.jpg": jpeg_with(jpeg, jpeg_segment(0xE9, b"x")),
        "com.jpg": jpeg_with(jpeg, jpeg_segment(0xFE, b"x")),
        "trailer.jpg": jpeg + b"x",
        "junk.jpg": jpeg[:20] + b"ab" + jpeg[20:],
        "fill.jpg": jpeg[:20] + b"\xff" + jpeg[20:],
        "thumbnail.jpg": jpeg[:4] + b"\x00\x13" + jpeg[6:18] + b"\x01\x01abc" + jpeg[20:],
        "xmp.webp": webp_extended(webp, after=riff_chunk(b"XMP ", b"x")),
        "reserved.webp": webp_extended(webp, reserved=b"\0\0\1"),
        "trailer.webp": webp + b"x",
    }
    assert_verified(tmp_path, "ok.webp", webp)
    assert_verified(tmp_path, "vp8x.webp", webp_extended(webp))
    for name, data in dirty.items():
        with pytest.raises(ExportError, match="metadata left"):
            assert_verified(tmp_path, name, data)


def test_verify_clean_refuses_a_published_file_that_is_not_the_verified_copy(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes())
    staged = SimpleNamespace(staged_size=path.stat().st_size)
    verify_clean(path, staged)  # type: ignore[arg-type]
    path.write_bytes(jpeg_bytes() + b"x")
    with pytest.raises(ExportError, match="not the copy verified"):
        verify_clean(path, staged)  # type: ignore[arg-type]


def rgb_jpeg(seed: int = 2) -> bytes:
    """An RGB-coded JPEG: Adobe transform 0 and no JFIF, so APP14 decides every colour."""
    buf = io.BytesIO()
    noisy_photo(seed).save(buf, "JPEG", quality=90, keep_rgb=True)
    return buf.getvalue()


def test_verify_image_compares_a_lossless_copy_with_its_source():
    jpeg, png = rgb_jpeg(), png_bytes()
    assert verify_image(strip_metadata(jpeg, "JPEG"), "JPEG", PixelCheck(source=jpeg)) == []
    at = jpeg.index(b"\xff\xee") + 15  # the Adobe transform byte
    transform = jpeg[:at] + b"\x01" + jpeg[at + 1 :]
    dqt = jpeg.index(b"\xff\xdb") + 10
    table = jpeg[:dqt] + bytes([jpeg[dqt] ^ 1]) + jpeg[dqt + 1 :]
    for changed in (transform, table):
        assert pixels(changed) != pixels(jpeg)
        assert verify_image(changed, "JPEG", PixelCheck(source=jpeg)) == [
            "the decoder input differs from the source's"]
    with Image.open(io.BytesIO(png)) as im:
        key = analyze.pixel_key(im.convert("RGB"), 1)
    assert verify_image(png, "PNG", PixelCheck(key)) == []
    assert verify_image(png_bytes(seed=2), "PNG", PixelCheck(key)) == [
        "decoded pixels differ from the source's"]


@pytest.mark.parametrize("name", ["FOOD_1.jpg", "FOOD_1.png"])
def test_stripper_bug_that_changes_pixels_refuses_the_file(tmp_path, monkeypatch, name):
    # Simulate a stripper bug: the copy drops the Adobe transform / shows another picture.
    real = analyze.rewrite

    def broken(data: bytes, fmt: str) -> Rewrite:
        result = real(data, fmt)
        assert result.data is not None
        if fmt == "JPEG":
            at = result.data.index(b"\xff\xee")
            bad = result.data[:at] + result.data[at + 16 :]
        else:
            bad = png_bytes(seed=9)
        return Rewrite(bad, None, result.removed)

    monkeypatch.setattr(analyze, "rewrite", broken)
    source = rgb_jpeg() if name.endswith(".jpg") else png_bytes()
    result, exported, _ = validate_one(tmp_path, name, source)
    assert exported is None and by_image(result)[f"korea/{name}"].status == "rejected"
    [left] = messages(result, "privacy.metadata_left")
    assert "source" in left
    assert not [p for p in (tmp_path / "out" / "clean").rglob("*") if p.suffix in (".jpg", ".png")]


# --- property: random blocks around a valid image --------------------------------------

MARK = b"PLANTED-SECRET-51c0"
_BASE = {}


def _base(fmt: str) -> bytes:
    if fmt not in _BASE:
        im = noisy_photo(3, (40, 32))
        buf = io.BytesIO()
        im.save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        _BASE[fmt] = buf.getvalue()
    return _BASE[fmt]


payloads = st.builds(lambda pre, post, plant: pre + (MARK if plant else b"") + post,
                     st.binary(max_size=40), st.binary(max_size=40), st.booleans())
png_types = st.sampled_from([b"prVt", b"tEXt", b"zTXt", b"iTXt", b"gAMA", b"iCCP", b"eXIf",
                             b"tIME", b"pHYs", b"sPLT", b"cICP", b"abCd", b"SeCR", b"IDAT",
                             b"tRNS", b"PLTE"])


def _splice(rng: random.Random, parts: list[bytes], blocks: list[bytes], lo: int) -> bytes:
    for block in blocks:
        parts.insert(rng.randint(lo, len(parts) - 1), block)
    return b"".join(parts)


def _png_parts(data: bytes) -> list[bytes]:
    pos, parts = 8, [data[:8]]
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        parts.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return parts


def _jpeg_parts(data: bytes) -> list[bytes]:
    pos, parts = 2, [data[:2]]
    while data[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        parts.append(data[pos:end])
        pos = end
    return [*parts, data[pos:]]


def _check(data: bytes, fmt: str, clean: bytes) -> None:
    try:
        out = strip_metadata(data, fmt)
    except StripError:
        event("refused: the pipeline re-encodes")
        return
    event("stripped" + (" (a secret was planted)" if MARK in data else ""))
    assert MARK not in out
    assert find_metadata(out, fmt) == []
    assert pixels(out) == pixels(clean)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(png_types, payloads), max_size=6), st.randoms(use_true_random=False),
       payloads)
def test_property_png_random_chunks_never_carry_a_planted_secret(chunks, rng, trailer):
    clean = _base("PNG")
    parts = _png_parts(clean)
    blocks = [png_chunk(kind, data) for kind, data in chunks]
    data = _splice(rng, parts[:-1], blocks, 2) + parts[-1] + trailer
    _check(data, "PNG", clean)


app_markers = st.sampled_from([0xE0, 0xE1, 0xE2, 0xEC, 0xED, 0xEE, 0xEF, 0xFE])
app_prefixes = st.sampled_from([b"", b"Exif\0\0", b"http://ns.adobe.com/xap/1.0/\0",
                                b"http://ns.adobe.com/xmp/extension/\0", b"ICC_PROFILE\0",
                                b"JFIF\0", b"JFXX\0", b"Adobe\0\x64\0\0\0\0\1", b"Adobe",
                                b"Photoshop 3.0\0", b"MPF\0"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(app_markers, app_prefixes, payloads), max_size=6),
       st.randoms(use_true_random=False), payloads)
def test_property_jpeg_random_segments_never_carry_a_planted_secret(segments, rng, trailer):
    clean = _base("JPEG")
    parts = _jpeg_parts(clean)
    blocks = [jpeg_segment(marker, prefix + data) for marker, prefix, data in segments]
    data = _splice(rng, parts[:-1], blocks, 1) + parts[-1] + trailer
    _check(data, "JPEG", clean)


webp_types = st.sampled_from([b"EXIF", b"XMP ", b"ICCP", b"GPSx", b"ALPH", b"VP8X", b"abcd"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(webp_types, payloads), max_size=4),
       st.lists(st.tuples(webp_types, payloads), max_size=4), st.integers(0, 255), payloads)
def test_property_webp_random_chunks_never_carry_a_planted_secret(before, after, flags, trailer):
    clean = _base("WEBP")
    data = webp_extended(clean, before=b"".join(riff_chunk(k, d) for k, d in before),
                         after=b"".join(riff_chunk(k, d) for k, d in after),
                         flags=flags & ~0x02) + trailer
    _check(data, "WEBP", clean)


def test_secret_markers_are_distinct():
    # Guards the tests above: a marker that also matched clean output would prove nothing.
    assert not re.search(rb"SECRET|PLANTED", _base("PNG") + _base("JPEG") + _base("WEBP"))
