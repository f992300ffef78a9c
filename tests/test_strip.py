"""Tests for ccub.imaging.strip: lossless metadata removal and verification."""

from __future__ import annotations

import io
import random

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from ccub.imaging.strip import (
    StripError,
    find_metadata,
    strip_jpeg,
    strip_metadata,
    strip_png,
    strip_webp,
)

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/>secret-author</x:xmpmeta>'
META_INFO_KEYS = {"exif", "icc_profile", "xmp", "comment", "dpi", "gamma", "Author", "Comment"}


def noise(mode: str = "RGB", size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    # Noise makes the entropy-coded data full of 0xFF00 stuffing, which the
    # JPEG scan parser must step over.
    rgb = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    if mode == "P":
        return rgb.quantize(16)
    if mode == "RGBA":
        rgba = rgb.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(size))
        return rgba
    return rgb.convert(mode)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def decoded(data: bytes) -> tuple:
    """Everything that defines the pixels, for byte-exact comparison."""
    with Image.open(io.BytesIO(data)) as im:
        return im.mode, im.size, im.tobytes(), im.getpalette()


def opened(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def sample_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Alice Example"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    return exif


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg_with_metadata(icc: bytes, **params) -> bytes:
    return encode(
        noise(), "JPEG", exif=sample_exif(), icc_profile=icc, xmp=XMP, comment="a comment", **params
    )


def png_with_metadata(im: Image.Image, icc: bytes, **params) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Alice Example")
    info.add_text("Comment", "compressed " * 20, zip=True)  # zTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode(), lang="en", tkey="XMP")
    info.add(b"gAMA", (45455).to_bytes(4, "big"))
    info.add(b"tIME", bytes([7, 232, 1, 2, 3, 4, 5]))
    info.add(b"prVt", b"private ancillary chunk")
    return encode(
        im, "PNG", pnginfo=info, exif=sample_exif(), icc_profile=icc, dpi=(300, 300), **params
    )


def webp_with_metadata(im: Image.Image, icc: bytes, **params) -> bytes:
    return encode(im, "WEBP", exif=sample_exif(), icc_profile=icc, xmp=XMP, **params)


# --- JPEG -------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"progressive": True}, {"optimize": True}, {"restart_marker_rows": 1}],
    ids=["baseline", "progressive", "optimized", "restart-markers"],
)
def test_jpeg_metadata_removed_pixels_identical(icc, params):
    original = jpeg_with_metadata(icc, **params)
    found = find_metadata(original, "JPEG")
    assert {"APP1:Exif", "APP2:ICC_PROFILE", "COM"} <= set(found)
    assert "APP1:http://ns.adobe.com/xap/1.0/" in found
    assert opened(original).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # metadata really was there

    stripped = strip_jpeg(original)

    assert find_metadata(stripped, "JPEG") == []
    im = opened(stripped)
    assert im.format == "JPEG"
    assert len(im.getexif()) == 0
    assert not META_INFO_KEYS & set(im.info)
    assert decoded(stripped) == decoded(original)
    assert len(stripped) < len(original)
    assert strip_jpeg(stripped) == stripped


def test_jpeg_progressive_keeps_every_scan(icc):
    original = jpeg_with_metadata(icc, progressive=True)
    stripped = strip_jpeg(original)
    assert stripped.count(b"\xff\xda") == original.count(b"\xff\xda") > 1
    assert opened(stripped).info.get("progressive")


def test_jpeg_cmyk_keeps_adobe_segment():
    # The Adobe APP14 transform flag decides how CMYK/YCCK data decodes.
    original = encode(noise("CMYK"), "JPEG", exif=sample_exif(), comment="c")
    stripped = strip_jpeg(original)
    assert find_metadata(stripped, "JPEG") == []
    assert b"\xff\xee" in stripped and b"Adobe" in stripped
    assert decoded(stripped) == decoded(original)
    assert opened(stripped).mode == "CMYK"


