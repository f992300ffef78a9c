"""Verifying an exported image: nothing but allowlisted blocks, and the source's pixels.

Deliberately not built on `ccub.imaging.strip`: a parser bug there must not hide itself
here. Pillow's own parsers, plus the small walkers below, confirm that only allowlisted
blocks remain and that a lossless export shows the source's pixels (PNG, WebP: decoded and
compared with the source's pixel digest; JPEG: libjpeg is given the same input).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

# What Pillow may report for a clean file; anything else in `info` is metadata.
_INFO_ALLOWED = {
    "JPEG": {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "adobe",
             "adobe_transform", "progressive", "progression"},
    "PNG": {"transparency"},
    "WEBP": {"loop", "background", "duration", "timestamp"},
}
# JPEG markers an exported file may hold: SOI, SOFn, DHT, DAC, DQT, DRI, DNL, SOS, RSTn, EOI,
# APP0 (JFIF header only) and APP14 (Adobe header only).
_JPEG_ALLOWED = ({0xD8, 0xC4, 0xCC, 0xDB, 0xDD, 0xDC, 0xDA, 0xD9, 0xE0, 0xEE}
                 | set(range(0xC0, 0xD0)) - {0xC8} | set(range(0xD0, 0xD8)))
SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
_PNG_ALLOWED = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
_WEBP_ALLOWED = {b"VP8X", b"ALPH", b"VP8 ", b"VP8L"}


@dataclass(frozen=True)
class PixelCheck:
    """How to confirm that a lossless export shows exactly the source's pixels."""

    # A re-encoded copy: `pixel_key` of the source's decoded pixels; the copy is decoded.
    digest: str = ""
    # A stripped copy: the source file. The copy must give the decoder exactly the input the
    # source gives it (every block that decides the pixels equal, byte for byte; see the
    # walkers below): as strong as decoding both, without a second decode of a 12 MP photo,
    # which would double the analysis time of the hot path.
    source: bytes | None = None


def pixel_key(rgb: Image.Image, scale: int) -> str:
    """Digest of decoded RGB pixels (`ImageFacts.pixel_key`); scale: JPEG draft reduction."""
    return hashlib.sha256(f"{scale}:{rgb.size}".encode() + rgb.tobytes()).hexdigest()


_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xff])")  # skips fill and stray bytes, as libjpeg does
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # 0xFF00 is data, RSTn sit inside the scan
# Segments libjpeg reads past without using them: APP1-APP15, JPGn, COM (APP0 and APP14 are
# read for the colour transform only; TEM and RSTn outside a scan carry nothing).
_JPEG_SKIPPED = set(range(0xE1, 0xFF))


@dataclass
class _JpegWalk:
    problems: list[str]  # anything outside the allowlist
    # What libjpeg uses to make the pixels, in order: the spans of every segment up to the
    # first EOI (scans with their entropy-coded data) except those it reads past, and of
    # APP0/APP14 only what decides the colour transform: whether a JFIF header is present
    # and the last Adobe transform byte (libjpeg's saw_JFIF_marker, Adobe_transform).
    spans: list[tuple[int, int]]
    colour: tuple[bool, int]


