"""Tests for ccub.imaging.strip: lossless metadata removal and verification."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from ccub.imaging.strip import (
    StripError,
    find_metadata,
    removed_blocks,
    rewrite,
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
    assert "APP1:XMP" in found
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


# --- the allowlist ---------------------------------------------------------------------------


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def after_app0(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:20] + b"".join(segments) + jpeg[20:]


def test_jpeg_keeps_only_decoding_segments():
    plain = encode(noise(), "JPEG")
    extra = [segment(0xE3, b"vendor"), segment(0xE0, b"JFXX\0\x10" + bytes(8)),
             segment(0xE0, b"JFIF\0\1"), segment(0xEE, b"Adobe\0"), segment(0xDE, bytes(6)),
             segment(0xF1, b"jpg1"), b"\xff\x01", segment(0xFE, b"note")]
    dirty = after_app0(plain, *extra)
    assert find_metadata(dirty, "JPEG") == ["APP3", "APP0:JFXX", "APP0:JFIF", "APP14:Adobe",
                                            "DHP", "0xFFF1", "TEM", "COM"]
    assert strip_jpeg(dirty) == plain  # (Pillow cannot even open `dirty`: DHP, JPG1)


def test_jpeg_adobe_segment_cut_to_twelve_bytes():
    rgb = encode(noise(), "JPEG", keep_rgb=True)  # Adobe transform 0, no JFIF
    at = rgb.index(b"\xff\xee")
    padded = rgb[:at] + segment(0xEE, rgb[at + 4 : at + 16] + b"private tail") + rgb[at + 16:]
    assert find_metadata(padded, "JPEG") == ["APP14:Adobe+extra"]
    [item] = removed_blocks(padded, "JPEG")
    assert item.content == b"private tail" and item.label == "APP14 Adobe bytes beyond its 12"
    assert strip_jpeg(padded) == rgb
    assert decoded(strip_jpeg(padded)) == decoded(rgb)


def test_jpeg_bytes_between_segments_dropped_and_reported():
    plain = encode(noise(), "JPEG")
    dirty = plain[:20] + b"stray bytes\xff\x00more" + plain[20:]
    assert find_metadata(dirty, "JPEG") == ["junk"]
    assert removed_blocks(dirty, "JPEG")[0].label == "bytes between segments"
    assert strip_jpeg(dirty) == plain


def test_removed_names_never_quote_the_file():
    label = b"GPS 52.52N 13.40E owner Alice"
    jpeg = after_app0(encode(noise(), "JPEG"), segment(0xE5, label + b"\0data"))
    png = encode(noise(), "PNG")
    png = png[:33] + chunk(b"tEXt", label + b"\0value") + chunk(b"tEXt", b"Comment\0x") + png[33:]
    webp = encode(noise(), "WEBP")
    webp = webp[:4] + (len(webp) - 8 + 12).to_bytes(4, "little") + webp[8:] + b"G\x01S\xff" + \
        (4).to_bytes(4, "little") + b"abcd"
    items = removed_blocks(jpeg, "JPEG") + removed_blocks(png, "PNG") + removed_blocks(webp, "WEBP")
    assert [(i.name, i.label) for i in items] == [
        ("APP5", "APP5"), ("tEXt", "tEXt"), ("tEXt", "tEXt Comment"), ("unknown", "unknown chunk")]
    assert all(b"GPS" not in (i.name + i.label).encode() for i in items)


def test_png_ancillary_and_colour_chunks_dropped_unknown_critical_refused():
    plain = encode(noise(), "PNG")
    colour = b"".join(chunk(k, d) for k, d in [(b"gAMA", bytes(4)), (b"sRGB", b"\0"),
                                                (b"cHRM", bytes(32)), (b"cICP", bytes(4))])
    dirty = plain[:33] + colour + chunk(b"PLTE", bytes(6)) + plain[33:]  # PLTE: a hint for RGB
    assert find_metadata(dirty, "PNG") == ["gAMA", "sRGB", "cHRM", "cICP", "PLTE"]
    assert strip_png(dirty) == plain
    critical = plain[:33] + chunk(b"SeCR", b"x") + plain[33:]
    result = rewrite(critical, "PNG")
    assert result.data is None and "unknown critical chunk SeCR" in (result.refused or "")
    assert find_metadata(critical, "PNG") == ["SeCR"]
    with pytest.raises(StripError, match="SeCR"):
        strip_png(critical)


def idat_stream(png: bytes) -> bytes:
    out, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        if kind == b"IDAT":
            out.append(png[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return b"".join(out)


def adam7_png(im: Image.Image) -> bytes:
    """An interlaced RGB PNG (Pillow only writes plain ones), filter type 0 throughout."""
    w, h = im.size
    rows = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)):
        for y in range(y0, h, dy):
            line = b"".join(bytes(im.getpixel((x, y))) for x in range(x0, w, dx))
            if line:
                rows.append(b"\0" + line)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
def test_png_image_stream_must_be_exactly_the_image(interlace):
    im = noise(size=(37, 23))
    plain = adam7_png(im) if interlace else encode(im, "PNG")
    assert decoded(plain)[2] == im.tobytes()
    stream = idat_stream(plain)
    head = plain[:33]
    assert strip_png(head + chunk(b"IDAT", stream) + chunk(b"IEND", b"")) == plain
    hidden = {
        "after the end": head + chunk(b"IDAT", stream + b"hidden") + chunk(b"IEND", b""),
        "after the end ": head + chunk(b"IDAT", stream) + chunk(b"IDAT", b"x") + chunk(b"IEND", b""),
        "more than the image": head + chunk(b"IDAT", zlib.compress(zlib.decompress(stream) + b"x"))
        + chunk(b"IEND", b""),
        "shorter": head + chunk(b"IDAT", zlib.compress(zlib.decompress(stream)[:-1]))
        + chunk(b"IEND", b""),
        "truncated": head + chunk(b"IDAT", stream[:-6]) + chunk(b"IEND", b""),
        "not consecutive": head + chunk(b"IDAT", stream[:10]) + chunk(b"tIME", bytes(7))
        + chunk(b"IDAT", stream[10:]) + chunk(b"IEND", b""),
    }
    for reason, data in hidden.items():
        with pytest.raises(StripError, match=reason.strip()):
            strip_png(data)


def test_png_iend_data_and_wrong_trns_and_palette():
    plain = encode(noise(), "PNG")
    assert strip_png(plain[:-12] + chunk(b"IEND", b"inside")) == plain
    assert find_metadata(plain[:-12] + chunk(b"IEND", b"inside"), "PNG") == ["IEND+data"]
    with pytest.raises(StripError, match="tRNS"):
        strip_png(plain[:33] + chunk(b"tRNS", bytes(7)) + plain[33:])  # RGB: exactly 6 bytes
    pal = encode(noise("P"), "PNG")
    at = pal.index(b"PLTE") - 4
    length = int.from_bytes(pal[at : at + 4], "big")
    big = pal[:at] + chunk(b"PLTE", pal[at + 8 : at + 8 + length] + bytes(3 * 300)) + \
        pal[at + 12 + length:]
    with pytest.raises(StripError, match="PLTE"):
        strip_png(big)  # more entries than 8 bits can index: room for hidden bytes


def test_webp_keeps_one_image_chunk_and_alph_only_where_read():
    lossy = encode(noise("RGBA"), "WEBP", quality=80)
    names = [name for name in ("VP8X", "ALPH", "VP8 ") if name.encode() in lossy]
    assert names == ["VP8X", "ALPH", "VP8 "]
    second = b"VP8L" + (4).to_bytes(4, "little") + b"\x2f\0\0\0"
    body = lossy[12:] + second
    doubled = b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body
    assert find_metadata(doubled, "WEBP") == ["VP8L"]
    assert strip_webp(doubled) == lossy
    alph = lossy.index(b"ALPH")
    twice = lossy[alph:lossy.index(b"VP8 ")]
    body = lossy[12:alph] + twice + lossy[alph:]
    with pytest.raises(StripError, match="ALPH"):
        strip_webp(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body)