def test_jpeg_jfif_thumbnail_dropped_header_kept():
    plain = encode(noise(), "JPEG")
    assert plain[2:4] == b"\xff\xe0" and plain[4:6] == b"\x00\x10"  # Pillow's bare JFIF APP0
    thumbnail = bytes(range(6))  # 2x1 RGB pixels
    jfif = b"\xff\xe0" + (16 + len(thumbnail)).to_bytes(2, "big") + plain[6:18]
    with_thumb = plain[:2] + jfif + b"\x02\x01" + thumbnail + plain[20:]
    assert find_metadata(with_thumb, "JPEG") == ["APP0:JFIF+thumbnail"]

    stripped = strip_jpeg(with_thumb)

    assert stripped == plain
    assert "jfif" in opened(stripped).info


def test_jpeg_fill_bytes_and_trailer_are_dropped():
    plain = encode(noise(), "JPEG")
    dqt = plain.index(b"\xff\xdb")
    padded = plain[:dqt] + b"\xff\xff\xff" + plain[dqt:] + b"appended zip file"
    assert find_metadata(padded, "JPEG") == ["trailer"]
    assert strip_jpeg(padded) == plain


def test_mpo_becomes_single_jpeg():
    first, second = noise(seed=1), noise(seed=2)
    mpo = encode(first, "MPO", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(mpo)) as im:
        assert (im.format, im.n_frames) == ("MPO", 2)
    assert "APP2:MPF" in find_metadata(mpo, "MPO")

    stripped = strip_metadata(mpo, "MPO")

    with Image.open(io.BytesIO(stripped)) as im:
        assert (im.format, getattr(im, "n_frames", 1)) == ("JPEG", 1)
    assert decoded(stripped) == decoded(mpo)  # the first picture, untouched
    assert find_metadata(stripped, "JPEG") == []


# --- PNG --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "params"),
    [("RGB", {}), ("RGB", {"transparency": (0, 0, 0)}), ("RGBA", {}), ("P", {"transparency": 0})],
    ids=["RGB", "RGB-tRNS", "RGBA", "P-tRNS"],
)
def test_png_metadata_removed_pixels_identical(icc, mode, params):
    original = png_with_metadata(noise(mode), icc, **params)
    found = set(find_metadata(original, "PNG"))
    assert {"tEXt", "zTXt", "iTXt", "eXIf", "iCCP", "pHYs", "gAMA", "tIME", "prVt"} <= found

    stripped = strip_png(original)

    assert find_metadata(stripped, "PNG") == []
    im = opened(stripped)
    assert set(im.info) <= {"transparency"}
    assert len(im.getexif()) == 0
    assert im.info.get("transparency") == opened(original).info.get("transparency")
    assert decoded(stripped) == decoded(original)
    assert strip_png(stripped) == stripped


def test_png_palette_transparency_survives(icc):
    stripped = strip_png(png_with_metadata(noise("P"), icc, transparency=3))
    assert opened(stripped).info["transparency"] == 3


def test_png_rejects_apng():
    apng = encode(noise(seed=1), "PNG", save_all=True, append_images=[noise(seed=2)])
    with pytest.raises(StripError, match="APNG"):
        strip_png(apng)


def test_png_bad_crc_in_kept_chunk_rejected():
    data = bytearray(encode(noise(), "PNG"))
    data[data.index(b"IDAT") + 4] ^= 0xFF  # first byte of IDAT data
    with pytest.raises(StripError, match="CRC"):
        strip_png(bytes(data))


def test_png_bad_crc_in_dropped_chunk_tolerated():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Alice")
    data = bytearray(encode(noise(), "PNG", pnginfo=info))
    data[data.index(b"tEXt") + 4] ^= 0xFF
    assert find_metadata(strip_png(bytes(data)), "PNG") == []


# --- WebP -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_webp_metadata_removed_pixels_identical(icc, mode, lossless):
    original = webp_with_metadata(noise(mode), icc, lossless=lossless)
    assert {"ICCP", "EXIF", "XMP "} <= set(find_metadata(original, "WEBP"))

    stripped = strip_webp(original)

    assert find_metadata(stripped, "WEBP") == []
    assert stripped[12:16] == b"VP8X"
    flags = stripped[20]
    assert flags & (0x20 | 0x08 | 0x04) == 0
    assert flags & 0x10 == original[20] & 0x10  # alpha flag untouched
    assert int.from_bytes(stripped[4:8], "little") == len(stripped) - 8
    im = opened(stripped)
    assert not META_INFO_KEYS & set(im.info)
    assert len(im.getexif()) == 0
    assert decoded(stripped) == decoded(original)
    assert strip_webp(stripped) == stripped