def _jpeg_walk(data: bytes) -> _JpegWalk | None:
    """Walk a whole exported JPEG (Pillow's parser stops at the first scan): every marker
    outside the allowlist, bytes between segments and data after EOI are problems. None
    when unreadable."""
    if data[:2] != b"\xff\xd8":
        return None
    walk = _JpegWalk([], [], (False, -1))
    jfif, adobe = False, -1
    i, n = 2, len(data)
    while True:
        found = _NEXT_MARKER.search(data, i)
        if found is None:
            return None
        if found.start() != i or found.end() - found.start() != 2:
            walk.problems.append(f"bytes before the marker at offset {found.start(1) - 1}")
        marker, i = found.group(1)[0], found.end()
        if marker not in _JPEG_ALLOWED:
            walk.problems.append(f"marker 0xFF{marker:02X}")
        if marker == 0xD9:
            if i < n:
                walk.problems.append(f"{n - i} bytes after EOI")
            walk.colour = (jfif, adobe)
            return walk
        if marker == 0xD8:
            return None  # a second SOI: libjpeg refuses the file
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # TEM and RSTn have no length field
        length = int.from_bytes(data[i : i + 2], "big")
        end = i + length
        if length < 2 or end > n:
            return None
        body = data[i + 2 : min(end, i + 16)]  # headers only: nothing big is copied
        if marker == 0xE0:
            ok = body[:5] == b"JFIF\0" and length >= 16
            jfif = jfif or ok
            if not (ok and length == 16 and body[12:14] == b"\0\0"):
                walk.problems.append("APP0 segment other than a bare JFIF header")
        elif marker == 0xEE:
            ok = body[:5] == b"Adobe" and length >= 14
            adobe = body[11] if ok else adobe
            if not (ok and length == 14):
                walk.problems.append("APP14 segment other than a bare Adobe header")
        elif marker not in _JPEG_SKIPPED:
            if marker == 0xDA:
                scan = _SCAN_END.search(data, end)
                if scan is None:
                    return None
                end = scan.start()
            walk.spans.append((i - 1, end))
        i = end


def _same_jpeg_decoder_input(exported: bytes, mine: _JpegWalk | None, source: bytes) -> bool:
    """Whether libjpeg reads the same thing from the source as from the export (`mine`, its
    walk): then the pixels are the same. The source is walked as libjpeg reads it
    (fill and stray bytes skipped); each segment it uses must equal the export's, byte for
    byte. A scan is not searched for its end again: its bytes must equal the export's scan,
    which holds no marker, and be followed by a marker."""
    if mine is None or source[:2] != b"\xff\xd8":
        return False
    view, spans = memoryview(exported), iter(mine.spans)
    jfif, adobe = False, -1
    i, n = 2, len(source)
    while True:
        found = _NEXT_MARKER.search(source, i)
        if found is None:
            return False
        marker, i = found.group(1)[0], found.end()
        if marker == 0xD9:
            return next(spans, None) is None and (jfif, adobe) == mine.colour
        if marker == 0xD8:
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        length = int.from_bytes(source[i : i + 2], "big")
        end = i + length
        if length < 2 or end > n:
            return False
        body = source[i + 2 : min(end, i + 16)]
        if marker == 0xE0:
            jfif = jfif or (body[:5] == b"JFIF\0" and length >= 16)
        elif marker == 0xEE:
            adobe = body[11] if body[:5] == b"Adobe" and length >= 14 else adobe
        elif marker not in _JPEG_SKIPPED:
            a, b = next(spans, (0, -1))
            if marker == 0xDA:
                end = i - 1 + (b - a)
                if _SCAN_END.match(source, end) is None:
                    return False
            if end - (i - 1) != b - a or not source.startswith(view[a:b], i - 1):
                return False
        i = end


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))


def _png_image_bytes(ihdr: bytes) -> int:
    """Bytes the image data stream inflates to: filter byte plus packed samples, per row."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    bits = depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 0)
    size = 0
    for x, y, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        w, h = -(-(width - x) // dx), -(-(height - y) // dy)
        size += h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0
    return size


def _png_stream_exact(idat: list[bytes], size: int) -> bool:
    """Whether the IDAT data is one zlib stream of exactly `size` bytes, nothing after it.

    Inflated in small steps whose output is thrown away: memory stays bounded."""
    inflate, total, step = zlib.decompressobj(), 0, 1 << 20
    try:
        for piece in idat:
            for at in range(0, len(piece), 1 << 16):
                if inflate.eof:
                    return False  # compressed data after the end of the stream
                pending = memoryview(piece)[at : at + (1 << 16)]
                while True:
                    out = len(inflate.decompress(pending, step))
                    total += out
                    if total > size or inflate.unused_data:
                        return False
                    pending = inflate.unconsumed_tail
                    if inflate.eof or (not pending and out < step):
                        break
    except zlib.error:
        return False
    return inflate.eof and total == size


# What decides the pixels, as (tag, start, end) spans of a file: two files whose parts are
# equal, span for span, give the decoder the same input.
Parts = list[tuple[bytes, int, int]]


def _same_parts(a: bytes, pa: Parts | None, b: bytes, pb: Parts | None) -> bool:
    if pa is None or pb is None or len(pa) != len(pb):
        return False
    view = memoryview(a)
    return all(ta == tb and ea - sa == eb - sb and b.startswith(view[sa:ea], sb)
               for (ta, sa, ea), (tb, sb, eb) in zip(pa, pb, strict=True))


def _png_walk(data: bytes, exported: bool) -> tuple[list[str], Parts | None]:
    """(problems, the parts that decide the pixels) of a PNG, read with Pillow's own chunk
    reader; parts None when unreadable.

    The pixels are decided by IHDR, PLTE (palette images), tRNS (grey, RGB and palette
    images) and IDAT, each a whole chunk (CRC included); Pillow uses nothing else. For an
    exported file every other chunk, bad CRCs, data in or after IEND, and an IDAT stream
    that is not exactly the image are problems; a source is read past them.
    """
    problems: list[str] = []
    fp = io.BytesIO(data)
    if fp.read(8) != PngImagePlugin._MAGIC:
        return ["no PNG signature"], None
    stream = PngImagePlugin.ChunkStream(fp)
    parts: Parts = []
    ihdr, idat, colour, body = b"", [], -1, b""
    try:
        while True:
            cid, pos, length = stream.read()
            if pos + length + 4 > len(data):
                return [*problems, "chunk cut off"], None
            used = cid in (b"IHDR", b"IDAT") or (cid == b"PLTE" and colour == 3) or (
                cid == b"tRNS" and colour in (0, 2, 3))
            if used:
                parts.append((cid, pos - 8, pos + length + 4))
            if not exported:
                if cid == b"IHDR" and length == 13:
                    colour = data[pos + 9]
                fp.seek(length + 4, os.SEEK_CUR)
                if cid == b"IEND":
                    break
                continue
            body = fp.read(length)
            stream.crc(cid, body)
            if cid not in _PNG_ALLOWED:
                problems.append(f"{cid.decode('latin-1')!r} chunk")
            if cid == b"IHDR" and length == 13:
                ihdr, colour = body, body[9]
            if cid == b"IDAT":
                idat.append(body)
            if cid == b"IEND":
                break
    except (SyntaxError, struct.error, ValueError, OSError) as exc:
        return [*problems, f"unreadable chunk ({type(exc).__name__})"], None
    if exported:
        if body:
            problems.append("data inside IEND")
        if fp.read(1):
            problems.append("data after IEND")
        if not ihdr:
            problems.append("no valid IHDR")
        elif not _png_stream_exact(idat, _png_image_bytes(ihdr)):
            problems.append("image data stream is not exactly the image")
    return problems, parts


def _webp_walk(data: bytes, exported: bool) -> tuple[list[str], Parts | None]:
    """(problems, the parts that decide the pixels) of a WebP; parts None when unreadable.

    The pixels are decided by the first VP8 or VP8L chunk, the ALPH chunk before a lossy
    image in a VP8X file, and VP8X's alpha flag and canvas size. For an exported file any
    other chunk, VP8X flags or reserved bits, data after the RIFF container and padding
    bytes other than zero are problems; a source is read past them, as decoders do.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return ["no RIFF/WEBP header"], None
    end = 8 + int.from_bytes(data[4:8], "little")
    problems: list[str] = []
    if exported and end != len(data):
        problems.append("RIFF size does not match the file")
    fourccs: list[bytes] = []
    canvas, alph, image = b"", None, None
    i = 12
    while i < min(end, len(data)):
        fourcc, length = data[i : i + 4], int.from_bytes(data[i + 4 : i + 8], "little")
        if i + 8 + length > len(data):
            return [*problems, "chunk cut off"], None
        head = data[i + 8 : i + 8 + min(length, 10)]
        if exported and data[i + 8 + length : i + 8 + length + (length & 1)].strip(b"\0"):
            problems.append("padding byte other than zero")
        if exported and fourcc not in _WEBP_ALLOWED:
            problems.append(f"{fourcc.decode('latin-1')!r} chunk")
        if fourcc == b"VP8X" and not fourccs and length >= 10:
            canvas = bytes([head[0] & 0x10]) + head[4:10]
            if exported and (length != 10 or head[0] & ~0x10 or head[1:4] != b"\0\0\0"):
                problems.append("VP8X flags or reserved bytes set")
        elif fourcc == b"ALPH" and image is None:
            alph = (b"ALPH", i + 8, i + 8 + length)
        elif fourcc in (b"VP8 ", b"VP8L") and image is None:
            image = (fourcc, i + 8, i + 8 + length)
        fourccs.append(fourcc)
        i += 8 + length + (length & 1)
    if image is None:
        return [*problems, "no image chunk"], None
    if exported and (fourccs.count(b"VP8 ") + fourccs.count(b"VP8L") != 1
                     or fourccs.count(b"VP8X") > (fourccs[0] == b"VP8X")
                     or fourccs.count(b"ALPH") > 1):
        problems.append("not one image chunk in the expected layout")
    parts: Parts = [(b"VP8X" + canvas, 0, 0), image]
    if alph is not None and canvas and image[0] == b"VP8 ":
        parts.append(alph)
    return problems, parts