@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_plain_webp_unchanged(lossless):
    plain = encode(noise(), "WEBP", lossless=lossless)
    assert plain[12:16] in (b"VP8 ", b"VP8L")
    assert find_metadata(plain, "WEBP") == []
    assert strip_webp(plain) == plain


def test_webp_rejects_animation():
    anim = encode(noise(seed=1), "WEBP", save_all=True, append_images=[noise(seed=2)])
    with pytest.raises(StripError, match="animated"):
        strip_webp(anim)


def test_webp_lying_sizes_rejected():
    plain = encode(noise(), "WEBP")
    too_big = plain[:4] + (len(plain) + 100).to_bytes(4, "little") + plain[8:]
    with pytest.raises(StripError, match="RIFF size"):
        strip_webp(too_big)
    chunk_too_big = plain[:16] + (len(plain)).to_bytes(4, "little") + plain[20:]
    with pytest.raises(StripError, match="past the RIFF end"):
        strip_webp(chunk_too_big)


# --- dispatch and hostile input ---------------------------------------------


def test_dispatch_by_pillow_format_name(icc):
    jpeg = jpeg_with_metadata(icc)
    assert strip_metadata(jpeg, "JPEG") == strip_metadata(jpeg, "MPO") == strip_jpeg(jpeg)
    assert strip_metadata(jpeg, "jpeg") == strip_jpeg(jpeg)
    png = png_with_metadata(noise(), icc)
    assert strip_metadata(png, "PNG") == strip_png(png)
    with pytest.raises(StripError, match="unsupported"):
        strip_metadata(png, "GIF")
    assert issubclass(StripError, ValueError)


def test_jpeg_truncated_segment_header():
    plain = encode(noise(), "JPEG")
    dqt = plain.index(b"\xff\xdb")
    with pytest.raises(StripError, match="cut off"):
        strip_jpeg(plain[: dqt + 3])  # marker plus one of the two length bytes


def test_jpeg_segment_length_past_end():
    with pytest.raises(StripError, match="invalid length"):
        strip_jpeg(b"\xff\xd8\xff\xe1\x40\x00Exif\x00\x00")


def test_jpeg_without_eoi():
    plain = encode(noise(), "JPEG")
    with pytest.raises(StripError, match="truncated"):
        strip_jpeg(plain[:-2])


def test_png_chunk_length_past_end():
    data = bytearray(encode(noise(), "PNG"))
    idat = data.index(b"IDAT") - 4
    data[idat : idat + 4] = (0x7FFFFFF0).to_bytes(4, "big")
    with pytest.raises(StripError, match="invalid length"):
        strip_png(bytes(data))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", bytes(100), random.Random(7).randbytes(4096)],
    ids=["empty", "one-byte", "zeros", "random"],
)
def test_garbage_rejected(fmt, data):
    with pytest.raises(StripError):
        strip_metadata(data, fmt)
    with pytest.raises(StripError):
        find_metadata(data, fmt)


def samples(icc: bytes) -> dict[str, bytes]:
    return {
        "JPEG": jpeg_with_metadata(icc, progressive=True, restart_marker_blocks=4),
        "PNG": png_with_metadata(noise("P"), icc, transparency=0),
        "WEBP": webp_with_metadata(noise("RGBA"), icc),
    }


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_every_truncation_rejected(icc, fmt):
    data = samples(icc)[fmt]
    for cut in range(len(data)):
        with pytest.raises(StripError):
            strip_metadata(data[:cut], fmt)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_mutated_input_fails_cleanly_or_strips_fully(icc, fmt):
    """Random corruption either raises StripError or yields a clean, stable file."""
    rng = random.Random(fmt)
    original = samples(icc)[fmt]
    outcomes = set()
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.8:
                data[pos] = rng.randrange(256)
            else:
                data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        try:
            out = strip_metadata(bytes(data), fmt)
        except StripError:
            outcomes.add("rejected")
            continue
        outcomes.add("stripped")
        assert find_metadata(out, fmt) == []
        assert strip_metadata(out, fmt) == out
    assert outcomes == {"rejected", "stripped"}