_WALKERS = {"PNG": _png_walk, "WEBP": _webp_walk}


def pillow_problems(data: bytes | Path, fmt: str) -> list[str]:
    """Metadata Pillow's own parsers still find (headers only: nothing is decoded)."""
    problems = []
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=[fmt]) as im:
        if im.format != fmt:
            return [f"opens as {im.format}, not {fmt}"]
        problems += [f"Pillow finds {k!r}" for k in im.info if k not in _INFO_ALLOWED[fmt]]
        for name, payload in getattr(im, "applist", []):
            if not ((name == "APP0" and payload[:5] == b"JFIF\0" and len(payload) == 14)
                    or (name == "APP14" and payload[:5] == b"Adobe" and len(payload) == 12)):
                problems.append(f"Pillow finds a {name} segment")
        if im.getexif():
            problems.append("Pillow finds EXIF tags")
    return problems


def verify_image(data: bytes, fmt: str, pixels: PixelCheck | None = None) -> list[str]:
    """What is wrong with an exported image (fmt JPEG, PNG or WEBP); [] when clean.

    Blocks outside the allowlist (the walkers above), metadata Pillow still finds, and, with
    `pixels`, pixels that may differ from the source's: a stripped copy must give the
    decoder the same input as its source (`PixelCheck.source`), a re-encoded one must decode
    to the source's pixel digest.
    """
    walk, parts = None, None
    if fmt == "JPEG":
        walk = _jpeg_walk(data)
        problems = list(walk.problems) if walk else ["not a readable JPEG"]
    elif fmt in _WALKERS:
        problems, parts = _WALKERS[fmt](data, True)
    else:
        return [f"not a JPEG, PNG or WebP ({fmt})"]
    try:
        problems += pillow_problems(data, fmt)
        if pixels is not None and pixels.source is not None:
            same = (_same_jpeg_decoder_input(data, walk, pixels.source) if fmt == "JPEG" else
                    _same_parts(data, parts, pixels.source, _WALKERS[fmt](pixels.source, False)[1]))
            if not same:
                problems.append("the decoder input differs from the source's")
        elif pixels is not None:
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                im.load()
                if im.mode != "RGB" or pixel_key(im, 1) != pixels.digest:
                    problems.append("decoded pixels differ from the source's")
    except Exception as exc:  # noqa: BLE001 - any failure to read it back refuses the file
        problems.append(f"cannot be read back ({type(exc).__name__})")
    return problems


